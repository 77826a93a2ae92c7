package geodispatch;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;

import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ArrayNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;

/**
 * SiteTicker and InputRecords under Flink's operator test harness: records in, watermarks moved
 * by hand, site-tick rows and dead letters out. Every expected value is worked out by hand in the
 * comments. No test framework: {@code main} runs each case and fails with the first broken one
 * (tests/unit/test_jvm_operators.py runs it).
 */
public final class SiteTickerTest {

    static final long MIN = 60_000, TICK = 5 * MIN, HOUR = 60 * MIN;
    static final long T0 = 1_530_439_200_000L; // 2018-07-01T10:00:00Z

    public static void main(String[] args) throws Exception {
        int passed = 0;
        for (Case c : List.<Case>of(
                SiteTickerTest::onTimeOfferTicksWhileInForceThenOnceUnavailable,
                SiteTickerTest::duplicatesAndLateRecordsAreCountedNotApplied,
                SiteTickerTest::aLateOfferStillInForceWaitsForTheNextTick,
                SiteTickerTest::equalStartsKeepTheWinnerInAnyOrder,
                SiteTickerTest::dayAheadOffersAreSentOnceAtTheirPublication,
                SiteTickerTest::staleWeatherAndStatusAtTheTick,
                SiteTickerTest::badRecordsAreDeadLetteredWithTheirReason,
                SiteTickerTest::aFeedDenserThanTheCapIsDeadLetteredAndTheStateStaysBounded,
                SiteTickerTest::aBacklogTakesTheSameOffersAsALiveRun,
                SiteTickerTest::aRestoredOperatorContinuesIdentically,
                SiteTickerTest::timestampsAndNumbersReadAsTheContractSays)) {
            c.run();
            passed++;
        }
        System.out.println("SiteTickerTest: " + passed + " cases passed");
    }

    interface Case {
        void run() throws Exception;
    }

    // ------------------------------------------------------------------ helpers
    static KeyedOneInputStreamOperatorTestHarness<Row, Row, Row> harness() throws Exception {
        SiteTicker ticker = new SiteTicker(Map.of("ams", HOUR, "chi", 5 * MIN), Map.of("chi", "shard-1"),
                "dispatch", TICK, 25 * HOUR, 3 * HOUR);
        KeySelector<Row, Row> bySite = row -> Row.of(row.getField(0));
        KeyedOneInputStreamOperatorTestHarness<Row, Row, Row> h = new KeyedOneInputStreamOperatorTestHarness<>(
                new SiteTicker.Operator(ticker), bySite, Types.ROW(Types.STRING));
        h.open();
        return h;
    }

    static long offset = 0;

    static void send(KeyedOneInputStreamOperatorTestHarness<Row, Row, Row> h, String topic, String site, String json)
            throws Exception {
        h.processElement(new StreamRecord<>(Row.of(site, Row.of(topic, site, json, 0, offset++))));
    }

    static String ts(long ms) {
        return InputRecords.formatTs(ms);
    }

    static String price(String site, long from, Long to, double price) {
        return "{\"site_id\":\"" + site + "\",\"price_per_mwh\":" + price + ",\"valid_from\":\"" + ts(from) + "\""
                + (to == null ? "" : ",\"valid_to\":\"" + ts(to) + "\"") + "}";
    }

    static String weather(String site, long at, double temp) {
        return "{\"site_id\":\"" + site + "\",\"observed_at\":\"" + ts(at) + "\",\"temp_c\":" + temp + "}";
    }

    /**
     * The site-tick rows emitted since the last call, each as JSON (SiteTicker.SITE's fields by
     * name, the offers as [valid_from, valid_to, price, published_at]: what the assertions read),
     * and the key each went to.
     */
    static List<JsonNode> ticks(KeyedOneInputStreamOperatorTestHarness<Row, Row, Row> h, List<String> keys)
            throws Exception {
        List<JsonNode> out = new ArrayList<>();
        ConcurrentLinkedQueue<Object> q = h.getOutput();
        for (Object o : q) {
            if (o instanceof StreamRecord) {
                Row row = (Row) ((StreamRecord<?>) o).getValue();
                check(row.getField(1) == null && row.getField(2) != null, "a site tick: " + row);
                if (keys != null) {
                    keys.add((String) row.getField(0));
                }
                out.add(asJson((Row) row.getField(2)));
            }
        }
        q.clear();
        return out;
    }

    static JsonNode asJson(Row site) {
        ObjectNode json = InputRecords.JSON.createObjectNode();
        int offers = TickAssembler.OFFERS;
        for (int f = 0; f < offers; f++) {
            json.set(SiteTicker.SITE_FIELDS[f], InputRecords.JSON.valueToTree(site.getField(f)));
        }
        ArrayNode list = json.putArray("offers");
        Long[] from = (Long[]) site.getField(offers);
        for (int j = 0; j < from.length; j++) {
            list.addArray().add(from[j]).add(InputRecords.JSON.valueToTree(((Long[]) site.getField(offers + 1))[j]))
                    .add(((Double[]) site.getField(offers + 2))[j])
                    .add(InputRecords.JSON.valueToTree(((Long[]) site.getField(offers + 3))[j]));
        }
        return json;
    }

    static List<JsonNode> ticks(KeyedOneInputStreamOperatorTestHarness<Row, Row, Row> h) throws Exception {
        return ticks(h, null);
    }

    static List<JsonNode> deadLetters(KeyedOneInputStreamOperatorTestHarness<Row, Row, Row> h) throws Exception {
        List<JsonNode> out = new ArrayList<>();
        ConcurrentLinkedQueue<StreamRecord<Row>> q = h.getSideOutput(SiteTicker.DEAD_LETTERS);
        if (q != null) {
            for (StreamRecord<Row> r : q) {
                out.add(InputRecords.JSON.readTree((String) r.getValue().getField(1)));
            }
            q.clear();
        }
        return out;
    }

    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    static void eq(Object expected, Object got, String what) {
        if (expected == null ? got != null : !expected.equals(got)) {
            throw new AssertionError(what + ": expected " + expected + ", got " + got);
        }
    }

    // ------------------------------------------------------------------ cases
    static void onTimeOfferTicksWhileInForceThenOnceUnavailable() throws Exception {
        var h = harness();
        // ams: one hourly offer 10:00-11:00 at 40, weather at 09:58 of 21.5 C (no humidity: 50 %)
        send(h, "prices", "ams", price("ams", T0, T0 + HOUR, 40.0));
        send(h, "weather", "ams", weather("ams", T0 - 2 * MIN, 21.5));
        h.processWatermark(T0 + HOUR + TICK);
        List<JsonNode> t = ticks(h);
        // the weather's first tick is 10:00 (09:58 rounds up), the offer's is 10:00: ticks 10:00 .. 10:55
        // while the offer is in force, then 11:00 once, unavailable, then nothing
        eq(13, t.size(), "ticks 10:00..11:00");
        for (int i = 0; i < 12; i++) {
            eq(T0 + i * TICK, t.get(i).get("tick").longValue(), "tick " + i);
            eq(40.0, t.get(i).get("price_per_mwh").doubleValue(), "price at tick " + i);
            eq(T0 + HOUR, t.get(i).get("offer_valid_to").longValue(), "valid_to at tick " + i);
            eq(21.5, t.get(i).get("temp_c").doubleValue(), "temp at tick " + i);
            eq(50.0, t.get(i).get("rel_humidity").doubleValue(), "default humidity");
            check(t.get(i).get("online").booleanValue() && t.get(i).get("capacity_slots").isNull(), "status default");
        }
        eq(1, t.get(0).get("offers").size(), "the offer is sent once, at its first tick");
        eq(0, t.get(1).get("offers").size(), "and not again");
        check(t.get(12).get("price_per_mwh").isNull(), "11:00: no offer in force");
        h.processWatermark(T0 + 5 * HOUR);
        eq(0, ticks(h).size(), "a site without offers stops ticking");
        // job records pass through at once, untouched, under their dispatcher's key
        Row job = Row.of("dispatch", Row.of("jobs", "j-1", "{\"job_id\":\"j-1\"}", 1, 7L));
        h.processElement(new StreamRecord<>(job));
        eq(1, h.getOutput().size(), "the job record");
        eq(Row.of("dispatch", job.getField(1), null), ((StreamRecord<?>) h.getOutput().poll()).getValue(),
                "passed on as it came");
        h.close();
    }

    static void duplicatesAndLateRecordsAreCountedNotApplied() throws Exception {
        var h = harness();
        String offer = price("ams", T0, T0 + HOUR, 40.0);
        send(h, "prices", "ams", offer);
        send(h, "prices", "ams", offer); // waiting for its tick: a duplicate
        h.processWatermark(T0);
        send(h, "prices", "ams", offer); // applied: still a duplicate
        send(h, "weather", "ams", weather("ams", T0 - MIN, 30.0)); // 09:59 behind the 10:00 watermark: late
        h.processWatermark(T0 + TICK);
        List<JsonNode> t = ticks(h);
        eq(2, t.size(), "10:00 and 10:05");
        eq(1, t.get(0).get("duplicates").intValue(), "duplicate before the tick, reported with it");
        eq(1, t.get(1).get("duplicates").intValue(), "duplicate after it, with the next");
        eq(1, t.get(1).get("late_events").intValue(), "late weather counted");
        check(t.get(1).get("temp_c").isNull(), "late weather not applied");
        h.close();
    }

    static void aFeedDenserThanTheCapIsDeadLetteredAndTheStateStaysBounded() throws Exception {
        var h = harness();
        int extra = 3;
        long step = 20_000; // one offer every 20 s from 10:00, each for 20 s: 60 an hour are taken, the rest not
        for (int i = 0; i < SiteTicker.MAX_OFFERS_PER_HOUR + extra; i++) {
            send(h, "prices", "ams", price("ams", T0 + i * step, T0 + (i + 1) * step, 40.0 + i % 7));
        }
        List<JsonNode> dead = deadLetters(h);
        eq(extra, dead.size(), "the offers past the cap");
        String reason = dead.get(0).get("error").asText();
        check(reason.equals("valid_from: site ams already holds " + SiteTicker.MAX_OFFERS_PER_HOUR
                + " offers starting within half an hour of it, the most a site takes (one a minute): the feed is"
                + " too dense"), reason);
        // a new version of an offer held is taken (it adds nothing), and so is one an hour on
        send(h, "prices", "ams", price("ams", T0, T0 + step, 99.0));
        send(h, "prices", "ams", price("ams", T0 + HOUR, T0 + 2 * HOUR, 55.0));
        eq(0, deadLetters(h).size(), "a new version and an offer outside the half hour are taken");
        h.processWatermark(T0 + TICK);
        List<JsonNode> t = ticks(h);
        eq(extra, t.get(0).get("dead_letters").intValue(), "counted with the site's first tick");
        eq(99.0, t.get(0).get("price_per_mwh").doubleValue(), "the new version in force at 10:00");
        h.close();
    }

    static void aBacklogTakesTheSameOffersAsALiveRun() throws Exception {
        // four days of a 5-minute market (1,152 offers) read before any watermark, as a replay reads
        // them far ahead of it: every offer waits for its tick, none is refused, every tick goes out
        var h = harness();
        int n = 4 * 24 * 12;
        for (int i = 0; i < n; i++) {
            send(h, "prices", "chi", price("chi", T0 + i * 5 * MIN, T0 + (i + 1) * 5 * MIN, 20.0 + i % 11));
        }
        eq(0, deadLetters(h).size(), "no offer refused in a backlog");
        h.processWatermark(T0 + (n - 1) * 5 * MIN);
        List<JsonNode> t = ticks(h);
        eq(n, t.size(), "a tick per offer");
        eq(20.0 + (n - 1) % 11, t.get(n - 1).get("price_per_mwh").doubleValue(), "the last offer in force");
        h.close();
    }

    static void aLateOfferStillInForceWaitsForTheNextTick() throws Exception {
        var h = harness();
        send(h, "prices", "ams", price("ams", T0, T0 + HOUR, 40.0));
        h.processWatermark(T0 + 2 * TICK);
        ticks(h); // 10:00, 10:05, 10:10
        // an offer for 10:00-12:00 at 45 arriving at 10:10: behind the watermark but in force until 12:00;
        // same valid_from, later end: it wins from the site's next tick (10:15) on
        send(h, "prices", "ams", price("ams", T0, T0 + 2 * HOUR, 45.0));
        h.processWatermark(T0 + 3 * TICK);
        List<JsonNode> t = ticks(h);
        eq(1, t.size(), "10:15 only");
        eq(45.0, t.get(0).get("price_per_mwh").doubleValue(), "the later offer wins at 10:15");
        eq(0, t.get(0).get("late_events").intValue(), "not late");
        h.close();
    }

    static void equalStartsKeepTheWinnerInAnyOrder() throws Exception {
        for (boolean cheapFirst : new boolean[] {true, false}) {
            var h = harness();
            String cheap = price("ams", T0, T0 + HOUR, 30.0), dear = price("ams", T0, T0 + HOUR, 60.0);
            send(h, "prices", "ams", cheapFirst ? cheap : dear);
            send(h, "prices", "ams", cheapFirst ? dear : cheap);
            h.processWatermark(T0);
            JsonNode t = ticks(h).get(0);
            // same start and end: the higher price wins (never under-estimate cost)
            eq(60.0, t.get("price_per_mwh").doubleValue(), "winner, cheap first = " + cheapFirst);
            eq(1, t.get("offers").size(), "one offer per valid_from is sent");
            eq(60.0, t.get("offers").get(0).get(2).doubleValue(), "the winner is sent");
            h.close();
        }
    }

    static void dayAheadOffersAreSentOnceAtTheirPublication() throws Exception {
        var h = harness();
        long published = T0 + 45 * MIN; // 10:45, for tomorrow 03:00-04:00
        long from = T0 + 17 * HOUR;
        send(h, "prices", "ams", price("ams", T0, T0 + 2 * HOUR, 40.0));
        send(h, "prices", "ams", "{\"site_id\":\"ams\",\"price_per_mwh\":5,\"valid_from\":\"" + ts(from)
                + "\",\"valid_to\":\"" + ts(from + HOUR) + "\",\"published_at\":\"" + ts(published) + "\"}");
        h.processWatermark(T0 + HOUR);
        List<JsonNode> t = ticks(h);
        eq(13, t.size(), "10:00 .. 11:00");
        for (JsonNode row : t) {
            long tick = row.get("tick").longValue();
            int expected = tick == T0 || tick == published ? 1 : 0; // the offer in force at 10:00, the day-ahead one at 10:45
            eq(expected, row.get("offers").size(), "offers sent at " + ts(tick));
            eq(40.0, row.get("price_per_mwh").doubleValue(), "price in force at " + ts(tick));
        }
        JsonNode ahead = t.get(9).get("offers").get(0);
        eq(from, ahead.get(0).longValue(), "valid_from");
        eq(from + HOUR, ahead.get(1).longValue(), "valid_to");
        eq(5.0, ahead.get(2).doubleValue(), "price");
        eq(published, ahead.get(3).longValue(), "published_at");
        h.close();
    }

    static void staleWeatherAndStatusAtTheTick() throws Exception {
        var h = harness();
        send(h, "prices", "ams", price("ams", T0, T0 + 4 * HOUR, 40.0));
        send(h, "weather", "ams", "{\"site_id\":\"ams\",\"observed_at\":\"" + ts(T0) + "\",\"temp_c\":20,\"rel_humidity\":70}");
        send(h, "site-status", "ams", "{\"site_id\":\"ams\",\"at\":\"" + ts(T0 + TICK) + "\",\"online\":false,\"capacity_slots\":12}");
        h.processWatermark(T0 + 3 * HOUR + TICK);
        List<JsonNode> t = ticks(h);
        JsonNode first = t.get(0), second = t.get(1);
        check(first.get("online").booleanValue() && first.get("capacity_slots").isNull(), "10:00: status not yet in");
        check(!second.get("online").booleanValue() && second.get("capacity_slots").intValue() == 12, "10:05: offline, 12");
        eq(70.0, t.get(36).get("rel_humidity").doubleValue(), "13:00: weather 3 h old still counts");
        check(t.get(37).get("temp_c").isNull(), "13:05: weather older than 3 h does not");
        h.close();
    }

    static void badRecordsAreDeadLetteredWithTheirReason() throws Exception {
        var h = harness();
        String[][] bad = {
            {"prices", "{\"site_id\": \"ams\", \"price_per_mwh\": 40", "payload: not valid JSON ("},
            {"prices", "{\"site_id\":\"ams\",\"price_per_mwh\":\"cheap\",\"valid_from\":\"2018-07-01T05:00:00Z\"}",
                "price_per_mwh: not a number"},
            {"prices", "{\"site_id\":\"ams\",\"price_per_mwh\":-1e9,\"valid_from\":\"2018-07-01T05:00:00Z\"}",
                "price_per_mwh: -1e+09 is below -100000"},
            {"prices", "{\"site_id\":\"ams\",\"price_per_mwh\":NaN,\"valid_from\":\"2018-07-01T05:00:00Z\"}",
                "price_per_mwh: not a finite number"},
            {"prices", "{\"site_id\":\"xyz\",\"price_per_mwh\":40,\"valid_from\":\"2018-07-01T05:00:00Z\"}",
                "site_id: unknown site 'xyz'"},
            {"prices", "{\"site_id\":\"ams\",\"price_per_mwh\":40}", "valid_from: missing"},
            {"prices", "{\"site_id\":\"ams\",\"price_per_mwh\":40,\"valid_from\":\"yesterday\"}",
                "valid_from: not an ISO-8601 timestamp: 'yesterday'"},
            {"prices", "{\"site_id\":\"ams\",\"price_per_mwh\":40,\"valid_from\":\"2018-07-01T05:00:00\"}",
                "valid_from: timestamp without a time zone (use a trailing Z)"},
            {"prices", "{\"site_id\":\"ams\",\"price_per_mwh\":40,\"valid_from\":\"2018-07-01T05:00:00Z\","
                + "\"valid_to\":\"2018-07-01T05:00:00Z\"}", "valid_to: not after valid_from"},
            {"prices", "{\"site_id\":\"ams\",\"price_per_mwh\":40,\"valid_from\":\"2018-07-01T05:00:00Z\","
                + "\"published_at\":\"2018-07-01T06:00:00Z\"}", "published_at: after valid_from"},
            {"prices", "{\"site_id\":\"ams\",\"price_per_mwh\":40,\"valid_from\":\"2018-07-01T05:00:00Z\",\"currency\":7}",
                "currency: not a string"},
            {"weather", "{\"site_id\":\"ams\",\"observed_at\":\"2018-07-01T05:00:00Z\",\"temp_c\":500}",
                "temp_c: 500 is above 70"},
            {"weather", "{\"site_id\":\"ams\",\"observed_at\":\"2018-07-01T05:00:00Z\",\"temp_c\":20,\"rel_humidity\":101}",
                "rel_humidity: 101 is above 100"},
            {"weather", "[1, 2, 3]", "payload: expected a JSON object, got list"},
            {"weather", "{\"site_id\":\"\",\"observed_at\":\"2018-07-01T05:00:00Z\",\"temp_c\":20}",
                "site_id: not a non-empty string"},
            {"site-status", "{\"site_id\":\"ams\",\"at\":\"2018-07-01T05:00:00Z\",\"online\":\"yes\"}",
                "online: not true or false"},
            {"site-status", "{\"site_id\":\"ams\",\"at\":\"2018-07-01T05:00:00Z\",\"online\":true,\"capacity_slots\":2.5}",
                "capacity_slots: not an integer"},
            {"site-status", "{\"site_id\":\"ams\",\"at\":\"2018-07-01T05:00:00Z\",\"online\":true,\"capacity_slots\":-1}",
                "capacity_slots: -1 is outside 0..10000000"},
            {"site-status", "{\"site_id\":\"ams\",\"at\":true,\"online\":true}", "at: not a timestamp"},
            {"weather", "{\"site_id\":\"ams\",\"pad\":\"" + "x".repeat(70_000) + "\"}",
                "payload: 70026 bytes, more than the 65536 allowed"},
        };
        for (String[] b : bad) {
            send(h, b[0], "ams", b[1]);
        }
        h.processElement(new StreamRecord<>(Row.of("ams", Row.of("weather", "ams", null, 2, 99L))));
        List<JsonNode> dead = deadLetters(h);
        eq(bad.length + 1, dead.size(), "every bad record is a dead letter");
        for (int i = 0; i < bad.length; i++) {
            JsonNode d = dead.get(i);
            check(d.get("error").textValue().startsWith(bad[i][2]), bad[i][2] + " <- " + d.get("error").textValue());
            eq(bad[i][0], d.get("topic").textValue(), "topic");
            eq(Math.min(bad[i][1].length(), 4096), d.get("raw").textValue().length(), "first 4 KiB of raw");
        }
        JsonNode tombstone = dead.get(bad.length);
        eq("payload: empty (tombstone)", tombstone.get("error").textValue(), "tombstone");
        eq(2, tombstone.get("partition").intValue(), "partition");
        eq(99L, tombstone.get("offset").longValue(), "offset");
        // the site was not ticking: its counters come in a row of their own at the next tick boundary
        h.processWatermark(T0);
        List<JsonNode> t = ticks(h);
        eq(1, t.size(), "one counters row");
        check(!t.get(0).get("tick_inputs").booleanValue(), "counters only");
        // every record was keyed "ams" (the key is the JSON's site_id as SQL reads it), so all count for ams
        eq(bad.length + 1, t.get(0).get("dead_letters").intValue(), "dead letters of ams");
        // a record keyed by a site outside the catalogue: no state for it, its count goes on at once
        send(h, "prices", "xyz", "{\"site_id\":\"xyz\",\"price_per_mwh\":40,\"valid_from\":\"2018-07-01T05:00:00Z\"}");
        eq(1, deadLetters(h).size(), "the unknown site's dead letter");
        List<String> keys = new ArrayList<>();
        List<JsonNode> unknown = ticks(h, keys);
        eq(1, unknown.size(), "one counters row for the unknown site");
        eq("dispatch", keys.get(0), "to the default dispatch key");
        check(!unknown.get(0).get("tick_inputs").booleanValue(), "counters only");
        eq(1, unknown.get(0).get("dead_letters").intValue(), "its dead letter counted");
        h.close();
    }

    static void aRestoredOperatorContinuesIdentically() throws Exception {
        // the same input, once straight through and once with a snapshot and restore in the middle
        List<String> straight = new ArrayList<>(), restored = new ArrayList<>();
        for (boolean restore : new boolean[] {false, true}) {
            var h = harness();
            List<String> out = restore ? restored : straight;
            List<String> keys = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                send(h, "prices", "ams", price("ams", T0 + i * HOUR, null, 40.0 + i)); // no valid_to: the hour
            }
            send(h, "prices", "chi", price("chi", T0, T0 + HOUR, 20.0)); // chi ticks 10:00 .. 11:00 only
            send(h, "weather", "ams", weather("ams", T0, 18.0));
            h.processWatermark(T0 + 2 * HOUR);
            ticks(h, keys).forEach(j -> out.add(j.toString()));
            if (restore) {
                OperatorSubtaskState snapshot = h.snapshot(1, 1);
                h.close();
                h = new KeyedOneInputStreamOperatorTestHarness<>(new SiteTicker.Operator(
                        new SiteTicker(Map.of("ams", HOUR, "chi", 5 * MIN), Map.of("chi", "shard-1"), "dispatch",
                                TICK, 25 * HOUR, 3 * HOUR)), row -> Row.of(row.getField(0)), Types.ROW(Types.STRING));
                h.initializeState(snapshot);
                h.open();
            }
            // a re-delivery of the 10:00 offer after the restore, when the operator's own watermark starts
            // from nothing: its validity ended at 11:00, behind the 12:00 the site has ticked to: late
            send(h, "prices", "ams", price("ams", T0, null, 40.0));
            // and weather of chi for 11:30: chi's last tick was 11:00, but the watermark had passed
            // 12:00, so it is late, and late again after the restore (the checkpointed watermark)
            send(h, "weather", "chi", weather("chi", T0 + 90 * MIN, 25.0));
            send(h, "weather", "ams", weather("ams", T0 + 3 * HOUR, 25.0));
            h.processWatermark(T0 + 7 * HOUR);
            ticks(h, keys).forEach(j -> out.add(j.toString()));
            check(keys.stream().allMatch(k -> k.equals("dispatch") || k.equals("shard-1")), "dispatch keys");
            check(keys.contains("shard-1"), "chi goes to its shard's dispatcher");
            h.close();
        }
        eq(straight.size(), restored.size(), "as many rows");
        eq(straight, restored, "rows after a restore");
        check(straight.stream().anyMatch(s -> s.contains("\"late_events\":1")), "the re-delivery was counted late");
        check(straight.stream().anyMatch(s -> s.contains("\"site_id\":\"chi\"") && s.contains("\"tick_inputs\":false")
                && s.contains("\"late_events\":1")), "chi's late weather was counted in a counters row");
    }

    static void timestampsAndNumbersReadAsTheContractSays() throws Exception {
        eq(T0, InputRecords.parseIsoMs("2018-07-01T10:00:00Z", "t"), "Z");
        eq(T0, InputRecords.parseIsoMs("2018-07-01T12:00:00+02:00", "t"), "offset");
        eq(T0, InputRecords.parseIsoMs("2018-07-01 10:00:00z", "t"), "space and lower-case z");
        eq(T0 + 250, InputRecords.parseIsoMs("2018-07-01T10:00:00.250Z", "t"), "milliseconds");
        eq("2018-07-01T10:00:00Z", InputRecords.formatTs(T0), "format");
        eq("2018-07-01T10:00:00.250Z", InputRecords.formatTs(T0 + 250), "format with ms");
        eq("-1e+09", InputRecords.g(-1e9), "g");
        eq("500", InputRecords.g(500), "g");
        eq("0.0001", InputRecords.g(0.0001), "g");
        eq("1.5e-05", InputRecords.g(0.000015), "g");
        eq("123457", InputRecords.g(123456.7), "g");
        InputRecords.SiteRecord negative = InputRecords.parse("prices",
                "{\"site_id\":\"ams\",\"price_per_mwh\":-76.01,\"valid_from\":\"2018-07-01T10:00:00Z\"}", null);
        eq(-76.01, negative.price, "negative prices are market data");
        eq(T0, negative.eventMs, "without published_at the event time is valid_from");
        try {
            InputRecords.parse("prices", "{\"site_id\":\"ams\",\"price_per_mwh\":1e9,\"valid_from\":\"2018-07-01T10:00:00Z\"}", null);
            throw new AssertionError("1e9 EUR/MWh accepted");
        } catch (InputRecords.RecordError e) {
            eq("price_per_mwh: 1e+09 is above 100000", e.getMessage(), "a unit error");
        }
        EventTime et = new EventTime();
        eq(T0 - HOUR, et.eval("{\"published_at\":\"2018-07-01T09:00:00Z\",\"valid_from\":\"2018-07-01T10:00:00Z\"}",
                "published_at", "valid_from"), "published first");
        eq(T0, et.eval("{\"valid_from\":\"2018-07-01T10:00:00Z\"}", "published_at", "valid_from"), "else valid_from");
        eq(T0, et.eval("{\"observed_at\":" + T0 + "}", "observed_at"), "epoch ms");
        eq(null, et.eval("{\"observed_at\":\"soon\"}", "observed_at"), "unreadable: NULL (Kafka time then)");
        eq(null, et.eval("not json", "observed_at"), "not JSON: NULL");
    }
}
