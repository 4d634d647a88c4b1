"""The monitor's only writes: the kill word and the command mailbox of the control block, each
followed by waiting (asynchronously: the event loop keeps streaming) for the engine's
acknowledgement, and an audit line per action in the run's directory.

The engine journals the kill and the re-arm itself (origin MONITOR, `vajra.shm.control`); the
audit file adds what only the monitor knows: which peer asked and what it was answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from vajra.monitor.view import EngineView
from vajra.shm.control import Command, CommandResult, ControlWriter, KillOrigin

ACK_TIMEOUT_S = 2.0
SPIN_S = 0.05


class MonitorControl:
    def __init__(self, view: EngineView, runs_dir: Path | None) -> None:
        self.view = view
        self._w: ControlWriter | None = None  # taken at the first action: the writer role
        self.audit = runs_dir / view.run_id / "control.jsonl" if runs_dir is not None else None

    def _writer(self) -> ControlWriter:
        if self._w is None:
            self._w = self.view.control.writer()
        return self._w

    async def kill(self, peer: str) -> dict[str, Any]:
        """Set the kill word; answer once the engine says KILLED (Execution has seen the flag
        and refuses every write). The cancels of resting orders follow under the broker's rate
        limits; they are reported here if already sent, and on the `engine` channel when they
        are (`kill_ack`)."""
        t0 = time.perf_counter_ns()
        w = self._writer()
        seq = w.request_kill(origin=KillOrigin.MONITOR)
        halted = await self._until(lambda: w.get("kill_halted") >= seq)
        t1 = time.perf_counter_ns()
        set_ns = w.get("kill_set_ns")
        cancels_done = w.get("kill_ack") >= seq
        out: dict[str, Any] = {
            "action": "kill",
            "seq": seq,
            "acknowledged": halted,
            "state": self.view.engine()["state"],
            "engine_ack_us": round((w.get("kill_halted_ns") - set_ns) / 1e3, 1) if halted else None,
            "cancels_sent": cancels_done,
            "cancels_sent_us": round((w.get("kill_ack_ns") - set_ns) / 1e3, 1)
            if cancels_done
            else None,
            "monitor_ms": round((t1 - t0) / 1e6, 3),
        }
        self._audit(peer, out)
        return out

    async def rearm(self, peer: str) -> dict[str, Any]:
        t0 = time.perf_counter_ns()
        w = self._writer()
        seq = w.send(Command.REARM)
        acked = await self._until(lambda: w.get("cmd_ack") >= seq)
        result = "PENDING"
        if acked:
            result = CommandResult(w.get("cmd_result")).name
        out: dict[str, Any] = {
            "action": "rearm",
            "seq": seq,
            "acknowledged": acked,
            "result": result,
            "state": self.view.engine()["state"],
            "monitor_ms": round((time.perf_counter_ns() - t0) / 1e6, 3),
        }
        self._audit(peer, out)
        return out

    async def _until(self, done: Any) -> bool:
        """Wait for the engine's word: spinning with `sched_yield` for the first 50 ms (an
        acknowledgement usually comes within a millisecond, and a sleeping event loop would add
        a timer tick and a wake-up on a busy machine; the streams pause for that long at most),
        then polling every millisecond without blocking the loop, up to ACK_TIMEOUT_S."""
        t0 = time.monotonic()
        while not done():
            now = time.monotonic()
            if now - t0 > ACK_TIMEOUT_S:
                return False
            if now - t0 < SPIN_S:
                os.sched_yield()
            else:
                await asyncio.sleep(0.001)
        return True

    def _audit(self, peer: str, out: dict[str, Any]) -> None:
        if self.audit is None:
            return
        line = {"t": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "unix": time.time(), "peer": peer, **out}
        try:
            with self.audit.open("a") as f:
                f.write(json.dumps(line) + "\n")
        except OSError:
            pass  # the engine's journal holds the action regardless

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
            self._w = None
