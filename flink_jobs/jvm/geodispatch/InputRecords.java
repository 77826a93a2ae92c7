package geodispatch;

import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.LinkedHashSet;
import java.util.Set;
import java.util.TreeSet;

import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.json.JsonReadFeature;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.json.JsonMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ArrayNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.types.Row;
import org.apache.flink.util.OutputTag;

/**
 * Typed parsing and validation of the input records of ../shared/CONTRACT.md (prices, weather,
 * site-status and jobs): the one definition of these rules in the job. A site record becomes a
 * {@link SiteRecord}, a job record its normalised JSON ({@link #parseJob}); either fails with a {@link RecordError} whose message is the dead letter's
 * {@code error} ("field: why"); the first rule broken, in field order, decides the reason.
 *
 * <p>Timestamps are ISO-8601 with a zone (a trailing Z or an offset) or epoch milliseconds; the
 * same parser gives the sources' event time in SQL ({@link EventTime}), so the watermark and the
 * record agree on when it happened.
 */
public final class InputRecords {

    public static final String PRICES = "prices";
    public static final String WEATHER = "weather";
    public static final String SITE_STATUS = "site-status";
    public static final String JOBS = "jobs";

    public static final int MAX_PAYLOAD_BYTES = 64 * 1024; // larger values are an attack or a bug
    public static final int DEAD_LETTER_RAW_CHARS = 4096; // the contract keeps the first 4 KiB
    static final int MAX_ID_LEN = 128;
    // The plausible temperature range and the default humidity: udfs/weather_limits.properties, which
    // udfs/cooling.py reads too (packed into the operators jar by `make operators-jar`).
    static final double MIN_TEMP_C, MAX_TEMP_C, DEFAULT_REL_HUMIDITY;

    static {
        java.util.Properties limits = new java.util.Properties();
        try (java.io.InputStream in = InputRecords.class.getResourceAsStream("/weather_limits.properties")) {
            if (in == null) {
                throw new IllegalStateException("weather_limits.properties is not on the classpath (make operators-jar)");
            }
            limits.load(in);
        } catch (java.io.IOException e) {
            throw new IllegalStateException("weather_limits.properties: " + e.getMessage(), e);
        }
        MIN_TEMP_C = Double.parseDouble(limits.getProperty("min_temp_c"));
        MAX_TEMP_C = Double.parseDouble(limits.getProperty("max_temp_c"));
        DEFAULT_REL_HUMIDITY = Double.parseDouble(limits.getProperty("default_rel_humidity"));
    }

    // Prices below zero are real (day-ahead markets clear negative; EPEX SPOT's floor is -500
    // EUR/MWh); these bounds only catch unit errors.
    static final double MIN_PRICE = -100_000.0, MAX_PRICE = 100_000.0;
    static final int MAX_CAPACITY_SLOTS = 10_000_000;
    static final double MAX_COMPUTE_HOURS = 1_000_000.0;
    static final int MAX_SLOTS = 1_000_000, MAX_PRIORITY = 9;

    static final ObjectMapper JSON = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS) // NaN arrives; it is refused by name below
            .build();

    /** Dead letters: (key, dead-letter JSON) for the dead-letter topic, from every operator that parses. */
    public static final OutputTag<Row> DEAD_LETTERS =
            new OutputTag<>("dead-letters", Types.ROW_NAMED(new String[] {"k", "v"}, Types.STRING, Types.STRING));

    private InputRecords() {}

    /** The dead-letter row of a raw input row (topic, k, v, partition, offset) that broke a rule. */
    public static Row deadLetter(Row rec, String error) {
        String raw = (String) rec.getField(2);
        ObjectNode json = JSON.createObjectNode();
        json.put("topic", (String) rec.getField(0));
        json.put("partition", (Integer) rec.getField(3));
        json.put("offset", (Long) rec.getField(4));
        json.put("key", (String) rec.getField(1));
        json.put("raw", raw == null ? "" : raw.substring(0, Math.min(raw.length(), DEAD_LETTER_RAW_CHARS)));
        json.put("error", error);
        json.put("at", formatTs(System.currentTimeMillis()));
        return Row.of(rec.getField(1), json.toString());
    }

    /** A record that cannot be used; the message is the dead-letter reason. */
    public static final class RecordError extends Exception {
        private static final long serialVersionUID = 1L;

        RecordError(String message) {
            super(message, null, false, false); // no stack trace: it is an expected outcome
        }
    }

    /** A validated site record: its site, event time and the fields of its topic. */
    public static final class SiteRecord {
        public final String topic;
        public final String siteId;
        public final long eventMs;
        // prices
        public final double price;
        public final long validFromMs;
        public final Long validToMs;
        public final Long publishedMs;
        public final String currency;
        public final String source;
        // weather
        public final double tempC;
        public final double relHumidity;
        // site-status
        public final boolean online;
        public final Integer capacitySlots;

        SiteRecord(String topic, String siteId, long eventMs, double price, long validFromMs, Long validToMs,
                   Long publishedMs, String currency, String source, double tempC, double relHumidity,
                   boolean online, Integer capacitySlots) {
            this.topic = topic;
            this.siteId = siteId;
            this.eventMs = eventMs;
            this.price = price;
            this.validFromMs = validFromMs;
            this.validToMs = validToMs;
            this.publishedMs = publishedMs;
            this.currency = currency;
            this.source = source;
            this.tempC = tempC;
            this.relHumidity = relHumidity;
            this.online = online;
            this.capacitySlots = capacitySlots;
        }
    }

    /** Parse one site record of {@code topic}; {@code knownSites} null accepts any site id. */
    public static SiteRecord parse(String topic, String raw, Set<String> knownSites) throws RecordError {
        JsonNode rec = object(raw);
        String site = ident(rec, "site_id");
        if (knownSites != null && !knownSites.contains(site)) {
            throw new RecordError("site_id: unknown site " + repr(site));
        }
        switch (topic) {
            case PRICES: {
                double price = number(rec, "price_per_mwh", MIN_PRICE, MAX_PRICE, true);
                long validFrom = required(rec, "valid_from");
                Long validTo = tsOptional(rec, "valid_to");
                if (validTo != null && validTo <= validFrom) {
                    throw new RecordError("valid_to: not after valid_from");
                }
                // published_at: when the market published it (a day-ahead offer, a day early); the event time
                Long published = tsOptional(rec, "published_at");
                if (published != null && published > validFrom) {
                    throw new RecordError("published_at: after valid_from");
                }
                String currency = optionalText(rec, "currency");
                String source = optionalText(rec, "source");
                return new SiteRecord(PRICES, site, published == null ? validFrom : published, price, validFrom,
                        validTo, published, currency, source, Double.NaN, Double.NaN, true, null);
            }
            case WEATHER: {
                long observed = required(rec, "observed_at");
                double temp = number(rec, "temp_c", MIN_TEMP_C, MAX_TEMP_C, true);
                double rh = number(rec, "rel_humidity", 0.0, 100.0, false);
                return new SiteRecord(WEATHER, site, observed, Double.NaN, 0, null, null, "", "", temp,
                        Double.isNaN(rh) ? DEFAULT_REL_HUMIDITY : rh, true, null);
            }
            case SITE_STATUS: {
                long at = required(rec, "at");
                JsonNode online = rec.get("online");
                if (online == null || online.isNull()) {
                    throw new RecordError("online: missing");
                }
                if (!online.isBoolean()) {
                    throw new RecordError("online: not true or false");
                }
                Integer capacity = integer(rec, "capacity_slots", 0, MAX_CAPACITY_SLOTS);
                return new SiteRecord(SITE_STATUS, site, at, Double.NaN, 0, null, null, "", "", Double.NaN,
                        Double.NaN, online.booleanValue(), capacity);
            }
            default:
                throw new RecordError("topic: " + repr(topic) + " is not a site input topic");
        }
    }

    /**
     * Parse one job record: the record with its values normalised for the dispatcher, as JSON
     * text: {@code submitted_at_ms} (the event time) and, for a submit, {@code compute_hours} as a
     * number with a fraction, {@code slots} and {@code priority} as integers, {@code deadline_ms}
     * (null without a deadline) and the allow-list {@code sites} without repeats, in its order
     * (the first is the default home). Every other field is kept as it came.
     * {@code knownSites} null accepts any site id.
     */
    public static ObjectNode parseJob(String raw, Set<String> knownSites) throws RecordError {
        ObjectNode out = (ObjectNode) object(raw).deepCopy();
        JsonNode action = present(out, "action");
        if (action == null) {
            throw new RecordError("action: missing");
        }
        String act = action.isTextual() ? action.textValue() : pyStr(action);
        if (!"submit".equals(act) && !"cancel".equals(act)) {
            throw new RecordError("action: " + repr(act.substring(0, Math.min(20, act.length())))
                    + " is not submit or cancel");
        }
        ident(out, "job_id");
        long submitted = required(out, "submitted_at");
        out.put("submitted_at_ms", submitted);
        if ("cancel".equals(act)) {
            return out;
        }
        double hours = number(out, "compute_hours", 0.0, MAX_COMPUTE_HOURS, true);
        if (hours <= 0) {
            throw new RecordError("compute_hours: must be positive");
        }
        out.put("compute_hours", hours);
        out.put("slots", requiredInteger(out, "slots", 1, MAX_SLOTS));
        out.put("priority", requiredInteger(out, "priority", 0, MAX_PRIORITY));
        Long deadline = tsOptional(out, "deadline");
        if (deadline != null && deadline < submitted) {
            throw new RecordError("deadline: before submitted_at");
        }
        out.put("deadline_ms", deadline);
        JsonNode sites = present(out, "sites");
        if (sites != null) {
            if (!sites.isArray() || sites.isEmpty()) {
                throw new RecordError("sites: not a non-empty list of site ids");
            }
            Set<String> allowed = new LinkedHashSet<>(); // the order kept: the first is the default home
            for (JsonNode s : sites) {
                if (!s.isTextual()) {
                    throw new RecordError("sites: not a non-empty list of site ids");
                }
                allowed.add(s.textValue());
            }
            if (knownSites != null) {
                TreeSet<String> unknown = new TreeSet<>(allowed);
                unknown.removeAll(knownSites);
                if (!unknown.isEmpty()) {
                    throw new RecordError("sites: unknown site " + repr(unknown.first()));
                }
            }
            ArrayNode list = out.putArray("sites");
            allowed.forEach(list::add);
        }
        JsonNode home = present(out, "home");
        if (home != null) {
            if (!home.isTextual() || home.textValue().isEmpty()) {
                throw new RecordError("home: not a site id");
            }
            if (knownSites != null && !knownSites.contains(home.textValue())) {
                throw new RecordError("home: unknown site " + repr(home.textValue()));
            }
        }
        return out;
    }

    /** Python's str() of a JSON value, as a reason quotes a value of the wrong type. */
    private static String pyStr(JsonNode v) {
        if (v.isBoolean()) {
            return v.booleanValue() ? "True" : "False";
        }
        return v.toString();
    }

    static int requiredInteger(JsonNode rec, String field, int lo, int hi) throws RecordError {
        Integer value = integer(rec, field, lo, hi);
        if (value == null) {
            throw new RecordError(field + ": missing");
        }
        return value;
    }

    static JsonNode object(String raw) throws RecordError {
        if (raw == null) {
            throw new RecordError("payload: empty (tombstone)");
        }
        // a UTF-8 character is at most 3 bytes per UTF-16 unit: count bytes only when it could matter
        if (raw.length() > MAX_PAYLOAD_BYTES / 3) {
            int size = raw.getBytes(StandardCharsets.UTF_8).length;
            if (size > MAX_PAYLOAD_BYTES) {
                throw new RecordError("payload: " + size + " bytes, more than the " + MAX_PAYLOAD_BYTES + " allowed");
            }
        }
        JsonNode value;
        try {
            value = JSON.readTree(raw);
        } catch (Exception e) {
            String why = String.valueOf(e.getMessage()).split("\n", 2)[0];
            throw new RecordError("payload: not valid JSON (" + why.substring(0, Math.min(80, why.length())) + ")");
        }
        if (value == null || value.isMissingNode()) {
            throw new RecordError("payload: not valid JSON (empty)");
        }
        if (!value.isObject()) {
            throw new RecordError("payload: expected a JSON object, got " + typeName(value));
        }
        return value;
    }

    private static String typeName(JsonNode v) {
        if (v.isArray()) return "list";
        if (v.isTextual()) return "str";
        if (v.isBoolean()) return "bool";
        if (v.isIntegralNumber()) return "int";
        if (v.isNumber()) return "float";
        return "NoneType";
    }

    private static JsonNode present(JsonNode rec, String field) {
        JsonNode v = rec.get(field);
        return v == null || v.isNull() ? null : v;
    }

    static String ident(JsonNode rec, String field) throws RecordError {
        JsonNode v = present(rec, field);
        if (v == null) {
            throw new RecordError(field + ": missing");
        }
        if (!v.isTextual() || v.textValue().isBlank()) {
            throw new RecordError(field + ": not a non-empty string");
        }
        if (v.textValue().length() > MAX_ID_LEN) {
            throw new RecordError(field + ": longer than " + MAX_ID_LEN + " characters");
        }
        return v.textValue();
    }

    /** A number in [lo, hi]; NaN when absent and not required. */
    static double number(JsonNode rec, String field, double lo, double hi, boolean required) throws RecordError {
        JsonNode v = present(rec, field);
        if (v == null) {
            if (required) {
                throw new RecordError(field + ": missing");
            }
            return Double.NaN;
        }
        if (!v.isNumber()) {
            throw new RecordError(field + ": not a number");
        }
        double d = v.doubleValue();
        if (!Double.isFinite(d)) {
            throw new RecordError(field + ": not a finite number");
        }
        if (d < lo) {
            throw new RecordError(field + ": " + g(d) + " is below " + g(lo));
        }
        if (d > hi) {
            throw new RecordError(field + ": " + g(d) + " is above " + g(hi));
        }
        return d;
    }

    /** An optional integer in [lo, hi] (a float with an integral value counts), or null. */
    static Integer integer(JsonNode rec, String field, int lo, int hi) throws RecordError {
        JsonNode v = present(rec, field);
        if (v == null) {
            return null;
        }
        if (!v.isNumber() || (!v.isIntegralNumber()
                && (!Double.isFinite(v.doubleValue()) || v.doubleValue() != Math.rint(v.doubleValue())))) {
            throw new RecordError(field + ": not an integer");
        }
        BigDecimal value = v.decimalValue();
        if (value.compareTo(BigDecimal.valueOf(lo)) < 0 || value.compareTo(BigDecimal.valueOf(hi)) > 0) {
            throw new RecordError(field + ": " + value.toBigInteger() + " is outside " + lo + ".." + hi);
        }
        return value.intValue();
    }

    static String optionalText(JsonNode rec, String field) throws RecordError {
        JsonNode v = present(rec, field);
        if (v == null) {
            return "";
        }
        if (!v.isTextual()) {
            throw new RecordError(field + ": not a string");
        }
        return v.textValue();
    }

    /** A required timestamp. */
    static long required(JsonNode rec, String field) throws RecordError {
        Long ms = tsOptional(rec, field);
        if (ms == null) {
            throw new RecordError(field + ": missing");
        }
        return ms;
    }

    static Long tsOptional(JsonNode rec, String field) throws RecordError {
        JsonNode v = present(rec, field);
        if (v == null) {
            return null;
        }
        if (v.isBoolean()) {
            throw new RecordError(field + ": not a timestamp");
        }
        if (v.isNumber()) {
            double d = v.doubleValue();
            if (!Double.isFinite(d)) {
                throw new RecordError(field + ": not a finite number");
            }
            return v.isIntegralNumber() ? v.longValue() : (long) d; // epoch ms, truncated
        }
        if (!v.isTextual() || v.textValue().isEmpty()) {
            throw new RecordError(field + ": missing or not a string");
        }
        return parseIsoMs(v.textValue(), field);
    }

    /**
     * ISO-8601 with a zone -> epoch ms: a trailing Z or an offset; a space may stand for the T.
     * Without a zone the instant is unknown, and that is an error, not UTC.
     */
    public static long parseIsoMs(String value, String field) throws RecordError {
        String text = value.strip();
        if (text.length() > 10 && text.charAt(10) == ' ') {
            text = text.substring(0, 10) + 'T' + text.substring(11);
        }
        if (text.endsWith("z")) {
            text = text.substring(0, text.length() - 1) + 'Z';
        }
        try {
            return OffsetDateTime.parse(text, DateTimeFormatter.ISO_OFFSET_DATE_TIME).toInstant().toEpochMilli();
        } catch (DateTimeParseException e) {
            try {
                LocalDateTime.parse(text, DateTimeFormatter.ISO_LOCAL_DATE_TIME);
            } catch (DateTimeParseException notLocal) {
                throw new RecordError(field + ": not an ISO-8601 timestamp: "
                        + repr(value.substring(0, Math.min(40, value.length()))));
            }
            throw new RecordError(field + ": timestamp without a time zone (use a trailing Z)");
        }
    }

    /** Epoch ms -> {@code YYYY-MM-DDTHH:MM:SSZ}, milliseconds only when not zero (as udfs.timeutil). */
    public static String formatTs(long ms) {
        String text = Instant.ofEpochMilli(ms).toString(); // ISO, seconds or fraction digits as needed
        if (ms % 1000 == 0) {
            return text.length() > 20 ? text.substring(0, 19) + "Z" : text;
        }
        return text.substring(0, 19) + String.format(".%03dZ", Math.floorMod(ms, 1000L));
    }

    /** Python's repr of a string, as the dead-letter reasons quote values. */
    static String repr(String s) {
        return s.indexOf('\'') >= 0 && s.indexOf('"') < 0 ? '"' + s + '"' : "'" + s.replace("'", "\\'") + "'";
    }

    /** Python's {@code format(v, "g")}: 6 significant digits, exponent outside 1e-4 .. 1e6. */
    static String g(double v) {
        if (v == 0) {
            return 1 / v < 0 ? "-0" : "0";
        }
        BigDecimal bd = new BigDecimal(v).round(new MathContext(6));
        int exp = bd.precision() - bd.scale() - 1;
        if (exp < -4 || exp >= 6) {
            String mantissa = bd.movePointLeft(exp).stripTrailingZeros().toPlainString();
            return mantissa + "e" + (exp < 0 ? "-" : "+") + String.format("%02d", Math.abs(exp));
        }
        return bd.stripTrailingZeros().toPlainString();
    }
}
