"""The row types between the job's operators (flink_jobs.elements) agree with what reads them."""

from __future__ import annotations

from flink_jobs.elements import OUT_TYPE, SITE_TYPE, TICK_TYPE
from udfs.records import JOB_FIELDS, OFFER_FIELDS, SITE_TICK_FIELDS


def test_row_types_have_unique_field_names_flink_accepts():
    for row_type in (TICK_TYPE, OUT_TYPE, SITE_TYPE):
        names = row_type.get_field_names()
        assert len(names) == len(set(names)), names


def test_the_tick_row_is_laid_out_as_records_assembled_tick_reads_it():
    # tick, up_to, the site columns, the offer columns, the job columns (TickAssembler.batch)
    assert len(TICK_TYPE.get_field_names()) == 2 + len(SITE_TICK_FIELDS) + len(OFFER_FIELDS) + len(JOB_FIELDS)
    assert SITE_TYPE.get_field_names()[:len(SITE_TICK_FIELDS)] == list(SITE_TICK_FIELDS)
