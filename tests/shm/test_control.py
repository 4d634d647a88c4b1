"""The control block across processes: kill request -> engine acknowledgement with latency,
sequence-numbered commands, and re-arm only after the kill word is cleared."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from vajra.shm.control import Command, CommandResult, Control, EngineState
from vajra.shm.segment import new_run_id

ENGINE = textwrap.dedent("""
    import sys, time
    from vajra.shm.control import Control, Command, CommandResult, EngineState
    ctl = Control.attach(sys.argv[1]); r = ctl.reader()
    r.set_state(EngineState.ACTIVE)
    print("up", flush=True)
    deadline = time.monotonic() + 20
    acked = 0
    while time.monotonic() < deadline:          # one engine loop iteration per pass
        r.heartbeat()
        k = r.kill_requested()
        if k and k != acked:
            r.ack_kill(k); acked = k
        c = r.poll_command()
        if c:
            seq, cmd, arg = c
            if cmd == Command.REARM:
                ok = r.get("kill") == 0 and r.get("state") == EngineState.KILLED
                if ok: r.set_state(EngineState.ACTIVE)
                r.ack_command(seq, CommandResult.OK if ok else CommandResult.REJECTED)
            elif cmd == Command.HALT:
                r.set_state(EngineState.HALTED); r.ack_command(seq, CommandResult.OK)
            elif isinstance(cmd, int) and not isinstance(cmd, Command):
                r.ack_command(seq, CommandResult.UNKNOWN)
            else:
                r.ack_command(seq, CommandResult.OK)
            if cmd == Command.SNAPSHOT and arg == 99:
                break
    r.close(); ctl.close()
""")


@pytest.fixture
def control() -> Iterator[tuple[Control, subprocess.Popen[str]]]:
    run = new_run_id()
    ctl = Control.create(run)
    p = subprocess.Popen([sys.executable, "-c", ENGINE, run], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "up"
    yield ctl, p
    p.kill()
    p.wait()
    ctl.close()
    ctl.unlink()


def test_kill_is_acknowledged_across_processes(
    control: tuple[Control, subprocess.Popen[str]],
) -> None:
    ctl, _ = control
    w = ctl.writer()
    seq = w.request_kill(origin=7)
    assert seq == 1
    latency = w.wait_kill_ack(seq, timeout_s=5)
    assert latency is not None and latency > 0
    assert w.get("state") == EngineState.KILLED
    assert w.get("kill_origin") == 7
    # a command cannot undo a kill while the kill word is set: REARM clears it first, explicitly
    halt = w.send(Command.HALT)
    ack = w.wait_ack(halt, 5)
    assert ack is not None and ack.result is CommandResult.OK and ack.latency_ns > 0
    rearm = w.send(Command.REARM)
    ack = w.wait_ack(rearm, 5)
    # state was HALTED after the kill, so the engine refuses to rearm from it
    assert ack is not None and ack.result is CommandResult.REJECTED
    assert w.get("kill") == 0
    # a second kill gets a fresh sequence number, acknowledged in turn
    seq2 = w.request_kill()
    assert seq2 == 2
    assert w.wait_kill_ack(seq2, 5) is not None
    rearm = w.send(Command.REARM)
    ack = w.wait_ack(rearm, 5)
    assert ack is not None and ack.result is CommandResult.OK
    assert w.get("state") == EngineState.ACTIVE
    unknown = w.send(Command.NONE, 0)
    w.q[w._w["cmd"]] = 77  # a code this build does not know
    ack = w.wait_ack(unknown, 5)
    assert ack is not None
    w.send(Command.SNAPSHOT, 99)
    w.close()


def test_commands_are_sequenced_and_each_acknowledged_once(
    control: tuple[Control, subprocess.Popen[str]],
) -> None:
    ctl, p = control
    w = ctl.writer()
    seqs = []
    for _ in range(20):
        s = w.send(Command.SNAPSHOT, 1)
        ack = w.wait_ack(s, 5)
        assert ack is not None and ack.seq == s and ack.result is CommandResult.OK
        seqs.append(s)
    assert seqs == list(range(1, 21))
    last = w.send(Command.SNAPSHOT, 99)
    assert w.wait_ack(last, 5) is not None
    assert p.wait(10) == 0
    w.close()


def test_no_kill_no_ack() -> None:
    run = new_run_id()
    ctl = Control.create(run)
    try:
        w = ctl.writer()
        assert w.wait_kill_ack(w.request_kill(), timeout_s=0.05) is None  # no engine: timeout
        w.close()
    finally:
        ctl.close()
        ctl.unlink()
