package geodispatch;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Rows (key, record) in, rows (key, field arrays) out: the records of each key that arrived since
 * the last watermark, in arrival order, handed on together just before that watermark. A batch is
 * one array per record field (field i of record j at [i][j]), not an array of rows: PyFlink's
 * conversion of an array of rows into Python gives every element the last row's fields. The dispatch
 * operator in Python then pays its per-call cost once per key and watermark instead of once per
 * record (flink_jobs/dispatch_job.py, docs/BENCHMARKS.md "Profiling").
 *
 * Nothing is held past what the Python operator would see anyway: a batch goes out before the
 * watermark that follows its records, so every record still meets the watermark it would have met
 * alone; before each checkpoint barrier (prepareSnapshotPreBarrier), so the operator keeps no state
 * and a checkpoint holds every record on the far side of it; at the end of input; when a key's
 * batch reaches maxRecords; and at the latest maxDelayMs after its first record, so dead letters
 * and counters still flow when watermarks stall.
 */
public class WatermarkBatcher extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, ProcessingTimeCallback {

    private static final long serialVersionUID = 1L;

    private final int maxRecords;
    private final long maxDelayMs;
    private transient Map<Object, List<Row>> batches;
    private transient boolean timerPending;

    public WatermarkBatcher(int maxRecords, long maxDelayMs) {
        if (maxRecords < 1 || maxDelayMs < 1) {
            throw new IllegalArgumentException("maxRecords and maxDelayMs must be positive");
        }
        this.maxRecords = maxRecords;
        this.maxDelayMs = maxDelayMs;
    }

    @Override
    public void open() throws Exception {
        super.open();
        batches = new LinkedHashMap<>();
    }

    @Override
    public void processElement(StreamRecord<Row> element) {
        Row row = element.getValue();
        Object key = row.getField(0);
        // pipeline.object-reuse is on: the input row may be reused, so keep a copy (fields are immutable)
        Row record = Row.copy((Row) row.getField(1));
        List<Row> batch = batches.computeIfAbsent(key, k -> new ArrayList<>());
        batch.add(record);
        if (batch.size() >= maxRecords) {
            emit(key, batch);
            batches.remove(key);
        } else if (!timerPending) {
            timerPending = true;
            getProcessingTimeService().registerTimer(
                    getProcessingTimeService().getCurrentProcessingTime() + maxDelayMs, this);
        }
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        flush();
        super.processWatermark(mark);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        flush();
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void finish() throws Exception {
        flush();
        super.finish();
    }

    @Override
    public void onProcessingTime(long time) {
        timerPending = false;
        flush();
    }

    private void flush() {
        for (Map.Entry<Object, List<Row>> entry : batches.entrySet()) {
            emit(entry.getKey(), entry.getValue());
        }
        batches.clear();
    }

    private void emit(Object key, List<Row> batch) {
        int arity = batch.get(0).getArity();
        Row columns = new Row(arity);
        for (int i = 0; i < arity; i++) {
            Object sample = null;
            for (int j = 0; j < batch.size() && sample == null; j++) {
                sample = batch.get(j).getField(i);
            }
            Object[] column = newColumn(sample, batch.size());
            for (int j = 0; j < column.length; j++) {
                column[j] = batch.get(j).getField(i);
            }
            columns.setField(i, column);
        }
        output.collect(new StreamRecord<>(Row.of(key, columns)));
    }

    /**
     * An array of the field's class, as the declared BASIC_ARRAY type's serializer expects. The
     * record fields are strings, or Kafka's partition (INT) and offset (BIGINT), which are never
     * null: a column with no value at all is a string column.
     */
    private static Object[] newColumn(Object sample, int size) {
        if (sample instanceof Integer) {
            return new Integer[size];
        }
        if (sample instanceof Long) {
            return new Long[size];
        }
        return new String[size];
    }
}
