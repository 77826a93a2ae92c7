"""The row types between the job's operators (flink_jobs.elements) agree with what reads them."""

from __future__ import annotations

from flink_jobs.elements import OUT_TYPE, SITE_TYPE, TICK_TYPE, OutRow
from udfs.records import JOB_FIELDS, OFFER_FIELDS, SITE_COST_FIELDS, SITE_TICK_FIELDS


def test_row_types_have_unique_field_names_flink_accepts():
    for row_type in (TICK_TYPE, OUT_TYPE, SITE_TYPE):
        names = row_type.get_field_names()
        assert len(names) == len(set(names)), names


def test_the_tick_row_is_laid_out_as_records_assembled_tick_reads_it():
    # ticks, up_tos, site_at, the site columns, the offer columns, job_at, the job columns
    # (TickAssembler.batch)
    assert len(TICK_TYPE.get_field_names()) == 3 + len(SITE_TICK_FIELDS) + len(OFFER_FIELDS) + 1 + len(JOB_FIELDS)
    assert SITE_TYPE.get_field_names()[:len(SITE_TICK_FIELDS)] == list(SITE_TICK_FIELDS)


def test_one_output_row_carries_every_tick_of_a_call_in_order():
    def costs(**columns):
        n = len(columns["site_id"])
        return {name: columns.get(name, [None] * n) for name in SITE_COST_FIELDS}

    out = OutRow()
    out.add_site_costs(costs(site_id=["ams", "sto"], tick=["t1", "t1"], pue=[1.1, None]))
    out.add("metrics", "t1", "{}")
    out.add_site_costs(costs(site_id=["ams"], tick=["t2"], pue=[1.2]))
    out.add("dispatch", "j1", '{"job_id": "j1"}')
    out.add("metrics", "t2", "{}")
    row = dict(zip(OUT_TYPE.get_field_names(), out.row(), strict=True))
    assert row["site_id"] == ["ams", "sto", "ams"] and row["tick"] == ["t1", "t1", "t2"]
    assert row["pue"] == [1.1, None, 1.2] and len(row["capacity_slots"]) == 3
    assert (row["metrics_key"], row["dispatch_key"], row["dead_key"]) == (["t1", "t2"], ["j1"], [])
