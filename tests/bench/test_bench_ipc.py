"""`vajra bench ipc` runs end to end and reports what the README documents. Speed itself is
never asserted here (shared, noisy machines): only that the figures exist and are coherent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vajra.bench.ipc import percentiles, render_table


def _bench(*args: str) -> dict[str, object]:
    r = subprocess.run(
        [sys.executable, "-m", "vajra", "bench", "ipc", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    out: dict[str, object] = json.loads(r.stdout)
    return out


@pytest.mark.parametrize(
    "case", ["ring-threads", "ring-processes", "mp-queue-processes", "os-pipe-processes"]
)
def test_single_case_json(case: str) -> None:
    out = _bench("--case", case, "--quick", "--json")
    assert out["schema"] == 1 and out["message_bytes"] == 64
    (c,) = out["cases"]  # type: ignore[misc]
    assert c["error"] is None, c["error"]
    lat = c["latency_ns"]
    assert lat["n"] >= 900  # MIN_SAMPLES less the 10% warm-up
    assert 0 < lat["min"] <= lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert c["rtt_ns"]["p50"] > lat["p50"]  # a round trip includes the one-way hop
    assert c["msgs_per_s"] > 0
    if case.startswith("ring"):
        assert c["batched_msgs_per_s"] > 0
        assert set(out["floors"]) >= {"ring_p50_ns", "ring_p99_ns", "ring_msgs_per_s"}  # type: ignore[arg-type]
    text = render_table(out)
    assert case in text


def test_gil_child_case_reports_gil_on() -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "vajra.bench.ipc",
            "--case",
            "ring-threads",
            "--quick",
            "--json",
            "--allow-gil",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "PYTHON_GIL": "1"},
    )
    assert r.returncode == 0, r.stderr
    (c,) = json.loads(r.stdout)["cases"]
    assert c["gil"] is True and c["latency_ns"]["n"] > 0


def test_bench_refuses_gil_without_allow_gil() -> None:
    import os

    r = subprocess.run(
        [sys.executable, "-m", "vajra", "bench", "ipc", "--case", "ring-threads"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHON_GIL": "1"},
    )
    assert r.returncode != 0 and "GIL" in r.stderr


def test_percentiles_exact() -> None:
    p = percentiles(list(range(1, 1001)))
    assert (p["p50"], p["p99"], p["p999"], p["max"], p["min"]) == (500, 990, 999, 1000, 1)
    assert percentiles([]) == {"n": 0}


def test_signals_bench_single_pass_reports_every_stage() -> None:
    from pathlib import Path

    data = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance"
    if not (data / "usdm_btcusdt_20240808.gz").exists():
        pytest.skip("../shared/data is absent")
    r = subprocess.run(
        [sys.executable, "-m", "vajra.bench.signals", "--single", "--quick", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["depth_updates"] == 6552 and out["events"] == 93954
    assert out["events_per_s"] > 0 and out["gil"] is False
    stages = out["stages"]
    assert set(stages) == {
        "book.update",
        "oracle.update",
        "sonar.update",
        "book_wobi",
        "tick_to_signal",
        "pipeline.event",
    }
    for s in stages.values():
        assert s["n"] > 6000 and 0 < s["p50_us"] <= s["p99_us"] <= s["p999_us"] <= s["max_us"]
    # the signal waits for book + WOBI, then strength: never less than its parts
    assert stages["tick_to_signal"]["p50_us"] >= stages["book_wobi"]["p50_us"]
