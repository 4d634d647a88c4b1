"""The cockpit end to end: the built dashboard served by a real monitor, fed by a real engine,
driven in Debian's Chromium by playwright-core (`dashboard/scripts/e2e-kill.mjs`): it waits for
LIVE, kills through the UI (button, confirm, token), checks KILLED over HTTP, then re-arms through
the UI. Here the engine side is checked too: no placement reached the venue between the kill and
the re-arm, and the engine journaled the kill as the monitor's."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.engine.test_run import finish, start
from tests.monitor.test_monitor import TOKEN, TRADING, start_monitor, stop, wait_engine, wait_placed
from vajra.journal.journal import Kind, read_entries

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dashboard" / "dist" / "index.html"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(
    not CHROMIUM.exists() or shutil.which("node") is None or not DIST.exists(),
    reason="needs Debian's chromium, node and the built cockpit (make test builds it; "
    "`apt-get install chromium`)",
)
def test_kill_through_the_cockpit_halts_the_engine(tmp_path: Path) -> None:
    mon, port = start_monitor(tmp_path, "--static", str(DIST.parent))
    eng, run = start(tmp_path, *TRADING, "--duration", "90")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    try:
        wait_engine(port, run=run)
        wait_placed(port, 1)
        r = subprocess.run(
            [
                "node",
                str(ROOT / "dashboard" / "scripts" / "e2e-kill.mjs"),
                f"http://127.0.0.1:{port}/",
                str(token_file),
                str(tmp_path / "cockpit"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT / "dashboard",
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "kill acknowledged in the UI" in r.stdout, r.stdout
        assert (tmp_path / "cockpit-killed.png").stat().st_size > 10_000
    finally:
        stop(mon)
        if eng.poll() is None:
            eng.send_signal(signal.SIGTERM)
        code, out = finish(eng)
    assert code in (0, 3), out
    entries = list(read_entries(tmp_path / "journal.db"))
    kills = [e for e in entries if e.kind is Kind.KILL]
    assert kills, "the engine journaled no kill"
    assert "MONITOR" in json.dumps([str(e) for e in kills[:1]])
    t_kill = kills[0].t_ns
    t_rearm = kills[1].t_ns if len(kills) > 1 else None
    placed = [
        e
        for e in entries
        if e.kind is Kind.PLACE and e.t_ns >= t_kill and (t_rearm is None or e.t_ns < t_rearm)
    ]
    assert placed == [], placed[:3]
