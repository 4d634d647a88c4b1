"""`vajra signals` runs each feed end to end through the pipeline and cleans up after itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vajra", "signals", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _segments() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith("vajra-")}


@pytest.mark.parametrize("feed", ["synthetic", "binance", "lobster"])
def test_feeds_run_and_leave_no_segments(feed: str) -> None:
    spec = {
        "synthetic": "synthetic",
        "binance": f"binance:{DATA / 'binance' / 'usdm_btcusdt_20240808.gz'}",
        "lobster": f"lobster:{DATA / 'lobster' / 'LOBSTER_SampleFile_AMZN_2012-06-21_5.zip'}",
    }
    if feed != "synthetic" and not DATA.exists():
        pytest.skip("../shared/data is absent")
    before = _segments()
    r = _run("--feed", spec[feed], "--seconds", "1.5")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "wobi" in out and "gate" in out
    assert "tick_to_signal" in out and "signals sent" in out
    assert "book violations {'CROSSED': 0" in out  # every replay and the generator stay sane
    assert _segments() - before == set()


def test_bad_feed_specs_are_clear_errors() -> None:
    r = _run("--feed", "nasdaq", "--seconds", "0.1")
    assert r.returncode == 2 and "unknown feed 'nasdaq'" in r.stderr
    r = _run("--feed", "binance:/nonexistent.gz", "--seconds", "0.1")
    assert r.returncode == 2 and "no such file" in r.stderr


def test_a_corrupt_file_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"not gzip at all")
    before = _segments()
    r = _run("--feed", f"binance:{bad}", "--seconds", "0.5")
    assert r.returncode == 1 and "feed error after 0 events" in r.stderr
    assert "Traceback" not in r.stderr
    r = _run("--feed", f"lobster:{bad}", "--seconds", "0.5")
    assert r.returncode == 2 and "cannot read feed" in r.stderr and "Traceback" not in r.stderr
    assert _segments() - before == set()
