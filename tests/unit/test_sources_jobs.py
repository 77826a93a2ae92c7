"""The synthetic job generator: deterministic, contract-shaped, the documented mix."""

from __future__ import annotations

import itertools
import json

import pytest

from deploy.local import demo
from sources.jobs import generate_jobs, iter_jobs, main
from udfs.timeutil import parse_ts_ms

START = parse_ts_ms("2018-07-01T00:00:00Z")
SITES = ["ams", "trn", "sto", "chi", "tus"]


def test_deterministic_and_seed_sensitive():
    a = generate_jobs(7, 300, START, 20, SITES)
    assert a == generate_jobs(7, 300, START, 20, SITES)
    assert a != generate_jobs(8, 300, START, 20, SITES)


def test_contract_shapes_and_ranges():
    jobs = generate_jobs(1, 2000, START, 30, SITES)
    submits = [j for j in jobs if j["action"] == "submit"]
    cancels = [j for j in jobs if j["action"] == "cancel"]
    assert len(submits) == 2000 and len({j["job_id"] for j in submits}) == 2000
    times = [parse_ts_ms(j["submitted_at"]) for j in jobs]
    assert times == sorted(times) and times[0] >= START
    for j in submits:
        assert 0.25 <= j["compute_hours"] <= 200 and j["slots"] in (1, 2, 4, 8, 16) and 0 <= j["priority"] <= 9
        if "deadline" in j:
            assert parse_ts_ms(j["deadline"]) > parse_ts_ms(j["submitted_at"])
        if "sites" in j:
            assert 1 <= len(j["sites"]) < len(SITES) and set(j["sites"]) <= set(SITES)
            assert j["sites"] == sorted(j["sites"])
    submitted = {j["job_id"]: parse_ts_ms(j["submitted_at"]) for j in submits}
    for c in cancels:
        assert set(c) == {"action", "job_id", "submitted_at"}
        assert parse_ts_ms(c["submitted_at"]) > submitted[c["job_id"]]
    # the documented fractions, loosely
    assert 0.6 < sum("deadline" in j for j in submits) / 2000 < 0.8
    assert 0.15 < sum("sites" in j for j in submits) / 2000 < 0.25
    assert 0.03 < len(cancels) / 2000 < 0.07
    assert len({j["priority"] for j in submits}) == 10


def test_poisson_rate_per_data_hour():
    jobs = generate_jobs(3, 5000, START, 50, SITES, cancel_fraction=0)
    span_h = (parse_ts_ms(jobs[-1]["submitted_at"]) - START) / 3_600_000
    assert 45 < 5000 / span_h < 55


def test_fractions_do_not_reshuffle_other_fields():
    a = generate_jobs(5, 100, START, 20, SITES, cancel_fraction=0.0, allow_fraction=0.0)
    b = generate_jobs(5, 100, START, 20, SITES, cancel_fraction=0.5, allow_fraction=1.0)
    strip = [{k: v for k, v in j.items() if k != "sites"} for j in b if j["action"] == "submit"]
    assert strip == a


def test_lazy_stream_matches_the_list_and_can_be_unbounded():
    a = generate_jobs(7, 400, START, 20, SITES, cancel_fraction=0.3)
    assert list(iter_jobs(7, START, 20, SITES, count=400, cancel_fraction=0.3)) == a
    # no count: the same jobs, and as many more as asked for
    endless = list(itertools.islice(iter_jobs(7, START, 20, SITES, cancel_fraction=0.3), len(a) + 500))
    submits = [j for j in endless if j["action"] == "submit"]
    assert len(submits) > 400
    assert submits[:400] == [j for j in a if j["action"] == "submit"]
    times = [parse_ts_ms(j["submitted_at"]) for j in endless]
    assert times == sorted(times)


def test_end_bounds_submits_and_cancels():
    end = START + 48 * 3_600_000
    jobs = list(iter_jobs(3, START, 20, SITES, end_ms=end, cancel_fraction=0.5))
    assert jobs and all(parse_ts_ms(j["submitted_at"]) < end for j in jobs)
    assert 700 < sum(j["action"] == "submit" for j in jobs) < 1250  # ~20/h for 48 h
    unbounded = generate_jobs(3, 2000, START, 20, SITES, cancel_fraction=0.5)
    assert jobs == [j for j in unbounded if parse_ts_ms(j["submitted_at"]) < end]
    # count and end: whichever comes first
    assert len(list(iter_jobs(3, START, 20, SITES, count=5, end_ms=end, cancel_fraction=0))) == 5


def test_cli_count_zero_needs_an_end_to_write_a_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--count", "0", "--out", str(tmp_path / "j.jsonl")])
    assert exc.value.code == 2 and "needs --end" in capsys.readouterr().err
    out = tmp_path / "j.jsonl"
    code = main(["--count", "0", "--start", "2018-07-01", "--end", "2018-07-02", "--out", str(out), "--sites", "a,b"])
    assert code == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines and all("2018-07-01T" in j["submitted_at"] for j in lines)


def test_demo_jobs_run_as_long_as_the_replay_unless_count_is_given(tmp_path):
    cmd = demo.jobs_command({}, end="2019-01-01T00:00:00Z")
    assert cmd[cmd.index("--count") + 1] == "0" and cmd[cmd.index("--end") + 1] == "2019-01-01T00:00:00Z"
    assert cmd[cmd.index("--start") + 1] == demo.START and cmd[cmd.index("--speed") + 1] == demo.SPEED
    fixed = demo.jobs_command({"COUNT": "2000", "RATE": "30"})
    assert fixed[fixed.index("--count") + 1] == "2000" and fixed[fixed.index("--rate") + 1] == "30"
    assert "--end" not in fixed
    assert demo.replay_end(tmp_path) is None  # no sample: no end (the jobs then run until make down)


def test_stdout_closed_by_its_reader_ends_quietly():
    # `--out - | head -1`: the reader goes away after one line; the generator stops without a traceback
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(f"{sys.executable} -m sources.jobs --count 200000 --start 2018-07-01 --out - | head -1",
                          shell=True, cwd=repo, capture_output=True, text=True, timeout=120)
    assert json.loads(proc.stdout)["action"] == "submit"
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_cli_runs_never_reuse_job_ids_unless_asked(tmp_path):
    # a second `make jobs` into the same topic must not resubmit j-000001 with other content
    # (the dispatcher dead-letters that as "already submitted with different content")
    from sources.sites import site_ids

    def ids(*flags: str) -> set[str]:
        out = tmp_path / "jobs.jsonl"
        assert main(["--count", "5", "--seed", "7", "--rate", "20", "--start", "2018-01-01T00:00:00Z", "--max",
                     "--out", str(out), "--no-progress", *flags]) == 0
        return {json.loads(line)["job_id"] for line in out.read_text().splitlines()}

    first, second = ids(), ids()
    assert len(first) == 5 and not first & second
    assert all(i.startswith("j-") for i in first)
    fixed = {j["job_id"] for j in generate_jobs(7, 5, parse_ts_ms("2018-01-01T00:00:00Z"), 20, site_ids())}
    assert ids("--id-prefix", "j-") == fixed
