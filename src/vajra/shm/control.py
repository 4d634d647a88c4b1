"""The control block: the monitor's only way to act on the engine, and the engine's answer.

Two cache-line groups, one writer each:
- monitor-owned: the kill word and a command mailbox (sequence-numbered);
- engine-owned: acknowledgements, the engine's state and heartbeat.

The kill word is what every engine module checks once per loop iteration: a single 8-byte load
(`ControlReader.kill_requested()`), nonzero once a kill was requested. It holds the kill's
sequence number, so the engine acknowledges exactly the request it saw and the monitor can tell
a fresh kill from an old one. Re-arming is a separate command that the engine accepts only once
the monitor has cleared the kill word, so a stale or replayed command cannot undo a kill.

Exactly one monitor process writes the monitor line at a time (it takes the block's writer role
at attach; see `ControlWriter`). Commands carry sequence numbers: the engine handles each once,
in order, and acknowledges it with a result code.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass
from typing import Self

from vajra.shm.layout import Layout, line_fields
from vajra.shm.segment import Segment

CONTROL = Layout(
    "control",
    2,
    (
        *line_fields(
            "kill",
            "kill_set_ns",
            "kill_origin",
            "cmd_seq",
            "cmd",
            "cmd_arg",
            "cmd_set_ns",
            "monitor_pid",
            doc="monitor-owned: kill request (its sequence, 0 = none), when, from where "
            "(an origin code the monitor journals), command mailbox (args first, cmd_seq last)",
        ),
        *line_fields(
            "state",
            "kill_halted",
            "kill_halted_ns",
            "kill_ack",
            "kill_ack_ns",
            "cmd_ack",
            "cmd_result",
            "cmd_ack_ns",
            "engine_pid",
            "heartbeat_ns",
            "last_kill",
            doc="engine-owned: EngineState, the kill whose flag Execution has seen (writes refused "
            "from then: KILLED) and when, the kill acknowledged once every resting order has its "
            "cancel sent and when, last command handled and its result, heartbeat "
            "(perf_counter_ns), kill sequence to rearm from",
        ),
    ),
)


class EngineState(enum.IntEnum):
    STARTING = 0
    ACTIVE = 1
    REDUCING = 2
    HALTED = 3
    KILLED = 4
    STOPPED = 5


class KillOrigin(enum.IntEnum):
    """Who set the kill word (`kill_origin`), journaled by the engine with the kill."""

    UNKNOWN = 0
    CLI = 1  # `vajra kill`
    BENCH = 2  # `vajra bench e2e`'s kill cycles
    MONITOR = 3  # `POST /api/kill` on `vajra monitor`


class Command(enum.IntEnum):
    NONE = 0
    REARM = 1
    HALT = 2
    RESUME = 3
    SNAPSHOT = 4
    SPIKE = 5  # inject a latency spike (demo and drills)


class CommandResult(enum.IntEnum):
    PENDING = 0
    OK = 1
    REJECTED = 2
    UNKNOWN = 3


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int
    result: CommandResult
    latency_ns: int


class _Side:
    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.buf = segment.view()
        self.q = segment.cast(self.buf, "q")
        base = segment.body // 8
        self._w = {n: base + CONTROL.word(n) for n in CONTROL.names()}

    def get(self, name: str) -> int:
        return self.q[self._w[name]]

    def close(self) -> None:
        self.q.release()
        self.buf.release()


class ControlWriter(_Side):
    """The monitor's side. Never blocks the engine: it only stores words and polls for acks."""

    def __init__(self, segment: Segment) -> None:
        super().__init__(segment)
        self.q[self._w["monitor_pid"]] = os.getpid()

    def request_kill(self, origin: int = 0) -> int:
        """Set the kill word; returns the kill sequence to wait for with `wait_kill_ack`."""
        seq = max(self.get("kill"), self.get("last_kill")) + 1
        self.q[self._w["kill_set_ns"]] = time.perf_counter_ns()
        self.q[self._w["kill_origin"]] = origin
        self.q[self._w["kill"]] = seq  # last: modules see the flag only with its metadata
        return seq

    def wait_kill_ack(self, seq: int, timeout_s: float = 2.0) -> int | None:
        """ns from the kill request to the engine's acknowledgement, or None on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.get("kill_ack") >= seq:
                return self.get("kill_ack_ns") - self.get("kill_set_ns")
            time.sleep(0.0002)
        return None

    def send(self, cmd: Command, arg: int = 0) -> int:
        """Post a command; returns its sequence number."""
        seq = max(self.get("cmd_seq"), self.get("cmd_ack")) + 1
        self.q[self._w["cmd"]] = int(cmd)
        self.q[self._w["cmd_arg"]] = arg
        self.q[self._w["cmd_set_ns"]] = time.perf_counter_ns()
        if cmd is Command.REARM:
            self.q[self._w["kill"]] = 0
        self.q[self._w["cmd_seq"]] = seq  # last
        return seq

    def wait_ack(self, seq: int, timeout_s: float = 2.0) -> Ack | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.get("cmd_ack") >= seq:
                return Ack(
                    self.get("cmd_ack"),
                    CommandResult(self.get("cmd_result")),
                    self.get("cmd_ack_ns") - self.get("cmd_set_ns"),
                )
            time.sleep(0.0002)
        return None


class ControlReader(_Side):
    """The engine's side. `kill_requested()` is the per-iteration check: one 8-byte load."""

    __slots__ = ()

    def __init__(self, segment: Segment) -> None:
        super().__init__(segment)
        self.kill_w = self._w["kill"]
        self.q[self._w["engine_pid"]] = os.getpid()

    def kill_requested(self) -> int:
        """The pending kill's sequence, or 0. Cost: one attribute load and one shared load."""
        return self.q[self.kill_w]

    def halt_kill(self, seq: int) -> None:
        """The first stage: Execution has seen the flag and refuses every write from now on."""
        self.q[self._w["kill_halted_ns"]] = time.perf_counter_ns()
        self.q[self._w["state"]] = EngineState.KILLED
        self.q[self._w["kill_halted"]] = seq  # last

    def ack_kill(self, seq: int) -> None:
        self.q[self._w["kill_ack_ns"]] = time.perf_counter_ns()
        self.q[self._w["last_kill"]] = seq
        self.q[self._w["state"]] = EngineState.KILLED
        self.q[self._w["kill_ack"]] = seq  # last

    def poll_command(self) -> tuple[int, Command | int, int] | None:
        """The next unhandled command as (seq, cmd, arg), or None. Unknown codes come back as
        plain ints so the caller can reject them."""
        seq = self.get("cmd_seq")
        if seq <= self.get("cmd_ack"):
            return None
        code = self.get("cmd")
        arg = self.get("cmd_arg")
        if self.get("cmd_seq") != seq:  # overwritten while reading: take it next poll
            return None
        try:
            return seq, Command(code), arg
        except ValueError:
            return seq, code, arg

    def ack_command(self, seq: int, result: CommandResult) -> None:
        self.q[self._w["cmd_result"]] = int(result)
        self.q[self._w["cmd_ack_ns"]] = time.perf_counter_ns()
        self.q[self._w["cmd_ack"]] = seq  # last

    def set_state(self, state: EngineState) -> None:
        self.q[self._w["state"]] = int(state)

    def heartbeat(self) -> None:
        self.q[self._w["heartbeat_ns"]] = time.perf_counter_ns()


class ControlPeek(_Side):
    """Reads both lines, writes neither: what a monitor polls for display."""

    __slots__ = ()


class Control:
    """The control segment of one run (the engine creates it; the monitor attaches read-write,
    because the kill word is the one thing the monitor writes)."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment

    @classmethod
    def create(cls, run_id: str) -> Self:
        return cls(Segment.create(run_id, "control", CONTROL))

    @classmethod
    def attach(cls, run_id: str) -> Self:
        return cls(Segment.attach(run_id, "control", CONTROL))

    def reader(self) -> ControlReader:
        return ControlReader(self.segment)

    def writer(self) -> ControlWriter:
        return ControlWriter(self.segment)

    def peek(self) -> ControlPeek:
        return ControlPeek(self.segment)

    def close(self) -> None:
        self.segment.close()

    def unlink(self) -> None:
        self.segment.unlink()
