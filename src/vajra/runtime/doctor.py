"""``vajra doctor``: what this machine and interpreter will do to the engine's latency.

Every latency figure Vajra reports is only as good as the ground it ran on: a GIL build, a
GIL silently re-enabled by an extension, a 64 MB Docker /dev/shm, a slow clocksource or
hot threads sharing cores each change the numbers by orders of magnitude. The doctor
measures each of those conditions, says which ones matter, and prints the fix next to the
problem, so that a report can be judged by the environment it came from.

All reads go through a ``Probe`` whose methods tests override, instead of patching globals.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from vajra.runtime import gil
from vajra.runtime.coreplan import (
    HOT_PRIORITY,
    CorePlan,
    Machine,
    WaitKind,
    format_cpulist,
    plan_auto,
)
from vajra.runtime.pinning import FeatureResult, try_sched_fifo

__all__ = [
    "SHM_MIN_FREE_BYTES",
    "Check",
    "ClockInfo",
    "Probe",
    "Status",
    "render_text",
    "run_checks",
    "to_json",
    "worst_status",
]

Status = Literal["ok", "warn", "fail", "info"]

# Rings and the market-data segments of a few instruments fit in far less, but a replay with
# deep books and the journal staging area does not; below this Docker's default bites.
SHM_MIN_FREE_BYTES: Final = 256 * 1024 * 1024
_MIB: Final = 1024 * 1024
_CLOCK_LOOPS: Final = 200_000
_CAP_IPC_LOCK: Final = 14
_CAP_SYS_NICE: Final = 23
_SEVERITY: Final[dict[str, int]] = {"info": 0, "ok": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class Check:
    """One diagnosis: ``value`` for people, ``data`` for machines, ``fix`` when it matters."""

    name: str
    value: str
    status: Status
    fix: str | None = None
    data: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ClockInfo:
    """``time.get_clock_info("perf_counter")`` plus what a tight loop actually observes."""

    implementation: str
    resolution_s: float
    min_nonzero_delta_ns: int | None
    median_delta_ns: float
    samples: int


class Probe:
    """Every environment read the doctor makes, one overridable method each."""

    def python_version(self) -> tuple[int, int, int]:
        return sys.version_info.major, sys.version_info.minor, sys.version_info.micro

    def implementation(self) -> str:
        return sys.implementation.name

    def executable(self) -> str:
        return sys.executable

    def gil_disabled_build(self) -> bool:
        return bool(sysconfig.get_config_var("Py_GIL_DISABLED") == 1)

    def gil_enabled(self) -> bool:
        return sys._is_gil_enabled()

    def environ(self, name: str) -> str | None:
        return os.environ.get(name)

    def xoption(self, name: str) -> str | bool | None:
        return sys._xoptions.get(name)

    def gil_culprits(self) -> list[str]:
        return gil.culprits()

    def arch(self) -> str:
        return platform.machine()

    def read_text(self, path: str) -> str | None:
        try:
            return Path(path).read_text()
        except OSError:
            return None

    def cpu_count(self) -> int | None:
        return os.cpu_count()

    def affinity(self) -> frozenset[int]:
        return frozenset(os.sched_getaffinity(0))

    def machine(self) -> Machine:
        return Machine.detect()

    def clock(self) -> ClockInfo:
        info = time.get_clock_info("perf_counter")
        clock = time.perf_counter_ns
        deltas: list[int] = []
        prev = clock()
        for _ in range(_CLOCK_LOOPS):
            now = clock()
            deltas.append(now - prev)
            prev = now
        nonzero = [d for d in deltas if d > 0]
        return ClockInfo(
            implementation=info.implementation,
            resolution_s=info.resolution,
            min_nonzero_delta_ns=min(nonzero) if nonzero else None,
            median_delta_ns=statistics.median(deltas),
            samples=len(deltas),
        )

    def statvfs(self, path: str) -> os.statvfs_result | None:
        try:
            return os.statvfs(path)
        except OSError:
            return None

    def rlimit(self, which: int) -> tuple[int, int]:
        return resource.getrlimit(which)

    def sched_fifo_trial(self) -> FeatureResult:
        """Try SCHED_FIFO on a throwaway thread, so the doctor's own thread is never changed."""
        results: list[FeatureResult] = []

        def trial() -> None:
            result = try_sched_fifo(1)
            if result.ok:
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            results.append(result)

        thread = threading.Thread(target=trial, name="vajra-doctor-rt")
        thread.start()
        thread.join()
        return results[0]


def run_checks(probe: Probe | None = None) -> list[Check]:
    """Run every check; one that raises becomes a warning instead of hiding the others."""
    p = probe or Probe()
    machine: Machine | None = None
    plan: CorePlan | None = None
    try:
        machine = p.machine()
        plan = plan_auto(machine)
    except (OSError, ValueError) as exc:
        topology_error = f"{type(exc).__name__}: {exc}"
    else:
        topology_error = ""

    def topology(fn: Callable[[Probe, Machine, CorePlan], Check], name: str) -> Check:
        if machine is None or plan is None:
            return Check(name, f"could not read the CPU topology: {topology_error}", "warn")
        return fn(p, machine, plan)

    steps: list[tuple[str, Callable[[], Check]]] = [
        ("interpreter", lambda: _interpreter(p)),
        ("free-threaded build", lambda: _free_threaded(p)),
        ("GIL at run time", lambda: _gil_runtime(p)),
        ("architecture", lambda: _architecture(p)),
        ("CPU", lambda: _cpu(p)),
        ("affinity", lambda: _affinity(p)),
        ("isolated cores", lambda: topology(_isolated, "isolated cores")),
        ("SMT siblings", lambda: topology(_smt, "SMT siblings")),
        ("clocksource", lambda: _clocksource(p)),
        ("perf_counter_ns", lambda: _perf_counter(p)),
        ("/dev/shm", lambda: _dev_shm(p)),
        ("transparent huge pages", lambda: _thp(p)),
        ("real-time scheduling", lambda: _realtime(p)),
        ("memlock limit", lambda: _memlock(p)),
        ("core plan", lambda: topology(_core_plan, "core plan")),
    ]
    checks: list[Check] = []
    for name, step in steps:
        try:
            checks.append(step())
        except Exception as exc:  # a doctor that dies on one odd file diagnoses nothing
            checks.append(Check(name, f"could not check: {type(exc).__name__}: {exc}", "warn"))
    return checks


# --------------------------------------------------------------------------------------------
# interpreter


def _interpreter(p: Probe) -> Check:
    version = p.python_version()
    dotted = ".".join(map(str, version))
    impl = p.implementation()
    value = f"{impl} {dotted} at {p.executable()}"
    data: dict[str, object] = {
        "implementation": impl,
        "version": dotted,
        "executable": p.executable(),
    }
    fix = "run scripts/bootstrap-python and use the interpreter it prints"
    if impl != "cpython" or version[:2] < (3, 13):
        return Check("interpreter", value, "fail", fix, data)
    if version[:2] != (3, 13):
        return Check("interpreter", value + " (Vajra is tested on 3.13)", "warn", fix, data)
    return Check("interpreter", value, "ok", None, data)


def _free_threaded(p: Probe) -> Check:
    ft = p.gil_disabled_build()
    data: dict[str, object] = {"Py_GIL_DISABLED": ft}
    if ft:
        return Check("free-threaded build", "yes (Py_GIL_DISABLED=1)", "ok", None, data)
    return Check(
        "free-threaded build",
        "no: this is a GIL build, module threads cannot run in parallel",
        "fail",
        "run scripts/bootstrap-python",
        data,
    )


def _gil_runtime(p: Probe) -> Check:
    enabled = p.gil_enabled()
    env = p.environ("PYTHON_GIL")
    xopt = p.xoption("gil")
    data: dict[str, object] = {
        "enabled": enabled,
        "PYTHON_GIL": env,
        "X_gil": None if xopt is None else str(xopt),
    }
    if not p.gil_disabled_build():
        return Check(
            "GIL at run time", "on (GIL build)", "fail", "run scripts/bootstrap-python", data
        )
    if not enabled:
        return Check("GIL at run time", "off", "ok", None, data)
    if env == "1":
        why, fix = "the environment sets PYTHON_GIL=1", "unset PYTHON_GIL (or set it to 0)"
    elif xopt is not None and str(xopt) == "1":
        why, fix = "the interpreter was started with -X gil=1", "drop -X gil=1"
    else:
        culprits = p.gil_culprits()
        data["culprits"] = culprits
        if culprits:
            why = f"importing {', '.join(culprits)} re-enabled it"
        else:
            why = "an imported C extension without free-threading support re-enabled it"
        fix = (
            "remove that extension from the engine process or run it in a separate process; "
            "python -W error::RuntimeWarning names it at import"
        )
    return Check("GIL at run time", f"on: {why}", "fail", fix, data)


def _architecture(p: Probe) -> Check:
    arch = p.arch()
    data: dict[str, object] = {"machine": arch}
    if arch.lower() in ("x86_64", "amd64"):
        return Check("architecture", arch, "ok", None, data)
    return Check(
        "architecture",
        f"{arch}: the ring relies on x86-64 store ordering",
        "fail",
        "run Vajra on an x86-64 host (pure Python cannot emit the fences other CPUs need)",
        data,
    )


# --------------------------------------------------------------------------------------------
# CPUs


def _cpuinfo(p: Probe) -> tuple[str, set[str]]:
    text = p.read_text("/proc/cpuinfo") or ""
    model, flags = "unknown model", set[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown model":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def _cpu(p: Probe) -> Check:
    model, flags = _cpuinfo(p)
    count = p.cpu_count()
    tsc_flags = sorted(flags & {"tsc", "constant_tsc", "nonstop_tsc", "tsc_known_freq"})
    data: dict[str, object] = {"model": model, "count": count, "tsc_flags": tsc_flags}
    return Check("CPU", f"{model}, {count} CPUs", "ok", None, data)


def _affinity(p: Probe) -> Check:
    cpus = sorted(p.affinity())
    count = p.cpu_count()
    data: dict[str, object] = {"cpus": cpus, "cpulist": format_cpulist(cpus)}
    value = f"cpus {format_cpulist(cpus)} ({len(cpus)} of {count})"
    if count is not None and len(cpus) < count:
        return Check(
            "affinity", value + ": narrowed by taskset, a cpuset or isolcpus=", "info", None, data
        )
    return Check("affinity", value, "ok", None, data)


def _hot_cpus(plan: CorePlan) -> list[int]:
    return sorted({plan.assignments[m] for m in HOT_PRIORITY} - {plan.housekeeping})


def _isolated(p: Probe, machine: Machine, plan: CorePlan) -> Check:
    hot = _hot_cpus(plan)
    isolated = sorted(machine.isolated)
    data: dict[str, object] = {
        "isolated": isolated,
        "nohz_full": sorted(machine.nohz_full),
        "hot_cpus": hot,
    }
    if not hot:
        return Check(
            "isolated cores",
            "none, and nothing to isolate: with one CPU everything shares it",
            "warn",
            "give the engine at least 2 CPUs, then isolate all but the housekeeping one",
            data,
        )
    cl = format_cpulist(hot)
    args = f"isolcpus={cl} nohz_full={cl} rcu_nocbs={cl}"
    fix = (
        f"add `{args}` (the hot cores of the auto plan) to the kernel command line "
        "(GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot)"
    )
    if not isolated:
        return Check("isolated cores", "none", "warn", fix, data)
    exposed = [c for c in hot if c not in machine.isolated]
    value = f"cpus {format_cpulist(isolated)}"
    if exposed:
        return Check(
            "isolated cores",
            f"{value}; hot cpus {format_cpulist(exposed)} are not isolated",
            "warn",
            fix,
            data,
        )
    no_tick = [c for c in hot if c not in machine.nohz_full]
    if no_tick:
        return Check(
            "isolated cores",
            f"{value}; hot cpus {format_cpulist(no_tick)} still take the scheduler tick",
            "warn",
            f"add `nohz_full={cl} rcu_nocbs={cl}` to the kernel command line",
            data,
        )
    return Check("isolated cores", value + " (hot modules run there)", "ok", None, data)


def _smt(p: Probe, machine: Machine, plan: CorePlan) -> Check:
    hot = _hot_cpus(plan)
    busy = {cpu: machine.active_siblings(cpu) for cpu in hot if machine.active_siblings(cpu)}
    control = (p.read_text("/sys/devices/system/cpu/smt/control") or "").strip() or None
    data: dict[str, object] = {
        "smt_control": control,
        "hot_cpus": hot,
        "active_siblings": {str(c): list(s) for c, s in busy.items()},
    }
    if not busy:
        return Check("SMT siblings", "no hot cpu has an active SMT sibling", "ok", None, data)
    desc = "; ".join(f"cpu {c} with {format_cpulist(s)}" for c, s in busy.items())
    siblings = format_cpulist(s for sibs in busy.values() for s in sibs)
    return Check(
        "SMT siblings",
        f"hot cpus share physical cores: {desc}",
        "warn",
        "disable SMT (`echo off > /sys/devices/system/cpu/smt/control`, or `nosmt` on the "
        f"kernel command line), or keep cpus {siblings} idle by adding them to isolcpus=",
        data,
    )


# --------------------------------------------------------------------------------------------
# clocks


def _clocksource(p: Probe) -> Check:
    base = "/sys/devices/system/clocksource/clocksource0"
    current = (p.read_text(f"{base}/current_clocksource") or "").strip()
    available = (p.read_text(f"{base}/available_clocksource") or "").split()
    data: dict[str, object] = {"current": current or None, "available": available}
    if not current:
        return Check("clocksource", "unknown (sysfs not readable)", "info", None, data)
    if current == "tsc":
        return Check("clocksource", current, "ok", None, data)
    if "tsc" in available:
        fix = (
            f"echo tsc > {base}/current_clocksource (as root), and add `clocksource=tsc "
            "tsc=reliable` to the kernel command line to keep it after reboot"
        )
    else:
        fix = (
            f"this kernel offers no tsc clocksource (available: {' '.join(available) or '?'}); "
            "use a machine type with an invariant TSC (constant_tsc, nonstop_tsc)"
        )
    return Check(
        "clocksource",
        f"{current}: perf_counter_ns is slower and coarser than with tsc",
        "warn",
        fix,
        data,
    )


def _perf_counter(p: Probe) -> Check:
    info = p.clock()
    data: dict[str, object] = {
        "implementation": info.implementation,
        "resolution_ns": info.resolution_s * 1e9,
        "min_nonzero_delta_ns": info.min_nonzero_delta_ns,
        "median_delta_ns": info.median_delta_ns,
        "samples": info.samples,
    }
    if info.min_nonzero_delta_ns is None:
        return Check(
            "perf_counter_ns",
            f"did not advance in {info.samples} calls",
            "warn",
            "the clock is too coarse to time microsecond hops; check the clocksource",
            data,
        )
    value = (
        f"{info.implementation}, resolution {info.resolution_s * 1e9:g} ns, smallest step "
        f"{info.min_nonzero_delta_ns} ns, {info.median_delta_ns:g} ns per call (median)"
    )
    if info.min_nonzero_delta_ns > 1000:
        return Check(
            "perf_counter_ns",
            value,
            "warn",
            "steps above 1 µs hide ring hops; check the clocksource (tsc)",
            data,
        )
    return Check("perf_counter_ns", value, "ok", None, data)


# --------------------------------------------------------------------------------------------
# memory


def _dev_shm(p: Probe) -> Check:
    st = p.statvfs("/dev/shm")
    if st is None:
        return Check(
            "/dev/shm",
            "missing: multiprocessing.shared_memory has nowhere to put segments",
            "fail",
            "mount a tmpfs on /dev/shm (Docker: `shm_size: 1gb` or `--shm-size=1g`)",
            {},
        )
    size = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    data: dict[str, object] = {"size_bytes": size, "free_bytes": free}
    value = f"{size / _MIB:.0f} MiB, {free / _MIB:.0f} MiB free"
    if free < SHM_MIN_FREE_BYTES:
        return Check(
            "/dev/shm",
            value + f" (under {SHM_MIN_FREE_BYTES // _MIB} MiB)",
            "warn",
            "Docker: set `shm_size: 1gb` in compose or run with `--shm-size=1g` "
            "(the default is 64 MB)",
            data,
        )
    return Check("/dev/shm", value, "ok", None, data)


def _thp(p: Probe) -> Check:
    base = "/sys/kernel/mm/transparent_hugepage"
    enabled = _bracketed(p.read_text(f"{base}/enabled"))
    defrag = _bracketed(p.read_text(f"{base}/defrag"))
    data: dict[str, object] = {"enabled": enabled, "defrag": defrag}
    if enabled is None:
        return Check("transparent huge pages", "unknown (sysfs not readable)", "info", None, data)
    return Check(
        "transparent huge pages", f"enabled [{enabled}], defrag [{defrag}]", "info", None, data
    )


def _bracketed(text: str | None) -> str | None:
    """The active choice of a sysfs selector such as "always [madvise] never"."""
    if text is None:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return text.strip() or None


def _capabilities(p: Probe) -> int | None:
    for line in (p.read_text("/proc/self/status") or "").splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return None


def _limit_text(value: int, unit: int = 1) -> str:
    if value == resource.RLIM_INFINITY:
        return "unlimited"
    return f"{value // unit} MiB" if unit == _MIB else str(value)


def _realtime(p: Probe) -> Check:
    result = p.sched_fifo_trial()
    soft, hard = p.rlimit(resource.RLIMIT_RTPRIO)
    caps = _capabilities(p)
    data: dict[str, object] = {
        "allowed": result.ok,
        "detail": result.detail,
        "rlimit_rtprio": [soft, hard],
        "cap_sys_nice": None if caps is None else bool(caps >> _CAP_SYS_NICE & 1),
    }
    if result.ok:
        return Check("real-time scheduling", "SCHED_FIFO allowed (optional)", "info", None, data)
    return Check(
        "real-time scheduling",
        f"SCHED_FIFO not allowed (optional): {result.detail}",
        "info",
        "only for the optional SCHED_FIFO hot threads: `docker run --cap-add SYS_NICE` or "
        "`ulimit -r 1`",
        data,
    )


def _memlock(p: Probe) -> Check:
    soft, hard = p.rlimit(resource.RLIMIT_MEMLOCK)
    caps = _capabilities(p)
    ipc_lock = None if caps is None else bool(caps >> _CAP_IPC_LOCK & 1)
    data: dict[str, object] = {
        "soft_bytes": None if soft == resource.RLIM_INFINITY else soft,
        "hard_bytes": None if hard == resource.RLIM_INFINITY else hard,
        "cap_ipc_lock": ipc_lock,
    }
    value = f"soft {_limit_text(soft, _MIB)}, hard {_limit_text(hard, _MIB)}"
    if soft == resource.RLIM_INFINITY or ipc_lock:
        note = " (CAP_IPC_LOCK)" if ipc_lock and soft != resource.RLIM_INFINITY else ""
        return Check("memlock limit", value + note + ": mlockall possible", "info", None, data)
    return Check(
        "memlock limit",
        value + ": the optional mlockall will fail",
        "info",
        "only for the optional memory locking: `ulimit -l unlimited` or "
        "`docker run --ulimit memlock=-1`",
        data,
    )


# --------------------------------------------------------------------------------------------
# plan


def _core_plan(p: Probe, machine: Machine, plan: CorePlan) -> Check:
    parts = [f"housekeeping {plan.housekeeping}"] + [
        f"{m} {plan.assignments[m]} ({plan.waits[m]})" for m in plan.assignments
    ]
    data = plan.to_dict()
    spinning = [m for m in HOT_PRIORITY if plan.waits[m] is WaitKind.BUSY_SPIN]
    if len(spinning) < len(HOT_PRIORITY):
        return Check(
            "core plan",
            "; ".join(parts),
            "warn",
            f"give the engine at least {len(HOT_PRIORITY) + 1} CPUs (3 hot modules plus "
            "housekeeping) so every hot module busy-spins on a CPU of its own",
            data,
        )
    return Check("core plan", "; ".join(parts), "ok", None, data)


# --------------------------------------------------------------------------------------------
# output


def worst_status(checks: Sequence[Check]) -> Status:
    """ "fail" if any check failed, else "warn" if any warned, else "ok"."""
    worst = max((_SEVERITY[c.status] for c in checks), default=0)
    return "fail" if worst == 2 else "warn" if worst == 1 else "ok"


def to_json(checks: Sequence[Check]) -> dict[str, object]:
    """JSON-ready report: overall status, counts per status and every check in order."""
    counts = {s: sum(1 for c in checks if c.status == s) for s in ("ok", "warn", "fail", "info")}
    return {
        "status": worst_status(checks),
        "counts": counts,
        "checks": [
            {"name": c.name, "value": c.value, "status": c.status, "fix": c.fix, "data": c.data}
            for c in checks
        ],
    }


def render_text(checks: Sequence[Check]) -> str:
    """Aligned report for a terminal; fixes and plan notes indented under their check."""
    width = max((len(c.name) for c in checks), default=0)
    lines: list[str] = []
    for c in checks:
        tag = c.status.upper() if c.status in ("warn", "fail") else c.status
        lines.append(f"[{tag:>4}] {c.name:<{width}}  {c.value}")
        pad = " " * (7 + width + 2)
        notes = c.data.get("notes")
        if isinstance(notes, list):
            lines.extend(f"{pad}note: {n}" for n in notes if isinstance(n, str))
        if c.fix:
            lines.append(f"{pad}fix:  {c.fix}")
    tally = ", ".join(
        f"{sum(1 for c in checks if c.status == s)} {s}" for s in ("ok", "warn", "fail", "info")
    )
    lines.append("")
    lines.append(f"{worst_status(checks)} ({tally})")
    return "\n".join(lines) + "\n"
