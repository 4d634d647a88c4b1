"""`vajra bench ipc`: the Vajra ring against what a Python user would otherwise pick, in one run.

Every case moves 64-byte messages between two sides pinned to two different CPUs and reports:
- one-way latency (ns): the receiver's `perf_counter_ns()` minus the sender's, stamped into the
  message just before it is published. The sender waits for a reply before sending the next
  message (ping-pong pacing), so the figure is the unloaded hop, not queueing delay;
  `perf_counter_ns` is CLOCK_MONOTONIC, one clock for all CPUs and processes;
- round trip (ns) of the same ping-pong;
- throughput (msg/s): the sender pushes as fast as the transport accepts (the ring with
  back-pressure, never dropping), from the sender's first send to the receiver's last receive;
  for the ring also with one publish per batch of up to 64.

Cases that would turn the GIL on in this process (`faster-fifo`, `PYTHON_GIL=1`, a stock GIL
build) run in a child interpreter that prints JSON, so the parent's own cases stay GIL-free.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import math
import multiprocessing as mp
import os
import platform
import queue
import shutil
import struct
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from vajra.runtime.gil import free_threaded_build, gil_enabled
from vajra.shm.ring import Ring
from vajra.shm.segment import new_run_id

MSG = struct.Struct("<8q")  # 64 bytes: seq, t_send, 5 filler words, checksum
STOP = -1
BATCH = 64
#: latency runs stop at their time budget, but never before this many round trips
MIN_SAMPLES = 1000
#: Floors from the foundation issue (2-core machine, pinned, busy-spin).
FLOORS = {
    "ring_p50_ns": 1500,
    "ring_p99_ns": 10_000,
    "queue_over_ring_p50": 30.0,
    "ring_msgs_per_s": 1.5e6,
    "ring_batched_msgs_per_s": 3.0e6,
}


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(threading.get_native_id(), {cpu})


def _check(seq: int, t: int, chk: int) -> None:
    if chk != (seq ^ t ^ 0x5A5A5A5A):
        raise AssertionError(f"corrupt message seq={seq}")


def percentiles(samples: array[int] | list[int]) -> dict[str, float]:
    """Exact percentiles by sorting (benchmarks keep every sample)."""
    s = sorted(samples)
    n = len(s)
    if n == 0:
        return {"n": 0}

    def at(p: float) -> int:  # nearest rank: the smallest sample with >= p% at or below it
        rank = max(1, math.ceil(round(p * n / 100, 9)))
        return s[min(n, rank) - 1]

    return {
        "n": n,
        "p50": at(50),
        "p90": at(90),
        "p99": at(99),
        "p999": at(99.9),
        "max": s[-1],
        "min": s[0],
        "mean": sum(s) / n,
    }


@dataclass
class CaseResult:
    name: str
    transport: str
    mode: str  # threads | processes
    interpreter: str
    gil: bool
    latency_ns: dict[str, float] = field(default_factory=dict)
    rtt_ns: dict[str, float] = field(default_factory=dict)
    msgs_per_s: float | None = None
    batched_msgs_per_s: float | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def interpreter_label() -> str:
    return f"{platform.python_version()}{'t' if free_threaded_build() else ''}"


gil_on = gil_enabled


# ---------------------------------------------------------------------------------------------
# Ring sides. The same functions run as threads or as spawned processes.


def ring_pinger(run: str, cpu: int | None, n: int, budget_s: float, out: Any) -> None:
    """Send up to n pings (or until budget), wait for each pong; record round trips."""
    _pin(cpu)
    ping, pong = Ring.attach(run, "ping"), Ring.attach(run, "pong")
    w, r = ping.writer(), pong.reader()
    rtt = array("q", bytes(8 * n))
    pack, perf, buf = MSG.pack_into, time.perf_counter_ns, w.buf
    deadline = 1 << 62  # set after the first round trip: the peer may still be starting
    done = 0
    for i in range(n):
        off = w.claim_wait()
        t = perf()
        pack(buf, off, i, t, 0, 0, 0, 0, 0, i ^ t ^ 0x5A5A5A5A)
        w.publish()
        while r.poll() < 0:  # busy-spin: one shared load per iteration
            pass
        t2 = perf()
        r.commit()
        rtt[i] = t2 - t
        done = i + 1
        if i == 0:
            deadline = t2 + int(budget_s * 1e9)
        elif t2 > deadline and i >= MIN_SAMPLES:
            break
    off = w.claim_wait()
    pack(buf, off, STOP, 0, 0, 0, 0, 0, 0, STOP ^ 0x5A5A5A5A)
    w.publish()
    del rtt[done:]
    w.close()
    r.close()
    ping.close()
    pong.close()
    _deliver(out, ("rtt", rtt.tobytes()))


def ring_ponger(run: str, cpu: int | None, n: int, out: Any) -> None:
    """Receive pings, record one-way latency, answer each with a pong."""
    _pin(cpu)
    ping, pong = Ring.attach(run, "ping"), Ring.attach(run, "pong")
    r, w = ping.reader(), pong.writer()
    lat = array("q", bytes(8 * n))
    unpack, pack, perf, rbuf, wbuf = (
        MSG.unpack_from,
        MSG.pack_into,
        time.perf_counter_ns,
        r.buf,
        w.buf,
    )
    count = 0
    while True:
        off = r.poll()
        if off < 0:
            continue
        now = perf()
        seq, t, _, _, _, _, _, chk = unpack(rbuf, off)
        r.commit()
        _check(seq, t, chk)
        if seq == STOP:
            break
        lat[seq] = now - t
        count = seq + 1
        off = w.claim_wait()
        pack(wbuf, off, seq, now, 0, 0, 0, 0, 0, seq ^ now ^ 0x5A5A5A5A)
        w.publish()
    del lat[count:]
    r.close()
    w.close()
    ping.close()
    pong.close()
    _deliver(out, ("lat", lat.tobytes()))


def ring_flood(run: str, cpu: int | None, n: int, batched: bool, out: Any) -> None:
    """Producer for throughput: n messages as fast as the ring takes them (back-pressure)."""
    _pin(cpu)
    ring = Ring.attach(run, "flood")
    w = ring.writer()
    pack, buf, perf = MSG.pack_into, w.buf, time.perf_counter_ns
    t0 = perf()
    if not batched:
        claim, publish = w.claim_wait, w.publish
        for i in range(n):  # cost: claim + pack_into + publish, ~3 calls per message
            off = claim()
            pack(buf, off, i, t0, 0, 0, 0, 0, 0, i ^ t0 ^ 0x5A5A5A5A)
            publish()
    else:
        i = 0
        claim_batch, publish_batch, stride = w.claim_batch, w.publish_batch, w.stride
        while i < n:
            k = claim_batch(min(BATCH, n - i))
            off = w.batch_offset
            for s in range(i, i + k):  # cost: one pack_into and one add per message
                pack(buf, off, s, t0, 0, 0, 0, 0, 0, s ^ t0 ^ 0x5A5A5A5A)
                off += stride
            if k:
                publish_batch()
                i += k
    w.close()
    ring.close()
    _deliver(out, ("t0", t0))


def ring_drain(run: str, cpu: int | None, n: int, batched: bool, out: Any) -> None:
    """Consumer for throughput: read and check every message; report when the last arrived."""
    _pin(cpu)
    ring = Ring.attach(run, "flood")
    r = ring.reader()
    unpack, buf = MSG.unpack_from, r.buf
    expect = 0
    if not batched:
        poll, commit = r.poll, r.commit
        while expect < n:
            off = poll()
            if off < 0:
                continue
            seq, t, _, _, _, _, _, chk = unpack(buf, off)
            commit()
            if seq != expect or chk != (seq ^ t ^ 0x5A5A5A5A):
                raise AssertionError(f"ring drain: got seq {seq}, expected {expect}")
            expect += 1
    else:
        poll_batch, batch_view, commit_batch = r.poll_batch, r.batch_view, r.commit_batch
        # each slot is the ring's sequence word, the 64-byte message, and padding to the stride
        slot = struct.Struct(f"<q8q{r.stride - 72}x")
        while expect < n:
            k = poll_batch(BATCH)
            if not k:
                continue
            for _, seq, t, _, _, _, _, _, chk in slot.iter_unpack(batch_view(k)):
                if seq != expect or chk != (seq ^ t ^ 0x5A5A5A5A):  # cost: ~1 tuple per message
                    raise AssertionError(f"ring drain: got seq {seq}, expected {expect}")
                expect += 1
            commit_batch(k)
    t_end = time.perf_counter_ns()
    r.close()
    ring.close()
    _deliver(out, ("t_end", t_end))


def _deliver(out: Any, item: tuple[str, Any]) -> None:
    if isinstance(out, list):
        out.append(item)
    else:
        out.put(item)


def _run_pair(
    mode: str,
    a: Callable[..., None],
    a_args: tuple[Any, ...],
    b: Callable[..., None],
    b_args: tuple[Any, ...],
) -> dict[str, Any]:
    """Run two sides as threads or spawned processes; collect what they deliver."""
    if mode == "threads":
        out: list[tuple[str, Any]] = []
        errs: list[BaseException] = []

        def wrap(f: Callable[..., None], args: tuple[Any, ...]) -> Callable[[], None]:
            def run() -> None:
                try:
                    f(*args, out)
                except BaseException as e:  # reported by the caller
                    errs.append(e)

            return run

        ts = [threading.Thread(target=wrap(b, b_args)), threading.Thread(target=wrap(a, a_args))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errs:
            raise errs[0]
        return dict(out)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ps = [ctx.Process(target=b, args=(*b_args, q)), ctx.Process(target=a, args=(*a_args, q))]
    for p in ps:
        p.start()
    got: dict[str, Any] = {}
    while len(got) < 2:
        try:
            k, v = q.get(timeout=120)
        except queue.Empty:
            raise RuntimeError("benchmark child processes did not report") from None
        got[k] = v
    for p in ps:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"benchmark child exited with {p.exitcode}")
    return got


def bench_ring(
    mode: str, cpus: tuple[int | None, int | None], n_lat: int, n_tp: int, budget_s: float
) -> CaseResult:
    res = CaseResult(f"ring-{mode}", "vajra-ring", mode, interpreter_label(), gil_on())
    run = new_run_id()
    rings = [Ring.create(run, "ping", 1024, 64), Ring.create(run, "pong", 1024, 64)]
    try:
        got = _run_pair(
            mode, ring_pinger, (run, cpus[0], n_lat, budget_s), ring_ponger, (run, cpus[1], n_lat)
        )
        res.latency_ns = percentiles(_discard_warmup(array("q", got["lat"])))
        res.rtt_ns = percentiles(_discard_warmup(array("q", got["rtt"])))
    finally:
        for rg in rings:
            rg.close()
            rg.unlink()
    for batched in (False, True):
        flood = Ring.create(
            run, "flood", 4096, 64, slot_align=int(os.environ.get("VAJRA_SLOT_ALIGN", "8"))
        )
        try:
            got = _run_pair(
                mode,
                ring_flood,
                (run, cpus[0], n_tp, batched),
                ring_drain,
                (run, cpus[1], n_tp, batched),
            )
            rate = n_tp / ((got["t_end"] - got["t0"]) / 1e9)
            if batched:
                res.batched_msgs_per_s = rate
            else:
                res.msgs_per_s = rate
        finally:
            flood.close()
            flood.unlink()
    return res


def _discard_warmup(a: array[int]) -> array[int]:
    return a[len(a) // 10 :] if len(a) >= 20 else a


# ---------------------------------------------------------------------------------------------
# Baselines: multiprocessing.Queue, multiprocessing.Pipe, os.pipe, faster-fifo, queue.SimpleQueue.
# Each side gets a `send(bytes)` and a `recv() -> bytes` built from the transport's handles.


def _endpoints(
    kind: str, handles: tuple[Any, ...], side: str
) -> tuple[Callable[[bytes], Any], Callable[[], bytes]]:
    if kind in ("mp-queue", "simple-queue", "faster-fifo"):
        fwd, back = handles
        return (fwd.put, back.get) if side == "a" else (back.put, fwd.get)
    if kind == "mp-pipe":
        a_end, b_end = handles
        c = a_end if side == "a" else b_end
        return c.send_bytes, c.recv_bytes
    if kind == "os-pipe":
        r1, w1, r2, w2 = handles
        wfd, rfd = (w1, r2) if side == "a" else (w2, r1)

        def recv() -> bytes:
            return os.read(rfd, 64)

        return (lambda b: os.write(wfd, b)), recv
    raise ValueError(kind)


def base_pinger(
    kind: str, handles: tuple[Any, ...], cpu: int | None, n: int, budget_s: float, out: Any
) -> None:
    _pin(cpu)
    send, recv = _endpoints(kind, handles, "a")
    rtt = array("q", bytes(8 * n))
    pack, perf = MSG.pack, time.perf_counter_ns
    deadline = 1 << 62  # set after the first round trip: the peer may still be starting
    done = 0
    for i in range(n):
        t = perf()
        send(pack(i, t, 0, 0, 0, 0, 0, i ^ t ^ 0x5A5A5A5A))
        recv()
        t2 = perf()
        rtt[i] = t2 - t
        done = i + 1
        if i == 0:
            deadline = t2 + int(budget_s * 1e9)
        elif t2 > deadline and i >= MIN_SAMPLES:
            break
    send(pack(STOP, 0, 0, 0, 0, 0, 0, STOP ^ 0x5A5A5A5A))
    del rtt[done:]
    _deliver(out, ("rtt", rtt.tobytes()))


def base_ponger(kind: str, handles: tuple[Any, ...], cpu: int | None, n: int, out: Any) -> None:
    _pin(cpu)
    send, recv = _endpoints(kind, handles, "b")
    lat = array("q", bytes(8 * n))
    unpack, pack, perf = MSG.unpack, MSG.pack, time.perf_counter_ns
    count = 0
    while True:
        m = recv()
        now = perf()
        seq, t, _, _, _, _, _, chk = unpack(m)
        _check(seq, t, chk)
        if seq == STOP:
            break
        lat[seq] = now - t
        count = seq + 1
        send(pack(seq, now, 0, 0, 0, 0, 0, seq ^ now ^ 0x5A5A5A5A))
    del lat[count:]
    _deliver(out, ("lat", lat.tobytes()))


def base_flood(kind: str, handles: tuple[Any, ...], cpu: int | None, n: int, out: Any) -> None:
    _pin(cpu)
    send, _ = _endpoints(kind, handles, "a")
    pack = MSG.pack
    t0 = time.perf_counter_ns()
    for i in range(n):
        send(pack(i, t0, 0, 0, 0, 0, 0, i ^ t0 ^ 0x5A5A5A5A))
    _deliver(out, ("t0", t0))


def base_drain(kind: str, handles: tuple[Any, ...], cpu: int | None, n: int, out: Any) -> None:
    _pin(cpu)
    _, recv = _endpoints(kind, handles, "b")
    unpack = MSG.unpack
    for expect in range(n):
        seq, t, _, _, _, _, _, chk = unpack(recv())
        if seq != expect or chk != (seq ^ t ^ 0x5A5A5A5A):
            raise AssertionError(f"{kind}: got seq {seq}, expected {expect}")
    _deliver(out, ("t_end", time.perf_counter_ns()))


def _make_handles(kind: str, mode: str) -> tuple[Any, ...]:
    if kind == "simple-queue":
        return queue.SimpleQueue(), queue.SimpleQueue()
    ctx = mp.get_context("spawn")
    if kind == "mp-queue":
        return ctx.Queue(), ctx.Queue()
    if kind == "mp-pipe":
        a, b = ctx.Pipe(duplex=True)
        return a, b
    if kind == "os-pipe":
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        for fd in (r1, w1, r2, w2):
            os.set_inheritable(fd, True)
        return r1, w1, r2, w2
    if kind == "faster-fifo":
        # turns the GIL on: only ever imported in a child interpreter
        faster_fifo = importlib.import_module("faster_fifo")
        return faster_fifo.Queue(1 << 20), faster_fifo.Queue(1 << 20)
    raise ValueError(kind)


def bench_baseline(
    kind: str,
    mode: str,
    cpus: tuple[int | None, int | None],
    n_lat: int,
    n_tp: int,
    budget_s: float,
) -> CaseResult:
    res = CaseResult(f"{kind}-{mode}", kind, mode, interpreter_label(), gil_on())
    if mode == "processes" and kind == "os-pipe":
        res.notes.append("fds inherited by spawned children")
    handles = _make_handles(kind, mode)
    if kind == "os-pipe" and mode == "processes":
        return _bench_os_pipe_processes(res, handles, cpus, n_lat, n_tp, budget_s)
    got = _run_pair(
        mode,
        base_pinger,
        (kind, handles, cpus[0], n_lat, budget_s),
        base_ponger,
        (kind, handles, cpus[1], n_lat),
    )
    res.latency_ns = percentiles(_discard_warmup(array("q", got["lat"])))
    res.rtt_ns = percentiles(_discard_warmup(array("q", got["rtt"])))
    handles = _make_handles(kind, mode)
    got = _run_pair(
        mode, base_flood, (kind, handles, cpus[0], n_tp), base_drain, (kind, handles, cpus[1], n_tp)
    )
    res.msgs_per_s = n_tp / ((got["t_end"] - got["t0"]) / 1e9)
    return res


def _bench_os_pipe_processes(
    res: CaseResult,
    handles: tuple[Any, ...],
    cpus: tuple[int | None, int | None],
    n_lat: int,
    n_tp: int,
    budget_s: float,
) -> CaseResult:
    """Raw fds cannot be pickled to spawned children; run each side as `python -c` with
    pass_fds and read its JSON report."""

    def side(fn: str, args: str, fds: tuple[int, ...]) -> subprocess.Popen[str]:
        code = (
            f"import json,sys; from vajra.bench import ipc; out=[]; "
            f"ipc.{fn}('os-pipe', {fds!r}, {args}, out); "
            "print(json.dumps({k: (v.hex() if isinstance(v, bytes) else v) for k, v in out}))"
        )
        return subprocess.Popen(
            [sys.executable, "-c", code], pass_fds=fds, stdout=subprocess.PIPE, text=True
        )

    def collect(*ps: subprocess.Popen[str]) -> dict[str, Any]:
        got: dict[str, Any] = {}
        for p in ps:
            o, _ = p.communicate(timeout=300)
            if p.returncode:
                raise RuntimeError(f"os-pipe child failed ({p.returncode})")
            got.update(json.loads(o))
        return got

    fds = handles
    b = side("base_ponger", f"{cpus[1]!r}, {n_lat}", fds)
    a = side("base_pinger", f"{cpus[0]!r}, {n_lat}, {budget_s}", fds)
    got = collect(a, b)
    res.latency_ns = percentiles(_discard_warmup(array("q", bytes.fromhex(got["lat"]))))
    res.rtt_ns = percentiles(_discard_warmup(array("q", bytes.fromhex(got["rtt"]))))
    for fd in fds:
        os.close(fd)
    fds = _make_handles("os-pipe", "processes")
    b = side("base_drain", f"{cpus[1]!r}, {n_tp}", fds)
    a = side("base_flood", f"{cpus[0]!r}, {n_tp}", fds)
    got = collect(a, b)
    for fd in fds:
        os.close(fd)
    res.msgs_per_s = n_tp / ((got["t_end"] - got["t0"]) / 1e9)
    return res


# ---------------------------------------------------------------------------------------------
# Orchestration


def _child_case(
    python: str, case: str, env_extra: dict[str, str], args: argparse.Namespace, label: str
) -> list[CaseResult]:
    """Run one case in another interpreter (or with the GIL forced on) and parse its JSON."""
    env = dict(os.environ, **env_extra)
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [
        python,
        "-m",
        "vajra.bench.ipc",
        "--case",
        case,
        "--json",
        "--allow-gil",
        "--cpus",
        ",".join(str(c) for c in args.cpu_pair),
    ]
    if args.quick:
        cmd.append("--quick")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if p.returncode:
        return [
            CaseResult(
                case,
                case,
                "?",
                label,
                True,
                error=(p.stderr.strip().splitlines() or ["failed"])[-1],
            )
        ]
    out = []
    for c in json.loads(p.stdout)["cases"]:
        r = CaseResult(**c)
        r.name = f"{r.name} [{label}]"
        out.append(r)
    return out


def stock_gil_python() -> str | None:
    """A stock (GIL) CPython 3.13 for the single-thread-speed comparison, if one is present."""
    cands = [os.environ.get("VAJRA_GIL_PYTHON", ""), shutil.which("python3.13") or ""]
    pyenv = os.path.expanduser("~/.pyenv/versions")
    if os.path.isdir(pyenv):
        cands += [
            os.path.join(pyenv, v, "bin", "python3.13")
            for v in sorted(os.listdir(pyenv))
            if v.startswith("3.13")
        ]
    for c in cands:
        if not c or not os.access(c, os.X_OK):
            continue
        try:
            p = subprocess.run(
                [
                    c,
                    "-c",
                    "import sys,sysconfig;print(sys.version_info[:2]==(3,13)"
                    " and not sysconfig.get_config_var('Py_GIL_DISABLED'))",
                ],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if p.stdout.strip() == "True":
            return c
    return None


def _sizes(quick: bool) -> tuple[int, int, float]:
    """(latency messages, throughput messages, latency time budget in seconds)."""
    return (20_000, 300_000, 1.0) if quick else (200_000, 2_000_000, 4.0)


def run_case(case: str, args: argparse.Namespace) -> list[CaseResult]:
    n_lat, n_tp, budget = _sizes(args.quick)
    cpus = tuple(args.cpu_pair)
    if case == "ring-threads":
        return [bench_ring("threads", cpus, n_lat, n_tp, budget)]
    if case == "ring-processes":
        return [bench_ring("processes", cpus, n_lat, n_tp, budget)]
    kind, _, mode = case.rpartition("-")
    # Blocking transports are ~100x slower per message: fewer throughput messages suffice.
    return [bench_baseline(kind, mode, cpus, n_lat, max(20_000, n_tp // 10), budget)]


LOCAL_CASES = [
    "ring-threads",
    "ring-processes",
    "mp-queue-processes",
    "mp-pipe-processes",
    "os-pipe-processes",
    "simple-queue-threads",
]


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    results: list[CaseResult] = []
    for case in LOCAL_CASES:
        results += _safe(case, functools.partial(run_case, case, args))
        _progress(results[-1], args)
    if _importable_in_child(sys.executable, "faster_fifo"):
        results += _child_case(
            sys.executable,
            "faster-fifo-processes",
            {"PYTHON_GIL": "1"},
            args,
            f"{interpreter_label()} PYTHON_GIL=1",
        )
    else:
        results.append(
            CaseResult(
                "faster-fifo-processes",
                "faster-fifo",
                "processes",
                interpreter_label(),
                True,
                error="faster-fifo not installed",
            )
        )
    _progress(results[-1], args)
    results += _child_case(
        sys.executable,
        "ring-threads",
        {"PYTHON_GIL": "1"},
        args,
        f"{interpreter_label()} PYTHON_GIL=1",
    )
    _progress(results[-1], args)
    stock = stock_gil_python()
    if stock:
        results += _child_case(stock, "ring-threads", {}, args, f"stock {_version_of(stock)}")
    else:
        results.append(
            CaseResult(
                "ring-threads [stock 3.13]",
                "vajra-ring",
                "threads",
                "3.13",
                True,
                error="no stock GIL CPython 3.13 found (set VAJRA_GIL_PYTHON)",
            )
        )
    _progress(results[-1], args)
    return summarise(results, args)


def _safe(case: str, fn: Callable[[], list[CaseResult]]) -> list[CaseResult]:
    try:
        return fn()
    except Exception as e:  # one failing baseline must not hide the others
        return [CaseResult(case, case, "?", interpreter_label(), gil_on(), error=repr(e))]


def _importable_in_child(python: str, mod: str) -> bool:
    p = subprocess.run(
        [python, "-c", f"import {mod}"],
        capture_output=True,
        env=dict(os.environ, PYTHON_GIL="1"),
        timeout=60,
    )
    return p.returncode == 0


def _version_of(python: str) -> str:
    p = subprocess.run(
        [python, "-c", "import platform;print(platform.python_version())"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    return p.stdout.strip()


def _progress(r: CaseResult, args: argparse.Namespace) -> None:
    if not args.json:
        print(f"  done: {r.name}" + (f" (error: {r.error})" if r.error else ""), file=sys.stderr)


def summarise(results: list[CaseResult], args: argparse.Namespace) -> dict[str, Any]:
    by = {r.name: r for r in results}
    ring_p = by.get("ring-processes")
    ring_t = by.get("ring-threads")
    mpq = by.get("mp-queue-processes")
    ratios: dict[str, float] = {}

    def ratio(key: str, a: CaseResult | None, b: CaseResult | None, metric: str) -> None:
        if a and b and a.latency_ns.get(metric) and b.latency_ns.get(metric):
            ratios[key] = round(float(a.latency_ns[metric]) / float(b.latency_ns[metric]), 1)

    ratio("mp_queue_over_ring_processes_p50", mpq, ring_p, "p50")
    ratio("mp_queue_over_ring_processes_p99", mpq, ring_p, "p99")
    ratio("mp_queue_over_ring_threads_p50", mpq, ring_t, "p50")
    for r in results:
        if r.name.startswith("ring-threads [") and r.latency_ns.get("p50") and ring_t:
            ratios[f"{r.name}_over_ring_threads_p50"] = round(
                float(r.latency_ns["p50"]) / float(ring_t.latency_ns["p50"]), 1
            )
    floors = {}
    # floors are judged on the engine's topology (module threads); processes are reported
    best = ring_t or ring_p
    if best and best.latency_ns:
        floors["ring_p50_ns"] = _floor(best.latency_ns["p50"], FLOORS["ring_p50_ns"], "<=")
        floors["ring_p99_ns"] = _floor(best.latency_ns["p99"], FLOORS["ring_p99_ns"], "<=")
    if "mp_queue_over_ring_processes_p50" in ratios:
        floors["queue_over_ring_p50"] = _floor(
            ratios["mp_queue_over_ring_processes_p50"], FLOORS["queue_over_ring_p50"], ">="
        )
    if best and best.msgs_per_s:
        floors["ring_msgs_per_s"] = _floor(best.msgs_per_s, FLOORS["ring_msgs_per_s"], ">=")
    if best and best.batched_msgs_per_s:
        floors["ring_batched_msgs_per_s"] = _floor(
            best.batched_msgs_per_s, FLOORS["ring_batched_msgs_per_s"], ">="
        )
    return {
        "schema": 1,
        "command": "vajra bench ipc" + (" --quick" if args.quick else ""),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "pair": list(args.cpu_pair),
            "kernel": platform.release(),
        },
        "interpreter": {
            "version": interpreter_label(),
            "executable": sys.executable,
            "gil_enabled": gil_on(),
        },
        "message_bytes": MSG.size,
        "cases": [asdict(r) for r in results],
        "ratios": ratios,
        "floors": floors,
    }


def _floor(value: float, floor: float, op: str) -> dict[str, Any]:
    ok = value <= floor if op == "<=" else value >= floor
    return {"value": value, "floor": floor, "op": op, "ok": ok}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def render_table(summary: dict[str, Any]) -> str:
    lines = [
        f"vajra bench ipc — {summary['interpreter']['version']} on {summary['machine']['cpu']}, "
        f"{summary['machine']['cpus']} CPUs, sides pinned to CPUs {summary['machine']['pair']}, "
        f"{summary['message_bytes']}-byte messages",
        "",
        f"{'case':44} {'one-way p50':>11} {'p99':>9} {'p99.9':>9} {'max':>9} "
        f"{'rtt p50':>9} {'msg/s':>10} {'batched':>10}",
    ]

    def us(d: dict[str, Any], k: str) -> str:
        return f"{d[k] / 1000:.2f}" if k in d else "-"

    for c in summary["cases"]:
        if c["error"]:
            lines.append(f"{c['name']:44} n/a: {c['error']}")
            continue
        lat, rtt = c["latency_ns"], c["rtt_ns"]
        mps = f"{c['msgs_per_s'] / 1e6:.2f}M" if c["msgs_per_s"] else "-"
        bmps = f"{c['batched_msgs_per_s'] / 1e6:.2f}M" if c["batched_msgs_per_s"] else "-"
        lines.append(
            f"{c['name']:44} {us(lat, 'p50'):>11} {us(lat, 'p99'):>9} "
            f"{us(lat, 'p999'):>9} {us(lat, 'max'):>9} {us(rtt, 'p50'):>9} "
            f"{mps:>10} {bmps:>10}"
        )
    lines.append("(latencies in µs; one-way = receiver clock − sender stamp, ping-pong paced)")
    if summary["ratios"]:
        lines.append("")
        lines.append(
            "ratios (same run): " + ", ".join(f"{k} = {v}×" for k, v in summary["ratios"].items())
        )
    if summary["floors"]:
        lines.append(
            "floors: "
            + ", ".join(
                f"{k} {'ok' if v['ok'] else 'MISSED'} ({v['value']:.4g} {v['op']} {v['floor']:.4g})"
                for k, v in summary["floors"].items()
            )
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vajra bench ipc", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer messages (~1 min in all)")
    p.add_argument("--json", action="store_true", help="print one JSON object (see README)")
    p.add_argument("--allow-gil", action="store_true", help="comparison runs under a GIL")
    p.add_argument("--case", help="run a single case (internal; used for child interpreters)")
    p.add_argument("--cpus", help="the two CPUs to pin the sides to, e.g. 0,1")
    args = p.parse_args(argv)
    avail = sorted(os.sched_getaffinity(0))
    if args.cpus:
        args.cpu_pair = [int(c) for c in args.cpus.split(",")]
    else:
        args.cpu_pair = avail[:2] if len(avail) >= 2 else [avail[0], avail[0]]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.allow_gil:
        from vajra.runtime.gil import ensure_gil_disabled

        ensure_gil_disabled(who="vajra bench ipc")
    if args.case:
        summary = summarise(_safe(args.case, lambda: run_case(args.case, args)), args)
    else:
        summary = run_all(args)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(render_table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
