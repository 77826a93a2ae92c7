package geodispatch;

import java.util.HashMap;
import java.util.Map;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * The throughput benchmark's ceiling (bench/ceiling_job.py), not part of the job: TickAssembler's
 * rows in, the site-costs records out, computed on the JVM alone, with no Python operator: the
 * same input and the same records as the job writes when no jobs run (nothing committed), so the
 * benchmark can say how close the real job comes to what its contract allows on the JVM. The
 * formulas are those of udfs/cooling.py and udfs/cost.py (the job's own), restated here for this
 * measurement only; tests/integration/test_ceiling.py checks the records equal the job's.
 */
public class CeilingSiteCosts implements FlatMapFunction<Row, Row> {

    private static final long serialVersionUID = 1L;
    private static final double KELVIN = 273.15;

    /** The order of each site's constants in {@code params} (bench/ceiling_job.py SITE_PARAMS). */
    public static final String[] PARAMS = {"it_kw_per_slot", "fixed_cost_per_slot_hour", "fx_to_eur",
        "capacity_slots", "fixed_overhead", "free_cooling_min_c", "free_cooling_max_c", "free_fraction_min",
        "free_fraction_max", "blend_width_c", "chiller_eta", "supply_c", "approach_c", "cop_min", "cop_max",
        "chiller_aux_fraction", "humidity_ref_rh", "humidity_shift_c_per_rh", "dehumidification_fraction",
        "derate_start_c", "derate_max_c", "derate_floor"};

    private final HashMap<String, double[]> params;

    public CeilingSiteCosts(Map<String, double[]> params) {
        this.params = new HashMap<>(params);
    }

    @Override
    public void flatMap(Row keyed, Collector<Row> out) {
        Row t = (Row) keyed.getField(1);
        String[] site = (String[]) t.getField(2);
        Long[] siteTick = (Long[]) t.getField(3);
        Boolean[] inputs = (Boolean[]) t.getField(4);
        Double[] price = (Double[]) t.getField(5);
        Long[] validTo = (Long[]) t.getField(6);
        String[] currency = (String[]) t.getField(7);
        Double[] temp = (Double[]) t.getField(8), rh = (Double[]) t.getField(9);
        Boolean[] online = (Boolean[]) t.getField(10);
        Integer[] capacity = (Integer[]) t.getField(11);
        for (int i = 0; i < site.length; i++) {
            double[] p = params.get(site[i]);
            if (!inputs[i] || p == null) {
                continue; // counters only, or a site outside the catalogue
            }
            boolean weather = temp[i] != null && rh[i] != null, offer = price[i] != null;
            Double pue = weather ? pue(temp[i], rh[i], p) : null;
            double derating = temp[i] == null ? 1.0
                    : 1.0 - clip((temp[i] - p[19]) / (p[20] - p[19])) * (1.0 - p[21]);
            int cap = capacity[i] != null ? capacity[i] : (int) p[3];
            Double cost = pue != null && offer ? price[i] / 1000.0 * p[0] * pue + p[1] : null;
            int slots = online[i] && offer && weather ? Math.max(0, (int) Math.floor(derating * cap + 1e-9)) : 0;
            String reason = !online[i] ? "offline" : !offer ? "no-offer" : !weather ? "no-weather"
                    : slots > 0 ? null : derating > 0 ? "full" : "derated";
            out.collect(Row.of(site[i], site[i], InputRecords.formatTs(siteTick[i]), price[i],
                    currency[i] == null || currency[i].isEmpty() ? null : currency[i],
                    validTo[i] == null ? null : InputRecords.formatTs(validTo[i]), temp[i], rh[i], round(pue, 1e6),
                    pue == null ? null : 0.0, round(cost, 1e9), cost == null ? null : round(cost * p[2], 1e9), cap,
                    slots, online[i] && cost != null, online[i], reason));
        }
    }

    private static double pue(double temp, double rh, double[] p) {
        double t = temp + p[17] * Math.max(0.0, rh - p[16]);
        double m = clip((t - p[6]) / p[9]);
        double free = p[7] + clip((t - p[5]) / (p[6] - p[5])) * (p[8] - p[7]);
        double supply = p[11] + KELVIN, lift = t + p[12] + KELVIN - supply;
        double cop = lift > 0 ? Math.min(p[14], Math.max(p[13], p[10] * supply / lift)) : p[14];
        double chiller = Math.max(1.0 / cop + p[15], p[8]);
        double humid = Math.max(0.0, rh - p[16]) / Math.max(1e-9, 100.0 - p[16]);
        return 1.0 + p[4] + (1.0 - m) * free + m * chiller + p[18] * humid * m;
    }

    private static double clip(double x) {
        return Math.min(1.0, Math.max(0.0, x));
    }

    private static Double round(Double x, double scale) {
        return x == null ? null : Math.rint(x * scale) / scale;
    }
}
