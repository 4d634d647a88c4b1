"""Pinning real threads and reading them back through /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vajra.runtime.coreplan import parse_cpulist
from vajra.runtime.pinning import (
    FeatureResult,
    PinningError,
    ThreadMonitor,
    ThreadStats,
    freeze_gc,
    parse_proc_stat,
    pin_current_process,
    pin_current_thread,
    read_thread_stats,
    set_current_thread_name,
    thread_cpu_time_ns,
    try_sched_fifo,
)

SRC = Path(__file__).resolve().parents[2] / "src"
AFFINITY = sorted(os.sched_getaffinity(0))
need_two_cpus = pytest.mark.skipif(
    len(AFFINITY) < 2, reason=f"needs 2 CPUs in the affinity mask, have {AFFINITY}"
)
# Upper bound on how long a test waits for a worker to get somewhere; a bound, not a timing
# assertion: hitting it means the worker is stuck, and the test fails with a clear message.
PATIENCE_S = 30.0


class Worker:
    """A thread that runs setup steps on request, then spins or sleeps until stopped.

    Every action runs on the worker itself (pinning and naming apply to the calling thread),
    and its outcome comes back through ``call``.
    """

    def __init__(self, spin: bool) -> None:
        self.spin = spin
        self.spins = 0
        self.tid = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._requests: list[tuple[Callable[[], object], list[object], threading.Event]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(PATIENCE_S), "worker did not start"

    def _run(self) -> None:
        self.tid = threading.get_native_id()
        self._ready.set()
        while not self._stop.is_set():
            with self._lock:
                pending, self._requests = self._requests, []
            for fn, out, done in pending:
                try:
                    out.append(fn())
                except BaseException as exc:
                    out.append(exc)
                done.set()
            if self.spin:
                self.spins += 1
            else:
                self._stop.wait(0.001)

    def call(self, fn: Callable[[], object]) -> object:
        out: list[object] = []
        done = threading.Event()
        with self._lock:
            self._requests.append((fn, out, done))
        assert done.wait(PATIENCE_S), "worker did not answer"
        if isinstance(out[0], BaseException):
            raise out[0]
        return out[0]

    def spin_for(self, iterations: int) -> None:
        """Return once the worker has spun ``iterations`` more times (so it really ran)."""
        target = self.spins + iterations
        deadline = time.monotonic() + PATIENCE_S
        while self.spins < target:
            assert time.monotonic() < deadline, "worker stopped spinning"
            time.sleep(0.001)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(PATIENCE_S)


@pytest.fixture
def workers() -> Iterator[Callable[[bool], Worker]]:
    made: list[Worker] = []

    def make(spin: bool) -> Worker:
        w = Worker(spin)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


def allowed_list(tid: int) -> list[int]:
    for line in Path(f"/proc/self/task/{tid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return parse_cpulist(line.split(":", 1)[1])
    raise AssertionError("no Cpus_allowed_list")


# --------------------------------------------------------------------------------------------
# pinning


@need_two_cpus
def test_two_threads_pinned_to_two_cpus(workers: Callable[[bool], Worker]) -> None:
    a, b = AFFINITY[0], AFFINITY[1]
    wa, wb = workers(True), workers(True)
    assert wa.call(lambda: pin_current_thread(a)) == wa.tid
    assert wb.call(lambda: pin_current_thread(b)) == wb.tid
    for w, cpu in ((wa, a), (wb, b)):
        w.spin_for(10_000)
        assert allowed_list(w.tid) == [cpu]
        stats = read_thread_stats(w.tid)
        assert stats.cpus_allowed == (cpu,)
        assert stats.last_cpu == cpu
        assert os.sched_getaffinity(w.tid) == {cpu}
        # The thread sees the same from inside.
        assert w.call(lambda: read_thread_stats(threading.get_native_id()).last_cpu) == cpu


@need_two_cpus
def test_pinning_one_thread_changes_no_other(workers: Callable[[bool], Worker]) -> None:
    main_tid = threading.get_native_id()
    process_before = Path("/proc/self/status").read_text()
    main_before = allowed_list(main_tid)
    bystander = workers(False)
    bystander_before = allowed_list(bystander.tid)
    assert len(bystander_before) >= 2

    pinned = workers(True)
    pinned.call(lambda: pin_current_thread(AFFINITY[1]))

    assert allowed_list(pinned.tid) == [AFFINITY[1]]
    assert allowed_list(main_tid) == main_before
    assert allowed_list(bystander.tid) == bystander_before
    assert sorted(os.sched_getaffinity(0)) == AFFINITY
    status_line = [ln for ln in process_before.splitlines() if ln.startswith("Cpus_allowed_list")]
    now = Path("/proc/self/status").read_text()
    assert status_line[0] in now.splitlines()


@pytest.mark.parametrize("cpu", [-1, 1 << 20, 4096])
def test_pinning_to_an_invalid_cpu_raises(workers: Callable[[bool], Worker], cpu: int) -> None:
    w = workers(False)
    before = allowed_list(w.tid)
    with pytest.raises(PinningError, match="cpu"):
        w.call(lambda: pin_current_thread(cpu))
    assert allowed_list(w.tid) == before


def test_pinning_rejects_non_integers(workers: Callable[[bool], Worker]) -> None:
    w = workers(False)
    with pytest.raises(PinningError):
        w.call(lambda: pin_current_thread(True))
    with pytest.raises(PinningError):
        w.call(lambda: pin_current_thread("1"))  # type: ignore[arg-type]


def test_pin_current_process_rejects_bad_sets() -> None:
    # Rejected before any affinity call, so running it in this process changes nothing.
    before = os.sched_getaffinity(0)
    for bad in ([], [-1], [True], ["0"]):
        with pytest.raises(PinningError):
            pin_current_process(bad)  # type: ignore[arg-type]
    assert os.sched_getaffinity(0) == before


def run_python(script: str, timeout: float = 120) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@need_two_cpus
def test_pin_current_process_pins_every_thread() -> None:
    out = run_python(
        f"""
        import json, os, threading
        from vajra.runtime.pinning import pin_current_process
        stop = threading.Event()
        threads = [threading.Thread(target=stop.wait) for _ in range(3)]
        for t in threads:
            t.start()
        pinned = pin_current_process([{AFFINITY[1]}])
        later = threading.Thread(target=stop.wait)
        later.start()
        def allowed(tid):
            for line in open(f"/proc/self/task/{{tid}}/status"):
                if line.startswith("Cpus_allowed_list"):
                    return line.split(":")[1].strip()
        tasks = sorted(int(t) for t in os.listdir("/proc/self/task"))
        result = {{
            "pinned": list(pinned),
            "tasks": tasks,
            "allowed": {{str(t): allowed(t) for t in tasks}},
            "later": later.native_id,
        }}
        stop.set()
        print(json.dumps(result))
        """
    )
    tasks = out["tasks"]
    assert isinstance(tasks, list) and len(tasks) == 5
    assert out["later"] in tasks
    assert isinstance(out["pinned"], list) and set(out["pinned"]) == set(tasks) - {out["later"]}
    assert out["allowed"] == {str(t): str(AFFINITY[1]) for t in tasks}


# --------------------------------------------------------------------------------------------
# reading /proc


def stat_line(tid: int, comm: str, utime: int, stime: int, cpu: int) -> str:
    fields = ["S"] + ["0"] * 49
    fields[14 - 3], fields[15 - 3], fields[39 - 3] = str(utime), str(stime), str(cpu)
    return f"{tid} ({comm}) " + " ".join(fields) + "\n"


@given(
    st.text(max_size=40).filter(lambda s: "\x00" not in s),
    st.integers(1, 2**22),
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    st.integers(0, 4095),
)
def test_parse_proc_stat_survives_any_comm(
    comm: str, tid: int, utime: int, stime: int, cpu: int
) -> None:
    parsed = parse_proc_stat(stat_line(tid, comm, utime, stime, cpu))
    assert (parsed.tid, parsed.comm, parsed.state) == (tid, comm, "S")
    assert (parsed.utime_ticks, parsed.stime_ticks, parsed.processor) == (utime, stime, cpu)


def test_parse_proc_stat_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_proc_stat("12 no parens here")
    with pytest.raises(ValueError):
        parse_proc_stat("12 (short) R 1 2 3")


@pytest.mark.parametrize("name", ["a) (b", "x) R 1 2 (y", "))((", "with space"])
def test_real_thread_with_hostile_name(workers: Callable[[bool], Worker], name: str) -> None:
    w = workers(True)
    w.call(lambda: set_current_thread_name(name))
    w.spin_for(1000)
    stats = read_thread_stats(w.tid)
    assert stats.name == name
    assert stats.tid == w.tid and stats.pid == os.getpid()
    assert stats.last_cpu in AFFINITY
    assert list(stats.cpus_allowed) == allowed_list(w.tid)
    assert stats.state in "RSD"
    assert stats.voluntary_ctxt_switches >= 0 and stats.nonvoluntary_ctxt_switches >= 0
    if Path(f"/proc/self/task/{w.tid}/sched").exists():
        assert stats.nr_migrations is not None


def test_thread_name_is_cut_to_the_kernel_limit(workers: Callable[[bool], Worker]) -> None:
    w = workers(False)
    w.call(lambda: set_current_thread_name("vajra-execution-engine"))
    assert read_thread_stats(w.tid).name == "vajra-execution"
    w.call(lambda: set_current_thread_name("ŝŝŝŝŝŝŝŝ"))  # 16 bytes: must not split a character
    assert read_thread_stats(w.tid).name == "ŝŝŝŝŝŝŝ"


def test_cpu_time_grows_while_spinning(workers: Callable[[bool], Worker]) -> None:
    w = workers(True)
    first = read_thread_stats(w.tid)
    own_first = w.call(thread_cpu_time_ns)
    deadline = time.monotonic() + PATIENCE_S
    while (now := read_thread_stats(w.tid)).cpu_ns <= first.cpu_ns:
        assert time.monotonic() < deadline, "cpu time of a spinning thread never grew"
        w.spin_for(100_000)
    assert now.cpu_ns > first.cpu_ns
    own_now = w.call(thread_cpu_time_ns)
    assert isinstance(own_first, int) and isinstance(own_now, int) and own_now > own_first
    assert now.utime_ns + now.stime_ns >= first.utime_ns + first.stime_ns


def test_read_stats_of_a_missing_thread_raises() -> None:
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    assert t.native_id is not None
    with pytest.raises((FileNotFoundError, ProcessLookupError)):
        read_thread_stats(t.native_id)


# --------------------------------------------------------------------------------------------
# ThreadMonitor


def test_monitor_tells_a_spinner_from_a_sleeper(workers: Callable[[bool], Worker]) -> None:
    spinner, sleeper = workers(True), workers(False)
    monitor = ThreadMonitor([spinner.tid, sleeper.tid])
    assert monitor.tids == tuple(sorted([spinner.tid, sleeper.tid]))
    spinner.spin_for(200_000)
    deadline = time.monotonic() + PATIENCE_S
    sample = monitor.sample()
    while sample.threads[spinner.tid].cpu_ns_delta == 0:
        assert time.monotonic() < deadline
        spinner.spin_for(100_000)
        sample = monitor.sample()
    busy, idle = sample.threads[spinner.tid], sample.threads[sleeper.tid]
    assert busy.cpu_percent > 0 and busy.interval_ns > 0
    assert busy.cpu_ns_delta > idle.cpu_ns_delta
    assert sample.gone == frozenset()

    sleeper.stop()
    after = monitor.sample()
    assert after.gone == {sleeper.tid} and sleeper.tid not in after.threads
    assert spinner.tid in after.threads
    assert monitor.sample().gone == frozenset()  # reported once


@need_two_cpus
def test_monitor_sees_a_migration(workers: Callable[[bool], Worker]) -> None:
    a, b = AFFINITY[0], AFFINITY[1]
    w = workers(True)
    w.call(lambda: pin_current_thread(a))
    w.spin_for(1000)
    monitor = ThreadMonitor([w.tid])
    quiet = monitor.sample().threads[w.tid]
    assert not quiet.last_cpu_changed and quiet.last_cpu == a
    w.call(lambda: pin_current_thread(b))
    w.spin_for(1000)
    moved = monitor.sample().threads[w.tid]
    assert moved.last_cpu == b and moved.last_cpu_changed
    assert moved.migrations >= 1
    assert moved.cpus_allowed == (b,)


def fake_stats(tid: int, cpu_ns: int, at_ns: int, last_cpu: int, migr: int | None) -> ThreadStats:
    return ThreadStats(
        pid=1,
        tid=tid,
        name="fake",
        state="R",
        utime_ns=0,
        stime_ns=0,
        cpu_ns=cpu_ns,
        cpu_ns_exact=True,
        last_cpu=last_cpu,
        cpus_allowed=(0, 1),
        voluntary_ctxt_switches=3,
        nonvoluntary_ctxt_switches=5,
        nr_migrations=migr,
        sampled_ns=at_ns,
    )


def test_monitor_arithmetic_with_a_fake_reader() -> None:
    readings = {
        7: iter(
            [
                fake_stats(7, 1_000_000, 0, 0, 4),
                fake_stats(7, 6_000_000, 10_000_000, 1, 6),  # 5 ms of 10 ms, moved twice
            ]
        ),
        8: iter(
            [
                fake_stats(8, 0, 0, 1, None),
                replace(fake_stats(8, 0, 20_000_000, 0, None), nonvoluntary_ctxt_switches=9),
            ]
        ),
    }
    monitor = ThreadMonitor([7, 8], reader=lambda tid, pid: next(readings[tid]))
    sample = monitor.sample()
    u7, u8 = sample.threads[7], sample.threads[8]
    assert u7.cpu_percent == pytest.approx(50.0)
    assert (u7.cpu_ns_delta, u7.interval_ns, u7.nr_migrations_delta, u7.migrations) == (
        5_000_000,
        10_000_000,
        2,
        2,
    )
    assert u8.cpu_percent == 0.0 and u8.nr_migrations_delta is None
    assert u8.last_cpu_changed and u8.migrations == 1
    assert u8.nonvoluntary_switches_delta == 4


def test_monitor_run_loop_stops() -> None:
    stop = threading.Event()
    seen: list[int] = []
    monitor = ThreadMonitor([threading.get_native_id()])

    def on_sample(sample: object) -> None:
        seen.append(1)
        if len(seen) == 3:
            stop.set()

    monitor.run(0.001, on_sample, stop)
    assert len(seen) == 3
    with pytest.raises(ValueError):
        monitor.run(0, on_sample, stop)


# --------------------------------------------------------------------------------------------
# optional features


def capability(bit: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


CAP_SETGID, CAP_SETUID, CAP_IPC_LOCK, CAP_SYS_NICE = 6, 7, 14, 23


def test_sched_fifo_on_a_throwaway_thread(workers: Callable[[bool], Worker]) -> None:
    w = workers(False)
    bad = w.call(lambda: try_sched_fifo(10_000))
    assert isinstance(bad, FeatureResult) and not bad.ok and "outside" in bad.detail
    result = w.call(lambda: try_sched_fifo(1))
    assert isinstance(result, FeatureResult) and result.feature == "sched_fifo"
    policy = os.sched_getscheduler(w.tid)
    if capability(CAP_SYS_NICE):
        assert result.ok, result.detail
    if result.ok:
        assert policy == os.SCHED_FIFO
        assert os.sched_getscheduler(threading.get_native_id()) != os.SCHED_FIFO
        w.call(lambda: os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0)))
    else:
        assert policy != os.SCHED_FIFO
        assert "RLIMIT_RTPRIO" in result.detail


DROP_PRIVILEGES = """
    import json, os, resource
    from vajra.runtime.pinning import try_lock_memory, try_sched_fifo
    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (65536, 65536))
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    fifo, lock = try_sched_fifo(1), try_lock_memory()
    print(json.dumps({"fifo": [fifo.ok, fifo.detail], "lock": [lock.ok, lock.detail]}))
"""


def test_optional_features_report_eperm_instead_of_raising() -> None:
    if not (capability(CAP_SETUID) and capability(CAP_SETGID)):
        pytest.skip("needs CAP_SETUID and CAP_SETGID to drop to an unprivileged user")
    out = run_python(DROP_PRIVILEGES)
    fifo, lock = out["fifo"], out["lock"]
    assert isinstance(fifo, list) and isinstance(lock, list)
    assert fifo[0] is False and "RLIMIT_RTPRIO" in fifo[1]
    assert lock[0] is False and "RLIMIT_MEMLOCK" in lock[1]


def test_lock_memory_in_a_subprocess() -> None:
    out = run_python(
        """
        import json
        from vajra.runtime.pinning import try_lock_memory
        r = try_lock_memory()
        locked = None
        for line in open("/proc/self/status"):
            if line.startswith("VmLck:"):
                locked = int(line.split()[1])
        print(json.dumps({"ok": r.ok, "detail": r.detail, "vmlck_kb": locked}))
        """
    )
    vmlck = out["vmlck_kb"]
    assert isinstance(vmlck, int)
    if capability(CAP_IPC_LOCK):
        assert out["ok"] is True, out["detail"]
    if out["ok"]:
        assert vmlck > 0
    else:
        assert vmlck == 0 and "mlockall" in str(out["detail"])


def test_freeze_gc_freezes_and_reports() -> None:
    import gc

    try:
        result = freeze_gc()
        assert result.ok and result.feature == "freeze_gc"
        assert gc.get_freeze_count() > 0
        assert str(gc.get_freeze_count()) in result.detail
    finally:
        gc.unfreeze()
