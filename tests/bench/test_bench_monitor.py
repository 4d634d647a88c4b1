"""The monitor benchmark's pieces: arguments, medians and floors from measured numbers, the
table, the render dispatch, and its clients against a real `vajra monitor` with no engine.
No engine runs here and no timing is asserted (shared, noisy machines)."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.server import ServerProtocol

from vajra import cli
from vajra.bench.monitor import (
    FLOORS,
    MonitorProc,
    Reader,
    cpu_seconds,
    floors,
    foreign_attached,
    non_reader,
    parse_args,
    parse_monitor_metrics,
    pct,
    plan,
    render,
    summarize_runs,
    upgrade_request,
)


def test_plan_defaults_quick_and_overrides() -> None:
    full = plan(parse_args([]))
    assert (full.pairs, full.seconds, full.kills) == (3, 30.0, 50)
    quick = plan(parse_args(["--quick"]))
    assert (quick.pairs, quick.seconds, quick.kills) == (2, 10.0, 10)
    mine = plan(parse_args(["--quick", "--pairs", "4", "--seconds", "5", "--kills", "7"]))
    assert (mine.pairs, mine.seconds, mine.kills) == (4, 5.0, 7)
    assert parse_args(["--json"]).json and not parse_args([]).json


def _run(i: int, on: bool, p50: float | None, p99: float | None, **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "i": i,
        "monitor_on": on,
        "orders": 0 if p99 is None else 30,
        "tick_to_order_us": {
            "n": None if p99 is None else 30,
            "p50_us": p50,
            "p99_us": p99,
            "p99_9_us": p99,
        },
        **extra,
    }
    if on and "error" not in extra:
        r["monitor"] = {
            "msgs_per_s": [150.0, 160.0],
            "monitor_cpu_pct": 12.5,
            "clients_cpu_pct": 4.0,
            "dropped_slow": 1.0,
            "seq_ok": True,
        }
    return r


def _runs() -> list[dict[str, Any]]:
    return [
        _run(1, False, 200.0, 1000.0),
        _run(2, True, 220.0, 1300.0, emergency="DEGRADED (CANCEL_RTT)"),
        _run(3, False, 300.0, 3000.0),
        _run(4, True, 240.0, 1100.0, retried=["no orders (Sentinel LOCKDOWN (FEED_STALE))"]),
        _run(5, False, 250.0, 2000.0),
        _run(6, True, None, None, emergency="LOCKDOWN (HEARTBEAT)"),  # left out: no orders
        _run(7, True, 1.0, 1.0, error="exit 1: boom"),  # left out: an error
    ]


def _kill(client_p50: float, client_p99: float, failed: int = 0) -> dict[str, Any]:
    return {
        "cycles": 10,
        "acknowledged": 10 - failed,
        "failed": failed,
        "failures": ["kill: HTTP 503 b'{}'"] * failed,
        "client_ms": {"p50": client_p50, "p99": client_p99, "max": client_p99},
        "monitor_ms": {"p50": 1.0, "p99": 2.0, "max": 2.0},
        "engine_ack_us": {"p50": 150.0, "p99": 400.0, "max": 400.0},
        "monitor_stop": "SIGTERM: exited in 0.06 s",
    }


def test_medians_leave_out_runs_without_figures_and_floors_judge_them() -> None:
    s = summarize_runs(_runs())
    assert s["off"] == {"n": 3, "p50_us": 250.0, "p99_us": 2000.0}
    assert s["on"] == {"n": 2, "p50_us": 230.0, "p99_us": 1200.0}
    assert s["p99_ratio"] == pytest.approx(0.6) and s["p50_ratio"] == pytest.approx(0.92)
    f = floors(s, _kill(3.0, 12.0))
    assert set(f) == set(FLOORS)
    assert all(v["ok"] for v in f.values())
    assert f["http_kill_p99_ms"]["value"] == 12.0
    f = floors({**s, "p99_ratio": 1.2}, _kill(3.0, 25.0))
    assert not f["monitor_p99_ratio"]["ok"] and not f["http_kill_p99_ms"]["ok"]
    assert f["http_kill_p50_ms"]["ok"]
    # a kill that was not acknowledged fails the floors whatever the others' latency
    f = floors(s, _kill(3.0, 12.0, failed=1))
    assert not f["http_kill_p50_ms"]["ok"] and not f["http_kill_p99_ms"]["ok"]
    # nothing measured: no value, MISSED
    empty = summarize_runs([_run(1, False, None, None), _run(2, True, 1.0, 1.0, error="x")])
    assert empty["p99_ratio"] is None and empty["off"]["n"] == 0
    f = floors(empty, {"error": "the engine did not start"})
    assert not any(v["ok"] for v in f.values()) and f["http_kill_p50_ms"]["value"] is None


def test_percentiles_are_nearest_rank_like_e2e() -> None:
    xs = [float(x) for x in range(1, 101)]
    assert pct(xs, 50) == 51.0 and pct(xs, 99) == 100.0
    assert pct([3.0, 1.0, 2.0], 99) == 3.0 and pct([], 50) is None


def _summary(tmp: Path | None = None) -> dict[str, Any]:
    runs = _runs()
    ov = {"runs": runs, **summarize_runs(runs)}
    kill = _kill(3.0, 25.0)
    return {
        "schema": 1,
        "bench": "monitor",
        "command": "vajra bench monitor --quick",
        "when": "2026-12-08T00:00:00Z",
        "capture": "cap.gz",
        "cpus": 2,
        "seconds_per_run": 10.0,
        "pairs": 3,
        "rate_hz": 25.0,
        "clients": {"readers": 9, "non_readers": 1},
        "overhead": ov,
        "kill": kill,
        "floors": floors(ov, kill),
    }


def test_render_shows_every_run_the_medians_the_kill_and_the_floors() -> None:
    text = render(_summary())
    lines = text.splitlines()
    assert "9 reading WebSocket clients + 1 that never reads" in lines[0]
    assert any(
        ln.split()[:2] == ["2", "on"] and "150-160" in ln and "dropped" in ln for ln in lines
    )
    assert "run again after: no orders (Sentinel LOCKDOWN (FEED_STALE))" in text
    assert "no orders (Sentinel LOCKDOWN (HEARTBEAT)): left out of the medians" in text
    assert "error: exit 1: boom" in text
    assert "the Sentinel ended the run DEGRADED (CANCEL_RTT)" in text
    assert "on/off p50 0.92, p99 0.60" in text
    assert "HTTP kill (10/10 acknowledged KILLED, 0 failed)" in text
    assert "monitor_p99_ratio ok" in text and "http_kill_p99_ms MISSED (25.00 vs 20.0)" in text
    broken = {**_summary(), "kill": {"error": "the engine did not start"}}
    assert "HTTP kill: error: the engine did not start" in render(broken)


def test_vajra_bench_render_dispatches_a_monitor_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "monitor-latest.json"
    path.write_text(json.dumps(_summary()))
    assert cli.main(["bench", "render", str(path)]) == 0
    assert capsys.readouterr().out.startswith("vajra bench monitor — cap.gz")


def test_monitor_metrics_are_read_from_the_prometheus_text() -> None:
    text = (
        "# HELP vajra_monitor_up 1 while this monitor serves\n"
        "vajra_monitor_up 1\n"
        "vajra_monitor_clients 10\n"
        "vajra_monitor_ws_dropped_slow_total 1\n"
        "vajra_monitor_conflated 504\n"
        'vajra_engine_up{run="x"} 1\n'
        'vajra_monitor_odd{run="x"} 3\n'
    )
    assert parse_monitor_metrics(text) == {
        "up": 1.0,
        "clients": 10.0,
        "ws_dropped_slow": 1.0,
        "conflated": 504.0,
    }


def test_the_non_reader_upgrade_is_a_valid_websocket_handshake() -> None:
    req = upgrade_request(8787)
    key = req.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0]
    assert len(base64.b64decode(key)) == 16 and b"Origin" not in req
    proto = ServerProtocol()
    proto.receive_data(req)
    (request,) = proto.events_received()
    assert proto.accept(request).status_code == 101  # type: ignore[arg-type]


def test_process_cpu_and_shared_memory_scan() -> None:
    cpu = cpu_seconds(os.getpid())
    assert cpu is not None and cpu >= 0
    assert cpu_seconds(2**22 + 12345) is None  # above pid_max's default: never a process
    assert foreign_attached("no-such-run", {os.getpid()}) == {}


def test_clients_against_a_monitor_without_an_engine(tmp_path: Path) -> None:
    """The bench's readers get `hello` first and every seq; the non-reader's handshake is
    accepted; the monitor's counters and health are read; it stops when asked."""
    mon = MonitorProc(tmp_path, tmp_path / "runs", "t" * 24, run="no-such-run")
    stop = threading.Event()
    try:
        port = mon.wait_port()
        reader = Reader(port, stop)
        reader.thread.start()
        quiet = non_reader(port)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (
                reader.count < 2 or mon.health().get("clients") != 2
            ):
                time.sleep(0.05)
            health = mon.health()
            assert (health["monitor"], health["engine"], health["clients"]) == ("ok", "NONE", 2)
            assert mon.metrics()["ws_connected"] == 2.0
        finally:
            stop.set()
            reader.thread.join(10)
            quiet.close()
        assert reader.error is None and reader.count >= 2 and reader.seq_ok()
        assert json.loads(reader.first)["data"]["channels"]
    finally:
        stopped = mon.stop()
    assert mon.proc.poll() is not None, stopped
