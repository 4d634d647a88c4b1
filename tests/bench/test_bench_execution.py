"""`vajra bench execution` pieces run and report what the table prints (not how fast: timing
is for `make bench`, never asserted in unit tests)."""

from __future__ import annotations

from vajra.bench.execution import decision_microbench, journal_throughput, render, run_realtime


def test_decision_microbench_measures_orders_written() -> None:
    r = decision_microbench(15, 3)
    d = r["decision_us"]
    assert r["orders"] == d["n"] >= 1 and 0 < d["p50"] <= d["p99"] <= d["max"]


def test_live_run_and_render() -> None:
    live = run_realtime(0.3, 20.0, 3, warmup_ns=20_000_000_000)
    assert live["events"] > 0 and live["signals"] > 0
    summary = {
        "decision": decision_microbench(5, 3),
        "live": live,
        "journal": journal_throughput(True),
        "floors": {"decision_p50_us": {"value": 1.0, "floor": 20.0, "ok": True}},
    }
    assert summary["journal"]["records"] == 20_000
    text = render(summary)
    assert "decision (signal in -> order written)" in text and "journal:" in text
