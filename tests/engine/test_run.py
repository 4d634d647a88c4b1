"""`vajra run` as a user runs it: real engine processes, real signals, the real kill path.

Each test drives the engine through its command line (`python -m vajra run ...`) in its own
run directory, reads what it left (the JSON summary, the journal, the .hlog) and checks that
nothing was left in /dev/shm.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vajra.journal.journal import Kind, read_entries
from vajra.journal.recover import replay
from vajra.shm.hlog import read_hlog
from vajra.shm.segment import list_segments

_HEAD: dict[int, str] = {}  # what start() read of each engine's output
FAST = ["--set", "engine.status_interval_s=0", "--set", "feed.warmup_s=60"]


def start(tmp: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """An engine process; returns it and its run id (from its first line)."""
    p = subprocess.Popen(
        [sys.executable, "-m", "vajra", "run", "--run-dir", str(tmp), *FAST, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe: communicate() then reads through the buffer
        text=True,
    )
    assert p.stdout is not None
    head = ""
    while True:  # a start may first report the stale segments it removed
        line = p.stdout.readline()
        head += line
        if not line or line.startswith("run "):
            break
    assert line.startswith("run "), head + p.stdout.read()
    _HEAD[p.pid] = head
    return p, line.split()[1].rstrip(":")


def finish(p: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    # not communicate(timeout=...): it reads the pipe's fd directly and would lose what the
    # text buffer already holds (the lines after the first); the output fits the pipe
    p.wait(timeout=timeout)
    assert p.stdout is not None
    return p.returncode, _HEAD.pop(p.pid, "") + p.stdout.read()


def summary(tmp: Path, run: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp / run / "summary.json").read_text())
    return data


def no_segments_left(run: str) -> bool:
    return not list(list_segments(run))


def test_default_run_trades_passes_both_regimes_locks_down_on_a_spike_and_exits_clean(
    tmp_path: Path,
) -> None:
    p, run = start(
        tmp_path,
        "--duration",
        "20",
        "--speed",
        "10",
        # a spike of 3 s every 4 s: some orders meet one even when the gate is often shut
        "--set",
        "venue.spike_first_s=3",
        "--set",
        "venue.spike_every_s=4",
        "--set",
        "venue.spike_duration_ms=3000",
        "--set",
        "risk.healthy_ns=500_000_000",
    )
    code, out = finish(p)
    assert code == 0, out
    s = summary(tmp_path, run)
    assert s["orders"] > 5 and s["cancels"] > 0 and s["fills"] >= 1, s
    assert {"ATTACK", "VETO"} <= set(s["regimes_entered"]), s["regimes_entered"]
    assert s["entered"].get("LOCKDOWN") in ("RTT", "CANCEL_RTT"), s["entered"]
    assert s["open_orders_at_exit"] == 0 and s["venue_open_at_exit"] == 0
    assert no_segments_left(run)
    # the latency record: every order's path, in the summary and in the interval log
    for name in ("tick_to_signal", "ring_hop", "decision", "tick_to_order", "order_rtt"):
        assert s["latency"][name]["n"] > 0, name
    assert s["latency"]["decision"]["n"] == s["latency"]["tick_to_order"]["n"] == s["orders"]
    log = read_hlog(tmp_path / run / "latency.hlog")
    assert log.total("tick_to_order").total == s["orders"]
    # every module thread ran on the CPU its plan gave it (read back from /proc)
    for name, t in s["threads"].items():
        assert t["allowed_cpus"] == [t["planned_cpu"]], (name, t)
        assert t["last_cpu"] == t["planned_cpu"], (name, t)
    # the journal: one continuous sequence, nothing left open
    state = replay(read_entries(tmp_path / "journal.db"))
    assert state.gaps == () and state.open == ()
    assert "DEMO" in out  # the negative NEV threshold is announced


def test_kill_during_flooding_stops_every_placement_and_cancels_everything(
    tmp_path: Path,
) -> None:
    flood = [
        "--set",
        "execution.ladder_orders=8",
        "--set",
        "execution.ladder_levels=8",
        "--set",
        "execution.min_strength=0.0",
        "--set",
        "risk.max_open_orders=50",
        "--set",
        "broker.otr_ceiling=1000",
        "--set",
        "venue.spike_every_s=0",
    ]
    p, run = start(tmp_path, "--speed", "10", *flood)
    time.sleep(8)
    k = subprocess.run(
        [sys.executable, "-m", "vajra", "kill", "--run", run, "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert k.returncode == 0 and "KILLED" in k.stdout, k.stdout + k.stderr
    time.sleep(2)  # the engine keeps running, killed: nothing may go out
    p.send_signal(signal.SIGTERM)
    code, out = finish(p)
    assert code == 3, out  # stopped after a kill
    s = summary(tmp_path, run)
    assert s["orders"] >= 5, s
    kill = s["kill"]
    blocked_at = kill["set_ns"] + kill["blocked_ns"]
    assert kill["cancels_sent_ns"] >= kill["blocked_ns"] >= 0
    entries = list(read_entries(tmp_path / "journal.db"))
    # the gateway reads the kill word before every write: no placement after the flag was set
    # (a journaled PLACE carries its decision's start, which precedes that read)
    placed_after = [e for e in entries if e.kind is Kind.PLACE and e.t_ns >= kill["set_ns"]]
    assert placed_after == [], placed_after[:3]
    assert blocked_at > kill["set_ns"]
    assert any(e.kind is Kind.KILL for e in entries)
    state = replay(iter(entries))
    assert state.open == () and state.gaps == ()
    assert s["venue_open_at_exit"] == 0 and s["emergency"] == "KILLED"
    assert no_segments_left(run)


def test_sigterm_stops_clean_and_kill9_is_cleaned_up_by_the_next_start(tmp_path: Path) -> None:
    p, run1 = start(tmp_path, "--speed", "10")
    time.sleep(6)
    p.send_signal(signal.SIGTERM)
    code, out = finish(p)
    assert code == 0 and "stopping (SIGTERM)" in out, out
    assert no_segments_left(run1)
    first = replay(read_entries(tmp_path / "journal.db"))
    assert first.gaps == () and first.open == ()

    p, run2 = start(tmp_path, "--speed", "10")
    time.sleep(6)
    os.kill(p.pid, signal.SIGKILL)
    finish(p, 30)
    assert list(list_segments(run2)), "a killed engine leaves its segments"
    crashed = replay(read_entries(tmp_path / "journal.db"))
    assert crashed.gaps == () and crashed.last_seq > first.last_seq

    p, run3 = start(tmp_path, "--duration", "3")
    code, out = finish(p)
    assert code == 0, out
    assert f"vajra-{run2}-" in out and "removed stale segment" in out
    assert no_segments_left(run2) and no_segments_left(run3)
    after = replay(read_entries(tmp_path / "journal.db"))
    assert after.gaps == () and after.last_seq >= crashed.last_seq  # one sequence
    s = summary(tmp_path, run3)
    if crashed.open:  # orders the dead engine left: the restart knows them, none survive
        assert s["restored"]["journal_open"] == list(crashed.open)


def test_bad_configuration_is_refused_before_anything_starts(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "vajra",
            "run",
            "--run-dir",
            str(tmp_path),
            "--set",
            "risk.max_position=lots",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "max_position" in r.stderr and "expected int" in r.stderr
    assert not any(tmp_path.iterdir())
    r = subprocess.run(
        [sys.executable, "-m", "vajra", "run", "--run-dir", str(tmp_path), "--feed", "lobster:"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "lobster" in r.stderr


def test_a_module_whose_heartbeat_stops_locks_the_engine_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Oracle thread hangs for 2 s once trading has started: Sentinel (heartbeat timeout
    1 s) locks down with reason HEARTBEAT, cancels everything, and re-arms afterwards."""
    from vajra.engine import engine as eng
    from vajra.engine.config import load

    real = eng.MarketPipeline.on_event
    hung: list[int] = []

    def on_event(self: Any, ev: object) -> None:
        if not hung and self.events > 9_000:  # well after the warm-up
            hung.append(1)
            time.sleep(2.0)
        real(self, ev)

    monkeypatch.setattr(eng.MarketPipeline, "on_event", on_event)
    cfg = load(
        None,
        [
            f'engine.run_dir="{tmp_path}"',
            "engine.duration_s=10",
            "engine.status_interval_s=0",
            "feed.speed=10",
            "venue.spike_every_s=0",
        ],
    )
    e = eng.Engine(cfg, out=io.StringIO())
    assert e.run() == 0
    assert hung
    assert e.summary["entered"].get("LOCKDOWN") == "HEARTBEAT", e.summary["entered"]
    assert no_segments_left(e.run_id)


DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.parametrize(
    "feed",
    [
        "binance/usdm_btcusdt_20240808.gz",
        "lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip",
    ],
)
def test_real_recordings_replay_through_the_engine(tmp_path: Path, feed: str) -> None:
    path = DATA / feed
    if not path.exists():
        pytest.skip(f"{path} is not here (../shared/data)")
    kind = feed.split("/")[0]
    p, run = start(
        tmp_path,
        "--feed",
        f"{kind}:{path}",
        "--speed",
        "0",
        "--duration",
        "5",
        "--set",
        "sonar.enter_veto=1.0",
        "--set",
        "sonar.exit_veto=0.99",
        "--set",
        "execution.min_strength=0.0",
    )
    code, out = finish(p)
    assert code == 0, out
    assert "has no NSE charges" in out  # a flat replay fee, said so
    s = summary(tmp_path, run)
    assert s["live_events"] > 1_000 and s["orders"] > 0, s
    assert s["latency"]["tick_to_order"]["n"] == s["orders"]
    assert s["venue_open_at_exit"] == 0 and no_segments_left(run)
