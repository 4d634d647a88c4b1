"""The end-to-end benchmark's pieces: the asyncio bot trades, the floors are judged from the
numbers measured, and the table renders."""

from __future__ import annotations

import asyncio

from vajra.bench.bot import run_bot
from vajra.bench.e2e import FLOORS, _floors, render
from vajra.engine.config import load


def test_the_asyncio_bot_runs_the_engine_stages_and_times_its_orders() -> None:
    cfg = load(
        None,
        [
            "feed.speed=10",
            "execution.min_strength=0.0",
            "sonar.enter_veto=1.0",
            "sonar.exit_veto=0.99",
        ],
    )
    out = asyncio.run(run_bot(cfg, 4.0))
    assert out["orders"] > 0 and len(out["tick_to_order_ns"]) == out["orders"]
    assert all(0 < t < 1_000_000_000 for t in out["tick_to_order_ns"])
    assert out["live_events"] > 0 and out["live_seconds"] > 3.5


def _variant(p50: float, p99: float, ev: float) -> dict[str, object]:
    return {
        "label": "x",
        "pace": {"orders": 10, "tick_to_order_us": {"n": 10, "p50_us": p50, "p99_us": p99}},
        "afap": {"events_per_s": ev},
    }


def test_floors_are_judged_from_the_measured_numbers() -> None:
    results = {
        "a": _variant(50.0, 250.0, 30_000.0),
        "c": _variant(300.0, 1_000.0, 15_000.0),
        "d": _variant(900.0, 700.0, 5_000.0),
    }
    kill = {"kills": 3, "blocked_us": {"p50_us": 100.0, "p99_us": 2_000.0}}
    f = _floors(results, kill)
    assert set(f) == set(FLOORS)
    assert f["a_pace_p50_us"]["ok"] and f["a_pace_p99_us"]["ok"]
    assert f["p99_ratio_c_over_a"]["ok"] and f["p99_ratio_c_over_a"]["value"] == 4.0
    assert not f["p99_ratio_d_over_a"]["ok"]  # 2.8 < 3
    assert f["afap_events_ratio_a_over_c"]["ok"]
    assert not f["kill_blocked_p99_us"]["ok"]
    results["c"] = {"label": "c", "pace": {"error": "no GIL python"}, "afap": {"error": "-"}}
    f = _floors(results, kill)
    assert f["p99_ratio_c_over_a"]["value"] is None and not f["p99_ratio_c_over_a"]["ok"]
    text = render(
        {
            "capture": "cap.gz",
            "cpus": 2,
            "variants": results,
            "kill": {**kill, "cancels_sent_us": {}, "ack_ms_p50": 0.2},
            "floors": f,
        }
    )
    assert "(a) x" in text and "error: no GIL python" in text and "MISSED" in text
