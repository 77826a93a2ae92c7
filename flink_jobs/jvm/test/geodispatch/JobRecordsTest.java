package geodispatch;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.streaming.util.ProcessFunctionTestHarnesses;
import org.apache.flink.types.Row;

/**
 * JobRecords and the job rules of InputRecords under Flink's ProcessFunction test harness: job
 * rows in, normalised rows, stand-ins and dead letters out, each expected value written out by
 * hand. Run by tests/unit/test_jvm_operators.py, like SiteTickerTest.
 */
public final class JobRecordsTest {

    static final String AT = "2018-07-01T10:00:00Z";
    static final long AT_MS = 1_530_439_200_000L;
    static final String SUBMIT = "{\"action\":\"submit\",\"job_id\":\"j\",\"submitted_at\":\"" + AT + "\","
            + "\"compute_hours\":2,\"slots\":1,\"priority\":3";

    public static void main(String[] args) throws Exception {
        int passed = 0;
        for (SiteTickerTest.Case c : List.<SiteTickerTest.Case>of(
                JobRecordsTest::aSubmitIsNormalisedAndKeepsItsRawValue,
                JobRecordsTest::aCancelGetsItsEventTimeOnly,
                JobRecordsTest::badJobsAreDeadLetteredWithTheirReasonAndCounted)) {
            c.run();
            passed++;
        }
        System.out.println("JobRecordsTest: " + passed + " cases passed");
    }

    static OneInputStreamOperatorTestHarness<Row, Row> harness() throws Exception {
        return ProcessFunctionTestHarnesses.forProcessFunction(new JobRecords(Set.of("ams", "sto")));
    }

    static long offset = 0;

    static void send(OneInputStreamOperatorTestHarness<Row, Row> h, String json) throws Exception {
        h.processElement(new StreamRecord<>(Row.of("dispatch", Row.of("jobs", "j", json, 0, offset++))));
    }

    /** The rows out since the last call: (key, (topic, k, v, partition, offset)). */
    static List<Row> rows(OneInputStreamOperatorTestHarness<Row, Row> h) {
        List<Row> out = new ArrayList<>(h.extractOutputValues());
        h.getOutput().clear();
        return out;
    }

    static void aSubmitIsNormalisedAndKeepsItsRawValue() throws Exception {
        var h = harness();
        String raw = SUBMIT.replace("\"priority\":3", "\"priority\":3.0") + ",\"deadline\":\"2018-07-01T12:00:00+02:00\","
                + "\"sites\":[\"sto\",\"ams\",\"sto\"],\"home\":\"ams\",\"team\":\"x\"}";
        send(h, raw);
        List<Row> out = rows(h);
        SiteTickerTest.eq(1, out.size(), "one row");
        Row row = out.get(0);
        SiteTickerTest.eq("dispatch", row.getField(0), "the key passes through");
        Row rec = (Row) row.getField(1);
        SiteTickerTest.eq("jobs", rec.getField(0), "topic");
        SiteTickerTest.eq(0L, rec.getField(4), "offset");
        JsonNode env = InputRecords.JSON.readTree((String) rec.getField(2));
        SiteTickerTest.eq(raw, env.get("raw").textValue(), "the value as it came");
        JsonNode job = env.get("job");
        SiteTickerTest.eq(AT_MS, job.get("submitted_at_ms").longValue(), "submitted_at_ms");
        // 12:00+02:00 is 10:00Z: the deadline equals the submission, which is allowed
        SiteTickerTest.eq(AT_MS, job.get("deadline_ms").longValue(), "deadline_ms, offset applied");
        check(job.get("compute_hours").isDouble() && job.get("compute_hours").doubleValue() == 2.0, "hours as 2.0");
        check(job.get("priority").isInt() && job.get("priority").intValue() == 3, "priority 3.0 -> 3");
        SiteTickerTest.eq("[\"sto\",\"ams\"]", job.get("sites").toString(), "allow-list without repeats, in order");
        SiteTickerTest.eq("x", job.get("team").textValue(), "other fields kept");
        SiteTickerTest.eq(AT, job.get("submitted_at").textValue(), "original timestamp kept");
        // without a deadline: deadline_ms is there, null
        send(h, SUBMIT + "}");
        JsonNode plain = InputRecords.JSON.readTree((String) ((Row) rows(h).get(0).getField(1)).getField(2)).get("job");
        check(plain.has("deadline_ms") && plain.get("deadline_ms").isNull(), "deadline_ms null");
        check(!plain.has("sites"), "no allow-list added");
        SiteTickerTest.eq(0, h.getSideOutput(InputRecords.DEAD_LETTERS) == null ? 0
                : h.getSideOutput(InputRecords.DEAD_LETTERS).size(), "no dead letter");
        h.close();
    }

    static void aCancelGetsItsEventTimeOnly() throws Exception {
        var h = harness();
        send(h, "{\"action\":\"cancel\",\"job_id\":\"j\",\"submitted_at\":1530439200000}");
        JsonNode job = InputRecords.JSON.readTree((String) ((Row) rows(h).get(0).getField(1)).getField(2)).get("job");
        SiteTickerTest.eq(AT_MS, job.get("submitted_at_ms").longValue(), "epoch ms read as is");
        check(!job.has("deadline_ms") && !job.has("slots"), "a cancel has no submit fields");
        h.close();
    }

    static void badJobsAreDeadLetteredWithTheirReasonAndCounted() throws Exception {
        var h = harness();
        String[][] bad = {
            {SUBMIT.replace("\"priority\":3", "\"priority\":12") + "}", "priority: 12 is outside 0..9"},
            {SUBMIT.replace("\"slots\":1", "\"slots\":1.5") + "}", "slots: not an integer"},
            {SUBMIT.replace("\"slots\":1,", "") + "}", "slots: missing"},
            {SUBMIT.replace("\"compute_hours\":2", "\"compute_hours\":0") + "}", "compute_hours: must be positive"},
            {SUBMIT.replace("\"compute_hours\":2", "\"compute_hours\":NaN") + "}", "compute_hours: not a finite number"},
            {SUBMIT.replace("\"compute_hours\":2", "\"compute_hours\":2e6") + "}", "compute_hours: 2e+06 is above 1e+06"},
            {SUBMIT + ",\"deadline\":\"2018-07-01T09:00:00Z\"}", "deadline: before submitted_at"},
            {SUBMIT.replace(AT, "2018-07-01T10:00:00") + "}",
                "submitted_at: timestamp without a time zone (use a trailing Z)"},
            {SUBMIT.replace("\"submitted_at\":\"" + AT + "\",", "") + "}", "submitted_at: missing"},
            {SUBMIT + ",\"sites\":[]}", "sites: not a non-empty list of site ids"},
            {SUBMIT + ",\"sites\":[\"ams\",3]}", "sites: not a non-empty list of site ids"},
            {SUBMIT + ",\"sites\":[\"zzz\",\"ams\",\"xyz\"]}", "sites: unknown site 'xyz'"},
            {SUBMIT + ",\"home\":\"nyc\"}", "home: unknown site 'nyc'"},
            {SUBMIT + ",\"home\":\"\"}", "home: not a site id"},
            {SUBMIT.replace("\"submit\"", "\"launch\"") + "}", "action: 'launch' is not submit or cancel"},
            {SUBMIT.replace("\"action\":\"submit\",", "") + "}", "action: missing"},
            {SUBMIT.replace("\"job_id\":\"j\"", "\"job_id\":\" \"") + "}", "job_id: not a non-empty string"},
            {"{\"action\":\"cancel\",\"job_id\":\"j\"", "payload: not valid JSON ("},
        };
        for (String[] b : bad) {
            send(h, b[0]);
        }
        h.processElement(new StreamRecord<>(Row.of("dispatch", Row.of("jobs", "j", null, 3, 77L))));
        List<JsonNode> dead = new ArrayList<>();
        for (StreamRecord<Row> r : h.getSideOutput(InputRecords.DEAD_LETTERS)) {
            SiteTickerTest.eq("j", r.getValue().getField(0), "dead letter keyed by the record's key");
            dead.add(InputRecords.JSON.readTree((String) r.getValue().getField(1)));
        }
        SiteTickerTest.eq(bad.length + 1, dead.size(), "every bad record is a dead letter");
        for (int i = 0; i < bad.length; i++) {
            JsonNode d = dead.get(i);
            check(d.get("error").textValue().startsWith(bad[i][1]), bad[i][1] + " <- " + d.get("error").textValue());
            SiteTickerTest.eq(bad[i][0], d.get("raw").textValue(), "raw as it came");
            SiteTickerTest.eq("jobs", d.get("topic").textValue(), "topic");
        }
        SiteTickerTest.eq("payload: empty (tombstone)", dead.get(bad.length).get("error").textValue(), "tombstone");
        SiteTickerTest.eq(77L, dead.get(bad.length).get("offset").longValue(), "tombstone offset");
        // a stand-in row per dead letter, so the dispatcher counts it in its tick's metrics
        List<Row> out = rows(h);
        SiteTickerTest.eq(bad.length + 1, out.size(), "one stand-in per bad record");
        for (Row row : out) {
            Row rec = (Row) row.getField(1);
            SiteTickerTest.eq(JobRecords.DEAD_JOB, rec.getField(0), "stand-in topic");
            SiteTickerTest.eq(null, rec.getField(2), "no value");
            SiteTickerTest.eq("dispatch", row.getField(0), "the stand-in keeps the key");
        }
        h.close();
    }

    static void check(boolean ok, String what) {
        SiteTickerTest.check(ok, what);
    }
}
