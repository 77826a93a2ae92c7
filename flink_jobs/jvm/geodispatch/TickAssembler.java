package geodispatch;

import java.util.ArrayList;
import java.util.List;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * Each dispatch key's ticks, assembled on the JVM: rows (key, job record, site tick) in (one of the
 * last two null), keyed by the dispatch key (SiteTicker's site ticks and counters, the job records),
 * and one row per key and tick out, once the watermark has passed the tick: (key, (tick, up_to, the
 * tick's site ticks and job records as one array per field, see batch())). The Python dispatch
 * operator is then called once per key and tick and keeps no timers, inboxes or heaps of its own;
 * the records wait here, in Flink state, with an event-time timer at their tick.
 *
 * <p>Which tick a record joins: a site tick its own (SiteTicker emits it before the watermark
 * passes it); a job record the first tick at or after its event time ({@code submitted_at}).
 * A record that can no longer join its own tick (its tick is at or behind the watermark, or the
 * dispatcher has already been let past it) joins the next tick after both, with its own tick or
 * event time kept, so the dispatcher counts it late: a late job still gets decided, a late site
 * tick's offers still reach the dispatcher's offer book. Counters rows of a site outside the
 * catalogue (no tick) and the stand-ins of dead-lettered job records join that next tick too.
 *
 * <p>{@code up_to}: how far the dispatcher may run its own ticks (the last chance of a pending
 * deadline, which only it knows) after this one: up to the tick the watermark has passed, but not
 * into a tick that still has records waiting here. Once a key has seen a record it keeps a timer
 * at the tick after its last {@code up_to}, so those ticks run as event time passes them even when
 * nothing arrives (one row per tick boundary the watermark crosses, not one per tick of a jump).
 *
 * <p>A batch is one array per field (field i of record j at [i][j]), not an array of rows: PyFlink's
 * conversion of an array of rows into Python gives every element the last row's fields.
 */
public class TickAssembler extends KeyedProcessFunction<Row, Row, Row> {

    private static final long serialVersionUID = 1L;

    /** The fields of a record (topic, k, v, partition, offset), as the job's raw rows have them. */
    public static final TypeInformation<Row> RECORD =
            Types.ROW(Types.STRING, Types.STRING, Types.STRING, Types.INT, Types.LONG);
    /** What waits for a tick: (job record, site tick), one of them null. */
    static final TypeInformation<Row> WAITING = Types.ROW(RECORD, SiteTicker.SITE);
    /** The element class of each site column: SiteTicker.SITE's fields before its offer arrays. */
    static final Class<?>[] SITE_COLUMNS = {String.class, Long.class, Boolean.class, Double.class, Long.class,
        String.class, Double.class, Double.class, Boolean.class, Integer.class, Long.class, Long.class, Long.class};
    static final int OFFERS = SITE_COLUMNS.length; // SiteTicker.SITE's offer arrays start here

    private final long tickMs;
    private transient MapState<Long, List<Row>> waiting; // tick -> the records that join it
    private transient ValueState<Long> upTo; // the last up_to sent: the dispatcher may have run to it

    public TickAssembler(long tickMs) {
        if (tickMs < 1) {
            throw new IllegalArgumentException("tickMs must be positive");
        }
        this.tickMs = tickMs;
    }

    @Override
    public void open(OpenContext openContext) {
        waiting = getRuntimeContext().getMapState(
                new MapStateDescriptor<>("waiting", Types.LONG, Types.LIST(WAITING)));
        upTo = getRuntimeContext().getState(new ValueStateDescriptor<>("up-to", Types.LONG));
    }

    @Override
    public void processElement(Row keyed, Context ctx, Collector<Row> out) throws Exception {
        // pipeline.object-reuse is on: the input row may be reused, so keep a copy (fields are immutable)
        Row rec = (Row) keyed.getField(1), site = (Row) keyed.getField(2);
        Row waits = Row.of(rec == null ? null : Row.copy(rec), site == null ? null : Row.copy(site));
        Long own = null; // the tick the record belongs to, if it has one
        if (site != null) {
            own = (Long) site.getField(1);
        } else if (InputRecords.JOBS.equals(rec.getField(0))) {
            own = tickAtOrAfter(submittedMs((String) rec.getField(2)));
        }
        long watermark = ctx.timerService().currentWatermark();
        Long last = upTo.value();
        long tick;
        if (own != null && own > watermark && (last == null || own > last)) {
            tick = own;
        } else { // late, or no tick of its own
            long passed = last == null ? watermark : Math.max(watermark, last);
            // before the first watermark a record with no tick of its own joins that of its timestamp
            tick = passed != Long.MIN_VALUE ? tickAtOrAfter(passed + 1)
                    : tickAtOrAfter(ctx.timestamp() == null ? 0L : ctx.timestamp());
        }
        List<Row> records = waiting.get(tick);
        if (records == null) {
            records = new ArrayList<>();
        }
        records.add(waits);
        waiting.put(tick, records);
        ctx.timerService().registerEventTimeTimer(tick);
    }

    @Override
    public void onTimer(long tick, OnTimerContext ctx, Collector<Row> out) throws Exception {
        List<Row> records = waiting.get(tick);
        waiting.remove(tick);
        long until = floorTick(ctx.timerService().currentWatermark());
        for (Long next : waiting.keys()) {
            until = Math.min(until, next - tickMs);
        }
        until = Math.max(until, tick);
        Long last = upTo.value();
        if (last != null && until <= last && records == null) {
            return; // a heartbeat the dispatcher is already past
        }
        upTo.update(last == null ? until : Math.max(last, until));
        out.collect(Row.of(ctx.getCurrentKey().getField(0), batch(tick, until, records)));
        if (until <= Long.MAX_VALUE - tickMs) {
            ctx.timerService().registerEventTimeTimer(until + tickMs);
        }
    }

    /**
     * (tick, up_to, the site ticks' columns (SiteTicker.SITE's fields before its offers, one array
     * each), their offers flattened (offer_site: the index of the site tick; offer_from, offer_to,
     * offer_price, offer_published), the job records' columns (topic, k, v, partition, offset)).
     */
    private static Row batch(long tick, long until, List<Row> waiting) {
        List<Row> sites = new ArrayList<>(), jobs = new ArrayList<>();
        for (Row w : waiting == null ? List.<Row>of() : waiting) {
            if (w.getField(1) != null) {
                sites.add((Row) w.getField(1));
            } else {
                jobs.add((Row) w.getField(0));
            }
        }
        Row out = new Row(2 + OFFERS + 5 + 5);
        out.setField(0, tick);
        out.setField(1, until);
        for (int f = 0; f < OFFERS; f++) {
            Object[] column = (Object[]) java.lang.reflect.Array.newInstance(SITE_COLUMNS[f], sites.size());
            for (int i = 0; i < column.length; i++) {
                column[i] = sites.get(i).getField(f);
            }
            out.setField(2 + f, column);
        }
        List<Integer> offerSite = new ArrayList<>();
        List<Long> from = new ArrayList<>(), to = new ArrayList<>(), published = new ArrayList<>();
        List<Double> price = new ArrayList<>();
        for (int i = 0; i < sites.size(); i++) {
            Row site = sites.get(i);
            Long[] f = (Long[]) site.getField(OFFERS);
            for (int j = 0; j < f.length; j++) {
                offerSite.add(i);
                from.add(f[j]);
                to.add(((Long[]) site.getField(OFFERS + 1))[j]);
                price.add(((Double[]) site.getField(OFFERS + 2))[j]);
                published.add(((Long[]) site.getField(OFFERS + 3))[j]);
            }
        }
        int at = 2 + OFFERS;
        out.setField(at, offerSite.toArray(new Integer[0]));
        out.setField(at + 1, from.toArray(new Long[0]));
        out.setField(at + 2, to.toArray(new Long[0]));
        out.setField(at + 3, price.toArray(new Double[0]));
        out.setField(at + 4, published.toArray(new Long[0]));
        int n = jobs.size();
        String[] topic = new String[n], k = new String[n], v = new String[n];
        Integer[] partition = new Integer[n];
        Long[] offset = new Long[n];
        for (int j = 0; j < n; j++) {
            Row r = jobs.get(j);
            topic[j] = (String) r.getField(0);
            k[j] = (String) r.getField(1);
            v[j] = (String) r.getField(2);
            partition[j] = (Integer) r.getField(3);
            offset[j] = (Long) r.getField(4);
        }
        out.setField(at + 5, topic);
        out.setField(at + 6, k);
        out.setField(at + 7, v);
        out.setField(at + 8, partition);
        out.setField(at + 9, offset);
        return out;
    }

    /** A job record's event time, from the envelope JobRecords wrote ({"job": {..., "submitted_at_ms"}}). */
    private static long submittedMs(String envelope) throws java.io.IOException {
        JsonNode at = InputRecords.JSON.readTree(envelope).path("job").path("submitted_at_ms");
        if (!at.canConvertToLong()) {
            throw new IllegalStateException("job record without submitted_at_ms from JobRecords: " + envelope);
        }
        return at.asLong();
    }

    private long tickAtOrAfter(long t) {
        return SiteTicker.tickAtOrAfter(t, tickMs);
    }

    private long floorTick(long t) {
        return Math.floorDiv(t, tickMs) * tickMs;
    }
}
