package geodispatch;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * SQL scalar function {@code EVENT_TIME_MS(v, field, ...)}: a raw input record's event time in
 * epoch ms, from the first of the fields that holds a usable timestamp (InputRecords' parser, the
 * one the site operator validates with), or NULL. The sources declare their watermarks on it, so a
 * record's watermark time and its validated time are one rule.
 */
public class EventTime extends ScalarFunction {
    private static final long serialVersionUID = 1L;

    public Long eval(String raw, String... fields) {
        JsonNode rec;
        try {
            rec = InputRecords.object(raw);
        } catch (InputRecords.RecordError e) {
            return null;
        }
        for (String field : fields) {
            try {
                Long ms = InputRecords.tsOptional(rec, field);
                if (ms != null) {
                    return ms;
                }
            } catch (InputRecords.RecordError e) {
                return null; // the first present field decides; a bad one makes the record a dead letter
            }
        }
        return null;
    }
}
