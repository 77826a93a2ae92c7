"""flink_jobs.elements.Packer: output records packed into rows for the JVM to split."""

from __future__ import annotations

from flink_jobs.elements import PACKED, RS, TOPIC_CODES, US, Packer
from udfs import topics

CODE_TOPIC = {code: topic for topic, code in TOPIC_CODES.items()}


def unpack(value: str) -> list[tuple[str, str, str]]:
    """What dispatch_job.attach_sinks does in SQL: split on RS; code = 1st char; key up to US."""
    out = []
    for x in value.split(RS):
        cut = x.index(US)
        out.append((CODE_TOPIC[x[0]], x[1:cut], x[cut + 1:]))
    return out


def test_records_round_trip_through_packed_rows_in_order_and_rows_stay_bounded():
    packer = Packer()
    records = [(topics.SITE_COSTS, f"site-{i}", f'{{"n":{i},"s":"a|b"}}') for i in range(Packer.MAX_RECORDS + 7)]
    records += [(topics.DISPATCH, "job-1", '{"status":"dispatched"}'),
                (topics.PIPELINE_METRICS, "2018-07-01T00:00:00Z", "{}")]
    rows = [row for rec in records for row in packer.add(*rec)] + list(packer.flush())
    assert [row[0] for row in rows] == [PACKED, PACKED]  # a full row as soon as it is full, the rest at flush
    assert len(rows[0][2].split(RS)) == Packer.MAX_RECORDS
    assert [rec for row in rows for rec in unpack(row[2])] == records
    assert list(packer.flush()) == []


def test_a_key_holding_a_separator_is_passed_on_as_its_own_row():
    packer = Packer()
    odd = f"job{US}1"
    rows = list(packer.add(topics.DISPATCH, odd, "{}")) + list(packer.add(topics.DISPATCH, f"j{RS}", "{}"))
    assert [tuple(r) for r in rows] == [(topics.DISPATCH, odd, "{}"), (topics.DISPATCH, f"j{RS}", "{}")]
    assert list(packer.flush()) == []
