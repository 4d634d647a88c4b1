"""`topology = "processes"`: feed, Oracle, Execution and the venue each a process of their own,
supervised by the one the user started. Same command, same checks as the threads topology,
plus what only processes can do: one of them dies, or the supervisor is killed under them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.engine.test_run import finish, no_segments_left, start, summary
from vajra.journal.journal import Kind, read_entries
from vajra.journal.recover import replay

PROCS = ["--set", "engine.topology=processes"]
MODULES = ("feed", "oracle", "execution", "venue")


def module_pids(supervisor: int) -> dict[str, int]:
    """The supervisor's children by the name each module gives its main thread."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{supervisor}/task").iterdir():
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for k in kids:
            try:
                name = Path(f"/proc/{k}/comm").read_text().strip()
            except OSError:
                continue
            if name.startswith("vajra-"):
                out[name.removeprefix("vajra-")] = int(k)
    return out


def wait_for_modules(supervisor: int, timeout: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = module_pids(supervisor)
        if set(MODULES) <= set(pids):
            return pids
        time.sleep(0.2)
    raise AssertionError(f"module processes seen: {module_pids(supervisor)}")


def gone(pids: list[int], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{p}").exists() for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_processes_trade_lock_down_and_are_killed_like_threads(tmp_path: Path) -> None:
    p, run = start(
        tmp_path,
        *PROCS,
        "--speed",
        "10",
        "--set",
        "venue.spike_first_s=3",
        "--set",
        "venue.spike_every_s=4",
        "--set",
        "venue.spike_duration_ms=3000",
        "--set",
        "risk.healthy_ns=500_000_000",
        "--set",
        "execution.ladder_orders=6",
        "--set",
        "execution.min_strength=0.0",
    )
    pids = wait_for_modules(p.pid)
    assert len(set(pids.values())) == 4 and p.pid not in pids.values()
    time.sleep(14)
    k = subprocess.run(
        [sys.executable, "-m", "vajra", "kill", "--run", run, "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert k.returncode == 0 and "KILLED" in k.stdout, k.stdout + k.stderr
    time.sleep(1.5)
    p.send_signal(signal.SIGTERM)
    code, out = finish(p)
    assert code == 3, out
    s = summary(tmp_path, run)
    assert s["topology"] == "processes" and s["errors"] == [], s["errors"]
    assert s["orders"] > 5 and s["cancels"] > 0 and s["fills"] >= 1, s
    assert {"ATTACK", "VETO"} <= set(s["regimes_entered"]), s["regimes_entered"]
    assert s["entered"].get("LOCKDOWN") in ("RTT", "CANCEL_RTT"), s["entered"]
    assert s["latency"]["tick_to_order"]["n"] == s["orders"]
    assert s["open_orders_at_exit"] == 0 and s["venue_open_at_exit"] == 0
    # each module process on its planned CPU, read back from /proc by the supervisor
    for name in MODULES:
        t = s["threads"][name]
        assert t["tid"] == pids[name], (name, t)
        assert t["allowed_cpus"] == [t["planned_cpu"]] == [t["last_cpu"]], (name, t)
    # the kill: no placement after the flag; everything cancelled; the journal whole
    kill = s["kill"]
    assert kill["cancels_sent_ns"] >= kill["blocked_ns"] >= 0
    entries = list(read_entries(tmp_path / "journal.db"))
    assert [e for e in entries if e.kind is Kind.PLACE and e.t_ns >= kill["set_ns"]] == []
    assert any(e.kind is Kind.KILL for e in entries)
    state = replay(iter(entries))
    assert state.open == () and state.gaps == ()
    assert no_segments_left(run) and gone(list(pids.values()))


def test_a_dead_module_process_stops_the_engine_and_a_dead_supervisor_takes_them_along(
    tmp_path: Path,
) -> None:
    p, run = start(tmp_path, *PROCS, "--speed", "10", "--set", "venue.spike_every_s=0")
    pids = wait_for_modules(p.pid)
    time.sleep(3)
    os.kill(pids["oracle"], signal.SIGKILL)
    code, out = finish(p)
    assert code == 1 and "oracle process failed" in out, out
    s = summary(tmp_path, run)
    assert any(e.startswith("oracle:") for e in s["errors"]), s["errors"]
    assert s["open_orders_at_exit"] == 0 and s["venue_open_at_exit"] == 0
    assert no_segments_left(run) and gone(list(pids.values()))
    assert replay(read_entries(tmp_path / "journal.db")).gaps == ()

    p, run = start(tmp_path, *PROCS, "--speed", "10")
    pids = wait_for_modules(p.pid)
    os.kill(p.pid, signal.SIGKILL)
    finish(p, 30)
    assert gone(list(pids.values())), "module processes outlived their supervisor"
