package geodispatch;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;

/**
 * TickAssembler under Flink's operator test harness: site ticks and job records in, watermarks
 * moved by hand, one row per key and tick out. Every expected value is worked out by hand in the
 * comments (tests/unit/test_jvm_operators.py runs it).
 */
public final class TickAssemblerTest {

    static final long MIN = 60_000, TICK = 5 * MIN;
    static final long T0 = 1_530_439_200_000L; // 2018-07-01T10:00:00Z, a tick

    public static void main(String[] args) throws Exception {
        int passed = 0;
        for (SiteTickerTest.Case c : List.<SiteTickerTest.Case>of(
                TickAssemblerTest::recordsWaitForTheirTickAndGoOutTogether,
                TickAssemblerTest::aLateJobJoinsTheNextTickAndCountersToo,
                TickAssemblerTest::upToStopsBeforeTheNextWaitingTickAndHeartbeatsCrossBoundaries,
                TickAssemblerTest::aRestoredOperatorContinuesIdentically)) {
            c.run();
            passed++;
        }
        System.out.println("TickAssemblerTest: " + passed + " cases passed");
    }

    static KeyedOneInputStreamOperatorTestHarness<Row, Row, Row> harness(OperatorSubtaskState from) throws Exception {
        KeyedOneInputStreamOperatorTestHarness<Row, Row, Row> h = new KeyedOneInputStreamOperatorTestHarness<>(
                new KeyedProcessOperator<>(new TickAssembler(TICK)), row -> Row.of(row.getField(0)),
                Types.ROW(Types.STRING));
        if (from != null) {
            h.initializeState(from);
        }
        h.open();
        return h;
    }

    /** A site tick at {@code tick} (null: counters of a site outside the catalogue) with one offer. */
    static void siteTick(KeyedOneInputStreamOperatorTestHarness<Row, Row, Row> h, String key, String site, Long tick)
            throws Exception {
        Row row = new Row(SiteTicker.SITE_FIELDS.length);
        row.setField(0, site);
        row.setField(1, tick);
        row.setField(2, tick != null);
        row.setField(13, new Long[] {T0});
        row.setField(14, new Long[] {null});
        row.setField(15, new Double[] {40.0});
        row.setField(16, new Long[] {null});
        h.processElement(new StreamRecord<>(Row.of(key, null, row)));
    }

    static void job(KeyedOneInputStreamOperatorTestHarness<Row, Row, Row> h, String key, String id, long submitted,
                    long offset) throws Exception {
        String envelope = "{\"job\":{\"job_id\":\"" + id + "\",\"submitted_at_ms\":" + submitted + "},\"raw\":\"{}\"}";
        h.processElement(new StreamRecord<>(Row.of(key, Row.of(InputRecords.JOBS, id, envelope, 0, offset), null),
                submitted));
    }

    /**
     * The rows out since the last call, each as "key tick..up_to [site@tick, ...] [job@offset, ...]"
     * (a site's offers are checked to come with it).
     */
    static List<String> out(KeyedOneInputStreamOperatorTestHarness<Row, Row, Row> h) {
        List<String> rows = new ArrayList<>();
        int offers = 2 + TickAssembler.OFFERS, jobs = offers + 5;
        for (Object o : h.getOutput()) {
            if (o instanceof StreamRecord) {
                Row row = (Row) ((StreamRecord<?>) o).getValue();
                Row t = (Row) row.getField(1);
                String[] site = (String[]) t.getField(2);
                Long[] siteTick = (Long[]) t.getField(3);
                List<String> sites = new ArrayList<>();
                for (int i = 0; i < site.length; i++) {
                    sites.add(site[i] + "@" + (siteTick[i] == null ? "null" : String.valueOf(min(siteTick[i]))));
                }
                eq(Arrays.asList(range(site.length)), Arrays.asList((Integer[]) t.getField(offers)), "one offer per site");
                String[] k = (String[]) t.getField(jobs + 1);
                Long[] offset = (Long[]) t.getField(jobs + 4);
                List<String> recs = new ArrayList<>();
                for (int j = 0; j < k.length; j++) {
                    recs.add(k[j] + "@" + offset[j]);
                }
                eq(k.length, ((String[]) t.getField(jobs)).length, "columns of one length");
                rows.add(row.getField(0) + " " + min((Long) t.getField(0)) + ".." + min((Long) t.getField(1)) + " "
                        + sites + " " + recs);
            }
        }
        h.getOutput().clear();
        return rows;
    }

    static Integer[] range(int n) {
        Integer[] r = new Integer[n];
        for (int i = 0; i < n; i++) {
            r[i] = i;
        }
        return r;
    }

    /** Minutes after T0, to keep the expected values readable. */
    static long min(long t) {
        return (t - T0) / MIN;
    }

    static void eq(Object expected, Object got, String what) {
        SiteTickerTest.eq(expected, got, what);
    }

    // ------------------------------------------------------------------ cases
    static void recordsWaitForTheirTickAndGoOutTogether() throws Exception {
        var h = harness(null);
        siteTick(h, "dispatch", "ams", T0);
        job(h, "dispatch", "a", T0 - 2 * MIN, 1); // 09:58 -> the 10:00 tick
        job(h, "dispatch", "b", T0 + 1 * MIN, 2); // 10:01 -> 10:05
        siteTick(h, "shard-1", "chi", T0);
        siteTick(h, "dispatch", "ams", T0 + TICK);
        eq(List.of(), out(h), "nothing before the watermark passes a tick");
        h.processWatermark(T0 + 2 * MIN);
        // each key's 10:00 tick; up to 10:00 (the 10:05 tick is still waiting for the dispatch key,
        // and the watermark has not reached 10:05 for shard-1)
        eq(List.of("dispatch 0..0 [ams@0] [a@1]", "shard-1 0..0 [chi@0] []"), sorted(out(h)),
                "the 10:00 ticks");
        h.processWatermark(T0 + TICK);
        // dispatch's 10:05 tick in arrival order; shard-1's heartbeat at 10:05 (nothing waiting)
        eq(List.of("dispatch 5..5 [ams@5] [b@2]", "shard-1 5..5 [] []"), sorted(out(h)), "10:05");
        h.close();
    }

    static void aLateJobJoinsTheNextTickAndCountersToo() throws Exception {
        var h = harness(null);
        siteTick(h, "dispatch", "ams", T0);
        h.processWatermark(T0 + 7 * MIN); // 10:00 out, up to 10:05 (the watermark's tick boundary)
        eq(List.of("dispatch 0..5 [ams@0] []"), out(h), "10:00, up to 10:05");
        job(h, "dispatch", "late", T0 + 4 * MIN, 3); // its tick 10:05 has been let run: joins 10:10
        job(h, "dispatch", "on-time", T0 + 9 * MIN, 4); // 10:10, its own
        siteTick(h, "dispatch", "zzz", null); // counters of a site outside the catalogue
        h.processElement(new StreamRecord<>(Row.of("dispatch", Row.of(JobRecords.DEAD_JOB, "bad", null, 0, 5L), null)));
        h.processWatermark(T0 + 10 * MIN);
        eq(List.of("dispatch 10..10 [zzz@null] [late@3, on-time@4, bad@5]"), out(h), "all at 10:10");
        h.close();
    }

    static void upToStopsBeforeTheNextWaitingTickAndHeartbeatsCrossBoundaries() throws Exception {
        var h = harness(null);
        siteTick(h, "dispatch", "ams", T0);
        job(h, "dispatch", "later", T0 + 28 * MIN, 1); // 10:30
        h.processWatermark(T0 + 60 * MIN);
        // 10:00 may run up to 10:25, not into 10:30, which has a record waiting; then 10:30 up to
        // 11:00, the watermark
        eq(List.of("dispatch 0..25 [ams@0] []", "dispatch 30..60 [] [later@1]"), out(h), "a jump of an hour");
        h.processWatermark(T0 + 61 * MIN);
        eq(List.of(), out(h), "no boundary crossed, no row");
        h.processWatermark(T0 + 80 * MIN);
        eq(List.of("dispatch 65..80 [] []"), out(h), "one heartbeat per watermark that crosses a boundary");
        h.close();
    }

    static void aRestoredOperatorContinuesIdentically() throws Exception {
        List<String> straight = new ArrayList<>(), restored = new ArrayList<>();
        for (boolean restore : new boolean[] {false, true}) {
            var h = harness(null);
            List<String> rows = restore ? restored : straight;
            siteTick(h, "dispatch", "ams", T0);
            job(h, "dispatch", "x", T0 + 12 * MIN, 1); // waits for 10:15
            h.processWatermark(T0);
            rows.addAll(out(h));
            if (restore) {
                OperatorSubtaskState snapshot = h.snapshot(1, 1);
                h.close();
                h = harness(snapshot);
            }
            job(h, "dispatch", "y", T0 + 3 * MIN, 2); // 10:05
            h.processWatermark(T0 + 20 * MIN);
            rows.addAll(out(h));
            h.close();
        }
        eq(List.of("dispatch 0..0 [ams@0] []", "dispatch 5..10 [] [y@2]", "dispatch 15..20 [] [x@1]"), straight,
                "straight through");
        eq(straight, restored, "rows after a restore");
    }

    static List<String> sorted(List<String> rows) {
        String[] a = rows.toArray(new String[0]);
        Arrays.sort(a);
        return List.of(a);
    }
}
