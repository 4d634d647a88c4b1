"""Pin engine threads to CPUs and watch, from /proc, whether they stay there.

On Linux, CPU affinity belongs to a thread, not to a process: ``sched_setaffinity(0, ...)``
changes only the calling thread (and the threads it creates afterwards). Vajra runs one module
per thread inside one free-threaded process, so each module thread pins itself by its native
thread id, and the pinning is verified against what the kernel reports rather than trusted.
The observers here read only /proc, so Sentinel and the dashboard can watch CPU use and
migrations of the hot threads without touching them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import resource
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal

from vajra.runtime.coreplan import format_cpulist, parse_cpulist

__all__ = [
    "FeatureResult",
    "MonitorSample",
    "PinningError",
    "ProcStat",
    "ThreadMonitor",
    "ThreadStats",
    "ThreadUsage",
    "freeze_gc",
    "parse_proc_stat",
    "pin_current_process",
    "pin_current_thread",
    "read_thread_stats",
    "set_current_thread_name",
    "thread_cpu_time_ns",
    "try_lock_memory",
    "try_sched_fifo",
]

_CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
_NS_PER_TICK: Final = 1_000_000_000 // _CLK_TCK
_PROC: Final = Path("/proc")
# Kernel limit for a task's comm, terminating NUL included.
_TASK_COMM_LEN: Final = 16


class PinningError(RuntimeError):
    """The kernel refused a pin, or reports an affinity other than the one requested."""


# --------------------------------------------------------------------------------------------
# pinning


def pin_current_thread(cpu: int) -> int:
    """Pin the calling thread, and only it, to ``cpu``; return its native thread id.

    The result is read back from /proc/self/task/<tid>/status because a cgroup cpuset or a
    concurrent ``taskset`` can leave a thread somewhere other than where it was asked to go,
    and a silently unpinned hot thread is exactly the failure this module exists to catch.
    """
    if isinstance(cpu, bool) or not isinstance(cpu, int) or cpu < 0:
        raise PinningError(f"cpu must be a non-negative integer, got {cpu!r}")
    tid = threading.get_native_id()
    _set_affinity(tid, {cpu})
    allowed = _allowed_list(os.getpid(), tid)
    if allowed != [cpu]:
        raise PinningError(
            f"thread {tid} asked for cpu {cpu} but the kernel reports "
            f"Cpus_allowed_list {format_cpulist(allowed) or '(empty)'}"
        )
    return tid


def pin_current_process(cpus: Iterable[int]) -> tuple[int, ...]:
    """Restrict every thread of this process to ``cpus``; return the tids that were pinned.

    For the process-per-module topology. ``sched_setaffinity(0, ...)`` alone would move only
    the calling thread, leaving threads that already exist (interpreter helpers, the
    resource tracker's reader, a logging thread) free to run on the hot cores, so every
    entry of /proc/self/task is set and verified. Threads started afterwards inherit the
    mask from their creator. Threads that exit during the walk are skipped.
    """
    given = list(cpus)
    if not given or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in given):
        raise PinningError(f"cpus must be a non-empty set of non-negative integers: {given}")
    wanted = sorted(set(given))
    pid = os.getpid()
    me = threading.get_native_id()
    _set_affinity(me, set(wanted))
    pinned: list[int] = []
    for tid in _task_ids(pid):
        try:
            if tid != me:
                _set_affinity(tid, set(wanted))
            allowed = _allowed_list(pid, tid)
        except (ProcessLookupError, FileNotFoundError):
            continue
        if allowed != wanted:
            raise PinningError(
                f"thread {tid} asked for cpus {format_cpulist(wanted)} but the kernel "
                f"reports Cpus_allowed_list {format_cpulist(allowed) or '(empty)'}"
            )
        pinned.append(tid)
    return tuple(sorted(pinned))


def _set_affinity(tid: int, cpus: set[int]) -> None:
    try:
        os.sched_setaffinity(tid, cpus)
    except ProcessLookupError:
        raise
    except (OSError, ValueError, OverflowError) as exc:
        allowed = format_cpulist(os.sched_getaffinity(0))
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PinningError(
            f"cannot pin thread {tid} to cpus {format_cpulist(cpus)}: {reason} "
            f"(this process may use cpus {allowed})"
        ) from exc


def _task_ids(pid: int) -> list[int]:
    return sorted(int(p.name) for p in (_PROC / str(pid) / "task").iterdir() if p.name.isdigit())


def _allowed_list(pid: int, tid: int) -> list[int]:
    status = _parse_status((_PROC / str(pid) / "task" / str(tid) / "status").read_text())
    return parse_cpulist(status.get("Cpus_allowed_list", ""))


def set_current_thread_name(name: str) -> None:
    """Name the calling thread for the kernel, so top, perf and /proc show the module.

    Python 3.13 does not pass ``Thread.name`` to the OS. Writing /proc/self/task/<tid>/comm
    needs no ctypes; the kernel keeps at most 15 bytes, so the name is cut to that here
    (at a character boundary) rather than by the kernel mid-character.
    """
    encoded = name.encode()
    while len(encoded) > _TASK_COMM_LEN - 1:
        name = name[:-1]
        encoded = name.encode()
    tid = threading.get_native_id()
    (_PROC / "self" / "task" / str(tid) / "comm").write_bytes(encoded)


# --------------------------------------------------------------------------------------------
# observing


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/task/<tid>/stat that Vajra uses."""

    tid: int
    comm: str
    state: str
    utime_ticks: int
    stime_ticks: int
    processor: int


def parse_proc_stat(text: str) -> ProcStat:
    """Parse a /proc stat line whose comm field may contain spaces and parentheses.

    The comm is user-controlled (any thread can rename itself to "a) (b"), so the line is
    split at the first "(" and the LAST ")": no field after comm can contain ")".
    """
    open_paren = text.find("(")
    close_paren = text.rfind(")")
    if open_paren < 0 or close_paren < open_paren:
        raise ValueError(f"not a /proc stat line: {text[:80]!r}")
    fields = text[close_paren + 1 :].split()
    # fields[0] is field 3 (state) of proc(5); field n is fields[n - 3].
    if len(fields) < 37:
        raise ValueError(f"/proc stat line has {len(fields) + 2} fields, expected >= 39")
    return ProcStat(
        tid=int(text[:open_paren]),
        comm=text[open_paren + 1 : close_paren],
        state=fields[0],
        utime_ticks=int(fields[11]),
        stime_ticks=int(fields[12]),
        processor=int(fields[36]),
    )


def _parse_status(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def _parse_sched(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class ThreadStats:
    """One reading of a thread's scheduling state.

    ``cpu_ns`` is the kernel's nanosecond run-time account (/proc schedstat) when the kernel
    keeps it, else utime+stime at clock-tick resolution (``cpu_ns_exact`` says which);
    utilisation over a short interval is meaningless at tick resolution, so consumers must
    know. ``sampled_ns`` is CLOCK_MONOTONIC at the time of the read, the wall-clock side of
    that ratio. ``nr_migrations`` is None when the kernel does not expose /proc sched.
    """

    pid: int
    tid: int
    name: str
    state: str
    utime_ns: int
    stime_ns: int
    cpu_ns: int
    cpu_ns_exact: bool
    last_cpu: int
    cpus_allowed: tuple[int, ...]
    voluntary_ctxt_switches: int
    nonvoluntary_ctxt_switches: int
    nr_migrations: int | None
    sampled_ns: int


def read_thread_stats(tid: int, pid: int | None = None) -> ThreadStats:
    """Read one thread's stats from /proc/<pid>/task/<tid>/{stat,status,schedstat,sched}.

    Raises FileNotFoundError or ProcessLookupError when the thread has exited; the optional
    files (schedstat, sched) degrade to less precise fields instead of failing.
    """
    pid = os.getpid() if pid is None else pid
    base = _PROC / str(pid) / "task" / str(tid)
    sampled_ns = time.monotonic_ns()
    stat = parse_proc_stat((base / "stat").read_bytes().decode("utf-8", "replace"))
    status = _parse_status((base / "status").read_bytes().decode("utf-8", "replace"))
    utime_ns = stat.utime_ticks * _NS_PER_TICK
    stime_ns = stat.stime_ticks * _NS_PER_TICK
    cpu_ns, exact = utime_ns + stime_ns, False
    with contextlib.suppress(OSError, ValueError, IndexError):
        cpu_ns, exact = int((base / "schedstat").read_text().split()[0]), True
    nr_migrations: int | None = None
    try:
        sched = _parse_sched((base / "sched").read_text())
        if "se.nr_migrations" in sched:
            nr_migrations = int(sched["se.nr_migrations"])
    except (OSError, ValueError):
        pass
    return ThreadStats(
        pid=pid,
        tid=stat.tid,
        name=stat.comm,
        state=stat.state,
        utime_ns=utime_ns,
        stime_ns=stime_ns,
        cpu_ns=cpu_ns,
        cpu_ns_exact=exact,
        last_cpu=stat.processor,
        cpus_allowed=tuple(parse_cpulist(status.get("Cpus_allowed_list", ""))),
        voluntary_ctxt_switches=int(status.get("voluntary_ctxt_switches", "0")),
        nonvoluntary_ctxt_switches=int(status.get("nonvoluntary_ctxt_switches", "0")),
        nr_migrations=nr_migrations,
        sampled_ns=sampled_ns,
    )


def thread_cpu_time_ns() -> int:
    """Exact CPU time of the calling thread, without a /proc read.

    Only the calling thread: asking for another thread's clock through its pthread id is
    undefined behaviour once that thread has exited, so other threads go through /proc.
    """
    return time.clock_gettime_ns(time.pthread_getcpuclockid(threading.get_ident()))


@dataclass(frozen=True)
class ThreadUsage:
    """What one thread did between two samples.

    ``migrations`` is the kernel's count of CPU moves in the interval when it is known
    (it also sees moves that came back before the sample), else 1 if the last CPU changed.
    """

    tid: int
    name: str
    cpu_percent: float
    cpu_ns_delta: int
    interval_ns: int
    last_cpu: int
    last_cpu_changed: bool
    nr_migrations_delta: int | None
    voluntary_switches_delta: int
    nonvoluntary_switches_delta: int
    cpus_allowed: tuple[int, ...]

    @property
    def migrations(self) -> int:
        if self.nr_migrations_delta is not None:
            return self.nr_migrations_delta
        return int(self.last_cpu_changed)


@dataclass(frozen=True)
class MonitorSample:
    """One round of a ThreadMonitor: usage per live thread, and threads that disappeared."""

    threads: Mapping[int, ThreadUsage]
    gone: frozenset[int]


StatsReader = Callable[[int, int | None], ThreadStats]


class ThreadMonitor:
    """Samples a set of threads and turns consecutive readings into utilisation and moves.

    The first reading is taken at construction, so the first ``sample()`` already covers a
    real interval. A lock makes it safe to share between Sentinel and the dashboard feeder
    in the free-threaded build, where two callers really do run at once.
    """

    def __init__(
        self,
        tids: Iterable[int],
        pid: int | None = None,
        reader: StatsReader = read_thread_stats,
    ) -> None:
        self._pid = pid
        self._reader = reader
        self._lock = threading.Lock()
        self._last: dict[int, ThreadStats] = {}
        for tid in tids:
            self.add(tid)

    @property
    def tids(self) -> tuple[int, ...]:
        with self._lock:
            return tuple(sorted(self._last))

    def add(self, tid: int) -> None:
        """Start watching ``tid``; raises if it does not exist, since that is a setup bug."""
        stats = self._reader(tid, self._pid)
        with self._lock:
            self._last[tid] = stats

    def remove(self, tid: int) -> None:
        with self._lock:
            self._last.pop(tid, None)

    def sample(self) -> MonitorSample:
        """Read every watched thread and report the change since the previous sample.

        A thread that can no longer be read is reported once in ``gone`` and dropped: a
        pinned module thread dying is news for Sentinel, not an exception in its loop.
        """
        with self._lock:
            usage: dict[int, ThreadUsage] = {}
            gone: set[int] = set()
            for tid, before in list(self._last.items()):
                try:
                    after = self._reader(tid, self._pid)
                except (FileNotFoundError, ProcessLookupError):
                    gone.add(tid)
                    del self._last[tid]
                    continue
                usage[tid] = _usage(before, after)
                self._last[tid] = after
            return MonitorSample(threads=MappingProxyType(usage), gone=frozenset(gone))

    def run(
        self,
        interval_s: float,
        on_sample: Callable[[MonitorSample], None],
        stop: threading.Event,
    ) -> None:
        """Sample every ``interval_s`` until ``stop`` is set; for a dedicated cold thread."""
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        while not stop.wait(interval_s):
            on_sample(self.sample())


def _usage(before: ThreadStats, after: ThreadStats) -> ThreadUsage:
    interval = after.sampled_ns - before.sampled_ns
    cpu_delta = max(0, after.cpu_ns - before.cpu_ns)
    migrations: int | None = None
    if after.nr_migrations is not None and before.nr_migrations is not None:
        migrations = max(0, after.nr_migrations - before.nr_migrations)
    return ThreadUsage(
        tid=after.tid,
        name=after.name,
        cpu_percent=100.0 * cpu_delta / interval if interval > 0 else 0.0,
        cpu_ns_delta=cpu_delta,
        interval_ns=interval,
        last_cpu=after.last_cpu,
        last_cpu_changed=after.last_cpu != before.last_cpu,
        nr_migrations_delta=migrations,
        voluntary_switches_delta=after.voluntary_ctxt_switches - before.voluntary_ctxt_switches,
        nonvoluntary_switches_delta=(
            after.nonvoluntary_ctxt_switches - before.nonvoluntary_ctxt_switches
        ),
        cpus_allowed=after.cpus_allowed,
    )


# --------------------------------------------------------------------------------------------
# optional hardening (all off by default; each reports instead of raising)


@dataclass(frozen=True)
class FeatureResult:
    """Outcome of an optional tuning step: these are nice-to-haves, so failure is data."""

    feature: Literal["sched_fifo", "freeze_gc", "lock_memory"]
    ok: bool
    detail: str


def try_sched_fifo(priority: int = 1) -> FeatureResult:
    """Move the calling thread to SCHED_FIFO at ``priority``.

    A FIFO thread is not preempted by normal tasks, which removes the scheduler-tick jitter
    from a busy-spinning hot module; the kernel's RT throttling (sched_rt_runtime_us) still
    leaves other tasks 5% of that CPU, which is all that keeps a spinning FIFO thread from
    freezing a shared CPU. Needs CAP_SYS_NICE or RLIMIT_RTPRIO >= priority.
    """
    lo = os.sched_get_priority_min(os.SCHED_FIFO)
    hi = os.sched_get_priority_max(os.SCHED_FIFO)
    if not lo <= priority <= hi:
        return FeatureResult("sched_fifo", False, f"priority {priority} outside {lo}..{hi}")
    tid = threading.get_native_id()
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        soft, hard = resource.getrlimit(resource.RLIMIT_RTPRIO)
        return FeatureResult(
            "sched_fifo",
            False,
            f"{exc.strerror or exc}: needs CAP_SYS_NICE or RLIMIT_RTPRIO >= {priority} "
            f"(soft {_limit(soft)}, hard {_limit(hard)}; docker: --cap-add SYS_NICE "
            f"or --ulimit rtprio={priority})",
        )
    return FeatureResult("sched_fifo", True, f"thread {tid} runs SCHED_FIFO priority {priority}")


def freeze_gc() -> FeatureResult:
    """Collect once, then move every live object out of the collector's reach.

    Objects built at start-up (config, instruments, rings) never die; freezing them means a
    later collection does not walk them, which shortens the pauses a hot loop can suffer.
    """
    collected = gc.collect()
    gc.freeze()
    return FeatureResult(
        "freeze_gc",
        True,
        f"collected {collected} objects, froze {gc.get_freeze_count()}",
    )


_MCL_CURRENT: Final = 1
_MCL_FUTURE: Final = 2


def try_lock_memory() -> FeatureResult:
    """Lock current and future pages of the process in RAM (mlockall).

    A page fault on a ring or an order book page costs microseconds, a swap-in costs
    milliseconds; locking avoids both. Calls libc through ctypes (stdlib, safe with the GIL
    off). Needs CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK; every failure is reported.
    """
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        mlockall = libc.mlockall
    except (OSError, AttributeError) as exc:
        return FeatureResult("lock_memory", False, f"mlockall unavailable in {name}: {exc}")
    mlockall.argtypes = [ctypes.c_int]
    mlockall.restype = ctypes.c_int
    if mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
        err = ctypes.get_errno()
        soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        return FeatureResult(
            "lock_memory",
            False,
            f"mlockall: {os.strerror(err)}: needs CAP_IPC_LOCK or RLIMIT_MEMLOCK above the "
            f"process size (soft {_limit(soft)}, hard {_limit(hard)}; "
            "docker: --ulimit memlock=-1)",
        )
    return FeatureResult("lock_memory", True, "current and future pages locked (mlockall)")


def _limit(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)
