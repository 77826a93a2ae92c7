package geodispatch;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import java.util.TreeSet;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.BasicArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * One site's input records -> one row per site and tick with what the site looked like then: the
 * per-record half of the dispatch job, on the JVM (the Python dispatcher runs once per tick on
 * these rows). Keyed by {@code site_id}, in the style of flink-training's LongRidesSolution: one
 * keyed function, its state, its timers.
 *
 * <p>Per record: validate (InputRecords; a bad record goes to the {@link #DEAD_LETTERS} side
 * output with its reason), then classify against the watermark: a re-delivery of a record already
 * seen is a duplicate, a record behind the watermark is late (an offer only once its validity
 * has ended); both are counted, nothing else happens to them. An accepted record waits in state
 * for the first tick at or after its event time, and an event-time timer there ticks the site.
 * (An offer behind the watermark but still in force waits for the site's next tick.)
 *
 * <p>Per tick T: apply the records due, then emit the inputs at T: the offer in force (the newest
 * offer starting at or before T, if its validity has not ended; on equal starts the later end,
 * then the higher price, then the larger source, then currency wins), the latest weather no older
 * than {@code maxWeatherAgeMs}, the latest status, the offers that changed since the last row, each
 * with its end resolved (the dispatcher keeps a book of them for the plan ahead and applies no offer
 * rule of its own), and the counters. The site keeps
 * ticking while an offer is in force; once none is, it emits one row that says so and waits for
 * its next record. These are the rules tests/reference.py checks the job against.
 *
 * <p>Job records (checked by {@link JobRecords}) pass through as they are, keyed by their
 * dispatcher's key: then this operator's watermark is that of every input, as the dispatcher's
 * is, and a site's timers fire before the dispatcher runs their tick. (Were the jobs to bypass it, an idle site topic could leave this
 * operator's watermark behind, when every split of a source goes idle at once, while the jobs
 * moved the dispatcher's on: it would run ticks without the sites.)
 *
 * <p>Out: rows (dispatch key, job record, site tick), one of the last two null: a job row as it
 * came, or a site tick, typed ({@link #SITE}: no JSON between the job's own operators), on its way
 * to the dispatcher's {@link TickAssembler}. A site tick with {@code tick_inputs} false carries only
 * counters (late, duplicate or bad records that arrived while the site was not ticking), at the
 * next tick boundary after the watermark.
 */
public class SiteTicker extends KeyedProcessFunction<Row, Row, Row> {

    private static final long serialVersionUID = 1L;

    /** A site tick's fields: what the site looked like at the tick, and the offers changed since its last. */
    public static final String[] SITE_FIELDS = {"site_id", "tick", "tick_inputs", "price_per_mwh", "offer_valid_to",
        "currency", "temp_c", "rel_humidity", "online", "capacity_slots", "late_events", "duplicates", "dead_letters",
        "offer_from", "offer_to", "offer_price", "offer_published"};
    public static final TypeInformation<Row> SITE = Types.ROW_NAMED(SITE_FIELDS, Types.STRING, Types.LONG,
            Types.BOOLEAN, Types.DOUBLE, Types.LONG, Types.STRING, Types.DOUBLE, Types.DOUBLE, Types.BOOLEAN, Types.INT,
            Types.LONG, Types.LONG, Types.LONG, BasicArrayTypeInfo.LONG_ARRAY_TYPE_INFO,
            BasicArrayTypeInfo.LONG_ARRAY_TYPE_INFO, BasicArrayTypeInfo.DOUBLE_ARRAY_TYPE_INFO,
            BasicArrayTypeInfo.LONG_ARRAY_TYPE_INFO);
    /** Dead letters: (key, dead-letter JSON) for the dead-letter topic. */
    public static final OutputTag<Row> DEAD_LETTERS = InputRecords.DEAD_LETTERS;
    /** The version of {@link SiteState}: a savepoint of another version fails with one line. */
    public static final int STATE_VERSION = 3;
    /**
     * The most offers (distinct valid_from, kept or waiting for their tick) a site holds starting
     * within half an hour either side of a new one: one a minute. A 5-minute market has 12; a feed
     * denser than this (a new offer every second) has its further offers dead-lettered and counted,
     * so a site's state stays bounded whatever its feed sends (history is pruned a day back). The
     * rule looks at the offers' own times, never at how far the watermark has come, so a backlog
     * replay (offers read far ahead of the watermark, waiting here) takes exactly what a live run
     * takes.
     */
    public static final int MAX_OFFERS_PER_HOUR = 60;
    private static final long HALF_HOUR_MS = 1_800_000L;

    private final Map<String, Long> offerIntervalMs; // site -> its offer interval (the catalogue)
    private final Map<String, String> dispatchKey; // site -> the key of the dispatcher that decides it
    private final String defaultDispatchKey;
    private final long tickMs;
    private final long historyMs; // offers are kept this far back for the forecast
    private final long maxWeatherAgeMs;

    private transient ValueState<SiteState> state;
    // the operator's watermark when the state it was restored from was taken (see Operator)
    private transient long restoredWatermark = Long.MIN_VALUE;
    private transient Counter parsed, deadLetters, late, duplicates, offersOverCap;

    /** {@code offerIntervalMs}: any Number per site (Python's ints arrive as Integer or Long). */
    public SiteTicker(Map<String, ? extends Number> offerIntervalMs, Map<String, String> dispatchKey, String defaultDispatchKey,
                      long tickMs, long historyMs, long maxWeatherAgeMs) {
        if (tickMs <= 0 || historyMs < 0 || maxWeatherAgeMs < 0) {
            throw new IllegalArgumentException("tickMs must be positive, historyMs and maxWeatherAgeMs not negative");
        }
        this.offerIntervalMs = new HashMap<>();
        offerIntervalMs.forEach((site, ms) -> this.offerIntervalMs.put(site, ms.longValue()));
        this.dispatchKey = new HashMap<>(dispatchKey);
        this.defaultDispatchKey = defaultDispatchKey;
        this.tickMs = tickMs;
        this.historyMs = historyMs;
        this.maxWeatherAgeMs = maxWeatherAgeMs;
    }

    @Override
    public void open(OpenContext openContext) throws Exception {
        state = getRuntimeContext().getState(
                new ValueStateDescriptor<>("site", TypeInformation.of(SiteState.class)));
        MetricGroup group = getRuntimeContext().getMetricGroup().addGroup("geodispatch");
        parsed = group.counter("records_parsed");
        deadLetters = group.counter("dead_letters");
        late = group.counter("late_events");
        duplicates = group.counter("duplicates");
        offersOverCap = group.counter("offers_over_cap");
    }

    // ------------------------------------------------------------------ records
    @Override
    public void processElement(Row keyed, Context ctx, Collector<Row> out) throws Exception {
        Row rec = (Row) keyed.getField(1);
        String topic = (String) rec.getField(0);
        if (InputRecords.JOBS.equals(topic) || JobRecords.DEAD_JOB.equals(topic)) {
            // checked by JobRecords and keyed by their dispatcher already: on at once, untouched
            out.collect(Row.of(keyed.getField(0), rec, null));
            return;
        }
        String raw = (String) rec.getField(2);
        InputRecords.SiteRecord r;
        try {
            r = InputRecords.parse(topic, raw, offerIntervalMs.keySet());
        } catch (InputRecords.RecordError e) {
            deadLetters.inc();
            ctx.output(DEAD_LETTERS, InputRecords.deadLetter(rec, e.getMessage()));
            String site = (String) keyed.getField(0);
            if (offerIntervalMs.containsKey(site)) {
                SiteState s = load(site);
                s.deadLetters++;
                countsTimer(s, ctx);
                state.update(s);
            } else { // no state for a site outside the catalogue: its count goes to the default dispatcher now
                SiteState one = new SiteState();
                one.deadLetters = 1;
                out.collect(Row.of(defaultDispatchKey, null, countsOnly(site, null, one)));
            }
            return;
        }
        parsed.inc();
        SiteState s = load(r.siteId);
        long watermark = watermark(s, ctx);
        String fp = topic + "|" + raw; // a duplicate is the same record again, byte for byte
        if (s.seen.containsKey(fp) || s.pendingFps.contains(fp)) {
            duplicates.inc();
            s.duplicates++;
            countsTimer(s, ctx);
        } else if (lateAt(r, watermark)) {
            late.inc();
            s.late++;
            countsTimer(s, ctx);
        } else if (r.topic.equals(InputRecords.PRICES) && offersNear(s, r.validFromMs) >= MAX_OFFERS_PER_HOUR) {
            offersOverCap.inc();
            deadLetters.inc();
            s.deadLetters++;
            ctx.output(DEAD_LETTERS, InputRecords.deadLetter(rec, "valid_from: site " + r.siteId + " already holds "
                    + MAX_OFFERS_PER_HOUR + " offers starting within half an hour of it, the most a site takes (one a"
                    + " minute): the feed is too dense"));
            countsTimer(s, ctx);
        } else {
            long tick = tickAtOrAfter(r.eventMs);
            s.pending.computeIfAbsent(tick, t -> new ArrayList<>()).add(fp);
            s.pendingFps.add(fp);
            if (r.topic.equals(InputRecords.PRICES)) {
                s.pendingFrom.merge(r.validFromMs, 1, Integer::sum);
            }
            if (tick > watermark) { // else: an offer still in force, applied at the site's next tick
                ctx.timerService().registerEventTimeTimer(tick);
            }
        }
        state.update(s);
    }

    /**
     * The watermark a record is classified against. After a restore the operator's watermark starts
     * from nothing until the sources send one; the watermark at the checkpoint (Operator keeps it)
     * and the site's last tick are watermarks it had already passed, so a record replayed after a
     * restore is judged as it was the first time.
     */
    private long watermark(SiteState s, Context ctx) {
        long watermark = Math.max(ctx.timerService().currentWatermark(), restoredWatermark);
        return s.lastTick == null ? watermark : Math.max(watermark, s.lastTick);
    }

    private boolean lateAt(InputRecords.SiteRecord r, long watermark) {
        if (r.topic.equals(InputRecords.PRICES)) { // an offer is useless once its validity has ended
            return offerEnd(r.siteId, r.validFromMs, r.validToMs) <= watermark;
        }
        return r.eventMs <= watermark;
    }

    /**
     * The other offers (distinct valid_from, kept or waiting) starting within half an hour of
     * {@code validFrom}; 0 when an offer with that valid_from is held already (a new version of it
     * adds nothing to the state).
     */
    private static int offersNear(SiteState s, long validFrom) {
        if (s.offers.containsKey(validFrom) || s.pendingFrom.containsKey(validFrom)) {
            return 0;
        }
        long lo = validFrom - HALF_HOUR_MS, hi = validFrom + HALF_HOUR_MS;
        int n = s.offers.subMap(lo, hi).size();
        for (Long from : s.pendingFrom.subMap(lo, hi).keySet()) {
            if (!s.offers.containsKey(from)) {
                n++;
            }
        }
        return n;
    }

    /**
     * Counters ride on the site's next tick; a site that is not ticking gets a timer at the next
     * tick boundary after the watermark for a row of counters alone.
     */
    private void countsTimer(SiteState s, Context ctx) {
        long watermark = watermark(s, ctx);
        if (s.chainTick != null || (!s.pending.isEmpty() && s.pending.lastKey() > watermark)) {
            return;
        }
        long at = tickAtOrAfter(Math.max(watermark, 0) + 1); // before any watermark: the first one fires it
        if (s.countsTimer == null || s.countsTimer < at) {
            s.countsTimer = at;
            ctx.timerService().registerEventTimeTimer(at);
        }
    }

    // ------------------------------------------------------------------ ticks
    @Override
    public void onTimer(long tick, OnTimerContext ctx, Collector<Row> out) throws Exception {
        String site = (String) ctx.getCurrentKey().getField(0);
        SiteState s = load(site);
        if (s.countsTimer != null && s.countsTimer <= tick) {
            s.countsTimer = null;
        }
        s.lastTick = s.lastTick == null ? tick : Math.max(s.lastTick, tick);
        boolean ticks = s.pending.containsKey(tick) || (s.chainTick != null && s.chainTick == tick);
        if (!ticks) {
            if (s.late + s.duplicates + s.deadLetters > 0) {
                out.collect(row(site, countsOnly(site, tick, s)));
            }
            state.update(s);
            return;
        }
        NavigableMap<Long, ArrayList<String>> due = s.pending.headMap(tick, true);
        for (ArrayList<String> fps : due.values()) {
            for (String fp : fps) {
                apply(s, fp);
            }
        }
        due.clear();
        Row inputs = inputsAt(site, tick, s);
        prune(site, tick, s);
        Offer current = inForce(site, s, tick);
        s.chainTick = current != null ? tick + tickMs : null;
        if (s.chainTick != null) {
            ctx.timerService().registerEventTimeTimer(s.chainTick);
        }
        out.collect(row(site, inputs));
        state.update(s);
    }

    private void apply(SiteState s, String fp) throws InputRecords.RecordError {
        s.pendingFps.remove(fp);
        int bar = fp.indexOf('|');
        InputRecords.SiteRecord r = InputRecords.parse(fp.substring(0, bar), fp.substring(bar + 1), null);
        switch (r.topic) {
            case InputRecords.PRICES: {
                s.pendingFrom.computeIfPresent(r.validFromMs, (k, n) -> n > 1 ? n - 1 : null);
                s.seen.put(fp, r.validFromMs); // remembered until the offer can no longer arrive on time
                Offer o = new Offer(r.validToMs, r.price, r.currency, r.source, r.publishedMs);
                Offer cur = s.offers.get(r.validFromMs);
                if (cur == null || o.beats(cur, offerEnd(r.siteId, r.validFromMs, r.validToMs),
                        offerEnd(r.siteId, r.validFromMs, cur.validToMs))) {
                    s.offers.put(r.validFromMs, o);
                    s.changedOffers.add(r.validFromMs);
                }
                break;
            }
            case InputRecords.WEATHER: {
                s.seen.put(fp, r.eventMs);
                double[] w = {r.tempC, r.relHumidity};
                // one observation per instant: of two, the larger (temp, rh) wins, whatever the order
                s.weather.merge(r.eventMs, w, (a, b) -> compare(a[0], a[1], b[0], b[1]) >= 0 ? a : b);
                break;
            }
            default: {
                s.seen.put(fp, r.eventMs);
                double[] st = {r.online ? 1 : 0, r.capacitySlots == null ? -1 : r.capacitySlots};
                s.status.merge(r.eventMs, st, (a, b) -> compare(a[0], a[1], b[0], b[1]) >= 0 ? a : b);
            }
        }
    }

    private Row inputsAt(String site, long tick, SiteState s) {
        Row row = new Row(SITE_FIELDS.length);
        row.setField(0, site);
        row.setField(1, tick);
        row.setField(2, true);
        Offer offer = inForce(site, s, tick);
        if (offer != null) {
            Map.Entry<Long, Offer> e = s.offers.floorEntry(tick);
            row.setField(3, offer.price);
            row.setField(4, offerEnd(site, e.getKey(), offer.validToMs));
            row.setField(5, offer.currency);
        } else {
            row.setField(5, "");
        }
        Map.Entry<Long, double[]> w = s.weather.floorEntry(tick);
        if (w != null && tick - w.getKey() <= maxWeatherAgeMs) {
            row.setField(6, w.getValue()[0]);
            row.setField(7, w.getValue()[1]);
        }
        Map.Entry<Long, double[]> st = s.status.floorEntry(tick);
        row.setField(8, st == null || st.getValue()[0] == 1);
        if (st != null && st.getValue()[1] >= 0) {
            row.setField(9, (int) st.getValue()[1]);
        }
        List<Long> from = new ArrayList<>(), to = new ArrayList<>(), published = new ArrayList<>();
        List<Double> price = new ArrayList<>();
        for (Long f : s.changedOffers) {
            Offer o = s.offers.get(f);
            if (o != null) {
                from.add(f);
                to.add(offerEnd(site, f, o.validToMs)); // resolved here: Python keeps no offer rule
                price.add(o.price);
                published.add(o.publishedMs);
            }
        }
        s.changedOffers.clear();
        row.setField(13, from.toArray(new Long[0]));
        row.setField(14, to.toArray(new Long[0]));
        row.setField(15, price.toArray(new Double[0]));
        row.setField(16, published.toArray(new Long[0]));
        counters(row, s);
        return row;
    }

    /** A row of counters only; {@code tick} null for a site outside the catalogue (it has no ticks). */
    private static Row countsOnly(String site, Long tick, SiteState s) {
        Row row = new Row(SITE_FIELDS.length);
        row.setField(0, site);
        row.setField(1, tick);
        row.setField(2, false);
        row.setField(5, "");
        row.setField(8, true);
        row.setField(13, new Long[0]);
        row.setField(14, new Long[0]);
        row.setField(15, new Double[0]);
        row.setField(16, new Long[0]);
        counters(row, s);
        return row;
    }

    private static void counters(Row row, SiteState s) {
        row.setField(10, s.late);
        row.setField(11, s.duplicates);
        row.setField(12, s.deadLetters);
        s.late = s.duplicates = s.deadLetters = 0;
    }

    /** Forget what can no longer change an answer at or after this tick. */
    private void prune(String site, long tick, SiteState s) {
        keepFromLatest(s.offers, tick - historyMs); // a day back stays for the forecast
        keepFromLatest(s.weather, tick);
        keepFromLatest(s.status, tick);
        long cutoff = tick - offerIntervalMs.get(site); // an older re-delivery is late anyway
        s.seen.values().removeIf(t -> t <= cutoff);
    }

    private static <V> void keepFromLatest(TreeMap<Long, V> items, long t) {
        Long latest = items.floorKey(t);
        if (latest != null) {
            items.headMap(latest, false).clear();
        }
    }

    private Offer inForce(String site, SiteState s, long t) {
        Map.Entry<Long, Offer> e = s.offers.floorEntry(t);
        if (e == null || offerEnd(site, e.getKey(), e.getValue().validToMs) <= t) {
            return null;
        }
        return e.getValue();
    }

    private long offerEnd(String site, long validFrom, Long validTo) {
        return validTo != null ? validTo : validFrom + offerIntervalMs.get(site);
    }

    private long tickAtOrAfter(long t) {
        return tickAtOrAfter(t, tickMs);
    }

    /** The first tick (a multiple of tickMs since the epoch) at or after t; TickAssembler's too. */
    static long tickAtOrAfter(long t, long tickMs) {
        return Math.floorDiv(t, tickMs) * tickMs + (Math.floorMod(t, tickMs) == 0 ? 0 : tickMs);
    }

    private static int compare(double a0, double a1, double b0, double b1) {
        int c = Double.compare(a0, b0);
        return c != 0 ? c : Double.compare(a1, b1);
    }

    private SiteState load(String site) throws java.io.IOException {
        SiteState s = state.value();
        if (s == null) {
            s = new SiteState();
            s.version = STATE_VERSION;
        } else if (s.version != STATE_VERSION) {
            throw new IllegalStateException("site state of " + site + " is version " + s.version
                    + ", this job reads version " + STATE_VERSION + ": start it without the savepoint (docs/DEPLOY.md)");
        }
        return s;
    }

    private Row row(String site, Row inputs) {
        return Row.of(dispatchKey.getOrDefault(site, defaultDispatchKey), null, inputs);
    }

    /**
     * The operator to run a SiteTicker with: a KeyedProcessOperator that also checkpoints its
     * watermark (operator state, the smallest of all subtasks' on restore), because a restored
     * operator starts without one and would take records that were late for on time.
     */
    public static class Operator extends KeyedProcessOperator<Row, Row, Row> {
        private static final long serialVersionUID = 1L;
        private transient ListState<Long> watermarks;
        private transient long watermark = Long.MIN_VALUE;

        public Operator(SiteTicker ticker) {
            super(ticker);
        }

        @Override
        public void initializeState(StateInitializationContext context) throws Exception {
            super.initializeState(context);
            watermarks = context.getOperatorStateStore().getUnionListState(
                    new ListStateDescriptor<>("watermark", Types.LONG));
            long restored = Long.MAX_VALUE;
            for (Long w : watermarks.get()) {
                restored = Math.min(restored, w);
            }
            if (restored != Long.MAX_VALUE) {
                watermark = restored;
                ((SiteTicker) userFunction).restoredWatermark = restored;
            }
        }

        @Override
        public void processWatermark(Watermark mark) throws Exception {
            watermark = Math.max(watermark, mark.getTimestamp());
            super.processWatermark(mark);
        }

        @Override
        public void snapshotState(StateSnapshotContext context) throws Exception {
            super.snapshotState(context);
            watermarks.update(List.of(watermark));
        }
    }

    // ------------------------------------------------------------------ state
    /** An offer as the site keeps it, by its valid_from. */
    public static class Offer {
        public Long validToMs;
        public double price;
        public String currency;
        public String source;
        public Long publishedMs;

        public Offer() {}

        Offer(Long validToMs, double price, String currency, String source, Long publishedMs) {
            this.validToMs = validToMs;
            this.price = price;
            this.currency = currency;
            this.source = source;
            this.publishedMs = publishedMs;
        }

        /** Of two offers with one valid_from: the later end, the higher price, the larger source, currency. */
        boolean beats(Offer other, long end, long otherEnd) {
            if (end != otherEnd) return end > otherEnd;
            if (price != other.price) return price > other.price;
            int c = source.compareTo(other.source);
            if (c != 0) return c > 0;
            return currency.compareTo(other.currency) > 0;
        }
    }

    /** Everything one site keeps between records (Kryo-serialised; versioned by STATE_VERSION). */
    public static class SiteState {
        public int version;
        public TreeMap<Long, Offer> offers = new TreeMap<>(); // by valid_from
        public TreeSet<Long> changedOffers = new TreeSet<>(); // valid_from of offers changed since the last row
        public TreeMap<Long, double[]> weather = new TreeMap<>(); // observed_at -> (temp_c, rel_humidity)
        public TreeMap<Long, double[]> status = new TreeMap<>(); // at -> (online 1/0, capacity or -1)
        public HashMap<String, Long> seen = new HashMap<>(); // fingerprint -> when it stops mattering
        public TreeMap<Long, ArrayList<String>> pending = new TreeMap<>(); // tick -> accepted records due then
        public HashSet<String> pendingFps = new HashSet<>();
        public TreeMap<Long, Integer> pendingFrom = new TreeMap<>(); // valid_from -> price records waiting
        public Long chainTick; // the next tick while an offer is in force
        public Long countsTimer; // the pending counters-only timer
        public Long lastTick; // the latest timer that fired: the watermark has passed it
        public long late, duplicates, deadLetters; // since the last row

        public SiteState() {}
    }
}
