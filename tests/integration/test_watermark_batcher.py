"""flink_jobs/jvm WatermarkBatcher in a real Flink pipeline (embedded mini-cluster, thread mode):
every record is handed to the keyed Python function once, in arrival order, with its own key,
never after the watermark that followed it, and in batches no larger than the limit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flink_jobs.config import REPO
from flink_jobs.elements import BATCH_MAX_RECORDS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 2500

PROBE = f"""
import json, sys, sysconfig, time
from pyflink.common import Configuration, Row, WatermarkStrategy, Duration
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import KeyedProcessFunction, StreamExecutionEnvironment
from flink_jobs.config import connector_jars
from flink_jobs.elements import KEYED_RAW_TYPE, OUT_TYPE, RAW_BATCH_TYPE, batched_by_watermark, key_by_first_field

conf = Configuration()
conf.set_string("pipeline.jars", ";".join(connector_jars()))
conf.set_string("python.execution-mode", "thread")
conf.set_string("python.executable", sys.executable)
conf.set_string("python.pythonpath", {str(REPO)!r} + ":" + sysconfig.get_paths()["purelib"])
conf.set_string("pipeline.object-reuse", "true")  # as the job runs: the batcher must copy its input
conf.set_string("pipeline.auto-watermark-interval", "50 ms")
env = StreamExecutionEnvironment.get_execution_environment(conf)
env.set_parallelism(1)

class ByOffset(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        time.sleep(0.002)  # spread the records over many watermarks
        return value[1][4]

# keys a and b interleaved; key and value null on some records (null string fields survive)
rows = [Row("ab"[i % 2], Row("prices", None if i % 7 == 0 else f"k{{i}}", None if i % 11 == 0 else f"v{{i}}", i % 4, i))
        for i in range({RECORDS})]
stream = env.from_collection(rows, type_info=KEYED_RAW_TYPE).assign_timestamps_and_watermarks(
    WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(ByOffset()))

class Report(KeyedProcessFunction):
    def process_element(self, value, ctx):
        yield Row(ctx.get_current_key(), str(ctx.timer_service().current_watermark()), json.dumps(list(zip(*value))))

out = key_by_first_field(batched_by_watermark(stream), RAW_BATCH_TYPE).process(Report(), output_type=OUT_TYPE)
with out.execute_and_collect() as results:
    print(json.dumps([[r[0], int(r[1]), json.loads(r[2])] for r in results]))
"""


def test_every_record_once_in_order_before_its_watermark():
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    batches = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(batches) > 4  # watermarks came in between: more than the size limit alone makes
    assert all(0 < len(recs) <= BATCH_MAX_RECORDS for _, _, recs in batches)
    for key in "ab":
        offsets = [rec[4] for k, _, recs in batches if k == key for rec in recs]
        assert offsets == list(range("ab".index(key), RECORDS, 2))  # its own key, once each, in order
    for _, watermark, recs in batches:
        assert watermark < min(rec[4] for rec in recs)  # no record arrives behind a watermark that followed it
    by_offset = {rec[4]: rec for _, _, recs in batches for rec in recs}
    assert by_offset[7] == ["prices", None, "v7", 3, 7]
    assert by_offset[11] == ["prices", "k11", None, 3, 11]
    assert by_offset[77] == ["prices", None, None, 1, 77]
    assert by_offset[12] == ["prices", "k12", "v12", 0, 12]
