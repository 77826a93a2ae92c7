package geodispatch;

import java.util.HashSet;
import java.util.Set;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * The job records' validation, on the JVM (the rules: {@link InputRecords#parseJob}). Rows (key,
 * raw job row) in; for a valid record, (key, the row with its value replaced by
 * {@code {"job": <normalised record>, "raw": <the value as it came>}}) out, so the Python operators
 * after it read the checked values without parsing a timestamp or a rule again, and a dispatcher's
 * refusal can still dead-letter the record as it came. A bad record goes to the
 * {@link InputRecords#DEAD_LETTERS} side output with its reason, and a row of topic
 * {@link #DEAD_JOB} (no value) goes on in its place, so the dispatcher counts it in the
 * {@code dead_letters} of its next tick's {@code pipeline-metrics}.
 */
public class JobRecords extends ProcessFunction<Row, Row> {

    private static final long serialVersionUID = 1L;

    /** The topic of the row that stands in for a dead-lettered job record. */
    public static final String DEAD_JOB = "jobs-dead-letter";

    private final HashSet<String> knownSites;
    private transient Counter parsed, deadLetters;

    public JobRecords(Set<String> knownSites) {
        this.knownSites = new HashSet<>(knownSites);
    }

    @Override
    public void open(OpenContext openContext) {
        MetricGroup group = getRuntimeContext().getMetricGroup().addGroup("geodispatch");
        parsed = group.counter("records_parsed");
        deadLetters = group.counter("dead_letters");
    }

    @Override
    public void processElement(Row keyed, Context ctx, Collector<Row> out) {
        Row rec = (Row) keyed.getField(1);
        String raw = (String) rec.getField(2);
        ObjectNode job;
        try {
            job = InputRecords.parseJob(raw, knownSites);
        } catch (InputRecords.RecordError e) {
            deadLetters.inc();
            ctx.output(InputRecords.DEAD_LETTERS, InputRecords.deadLetter(rec, e.getMessage()));
            out.collect(Row.of(keyed.getField(0), Row.of(DEAD_JOB, rec.getField(1), null, rec.getField(3),
                    rec.getField(4))));
            return;
        }
        parsed.inc();
        ObjectNode envelope = InputRecords.JSON.createObjectNode();
        envelope.set("job", job);
        envelope.put("raw", raw);
        out.collect(Row.of(keyed.getField(0), Row.of(rec.getField(0), rec.getField(1), envelope.toString(),
                rec.getField(3), rec.getField(4))));
    }
}
