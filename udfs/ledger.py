"""What running jobs actually cost: hour by hour at the offers that held (one definition, used for
the plan and for the shadow greedy in udfs.dispatcher).

A job running at site s on ``[start, end)`` is charged, for every interval between two of the
dispatcher's ticks, slots x the interval in hours x s's cost per slot-hour at the interval's first
tick (the offer in force and the PUE of the weather then: udfs.cost). ``bench.bench_money``
charges its policies with this ledger too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from udfs.objective import HOUR_MS


@dataclass
class Ledger:
    """Running jobs, charged as ticks pass; the totals of the jobs that have finished."""

    # job_id -> {"site_id", "slots", "start_ms", "end_ms", "expected", "realised", "priced_to_ms", ...}
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=lambda: {
        "realised": 0.0, "completed_jobs": 0, "completed_expected": 0.0, "completed_realised": 0.0,
        "completed_compute_hours": 0.0, "unpriced_slot_hours": 0.0})

    def start(self, job_id: str, site_id: str, slots: int, start_ms: int, end_ms: int, expected: float,
              **extra: Any) -> None:
        self.running[job_id] = {"site_id": site_id, "slots": slots, "start_ms": start_ms, "end_ms": end_ms,
                                "expected": expected, "realised": 0.0, "priced_to_ms": start_ms, **extra}

    def committed(self) -> dict[str, int]:
        """Slots held per site."""
        out: dict[str, int] = {}
        for r in self.running.values():
            out[r["site_id"]] = out.get(r["site_id"], 0) + r["slots"]
        return out

    def charge(self, tick_ms: int, rates: dict[str, tuple[int, float | None]]) -> float:
        """Charge every running job up to ``tick_ms`` at ``rates`` (site -> (tick, EUR per slot-hour
        then), the site's previous tick); release the jobs that have ended. Returns EUR charged."""
        charged = 0.0
        t = self.totals
        for job_id in sorted(self.running):
            r = self.running[job_id]
            upto = min(tick_ms, r["end_ms"])
            if upto > r["priced_to_ms"]:
                rate = rates.get(r["site_id"], (0, None))[1]
                slot_h = r["slots"] * (upto - r["priced_to_ms"]) / HOUR_MS
                if rate is None:
                    t["unpriced_slot_hours"] += slot_h
                else:
                    r["realised"] += slot_h * rate
                    charged += slot_h * rate
                r["priced_to_ms"] = upto
            if r["end_ms"] <= tick_ms:
                t["completed_jobs"] += 1
                t["completed_expected"] += r["expected"]
                t["completed_realised"] += r["realised"]
                t["completed_compute_hours"] += r["slots"] * (r["end_ms"] - r["start_ms"]) / HOUR_MS
                del self.running[job_id]
        t["realised"] += charged
        return charged

    def to_state(self) -> dict[str, Any]:
        return {"running": self.running, "totals": self.totals}

    def load_state(self, state: dict[str, Any]) -> None:
        self.running = {k: dict(v) for k, v in state["running"].items()}
        self.totals = {**self.totals, **state["totals"]}
