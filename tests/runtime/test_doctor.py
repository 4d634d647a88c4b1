"""vajra doctor: real values on this machine, and failures under injected conditions."""

from __future__ import annotations

import json
import os
import resource
import sys
import sysconfig
import time

import pytest

from vajra.runtime.coreplan import Machine
from vajra.runtime.doctor import (
    SHM_MIN_FREE_BYTES,
    Check,
    ClockInfo,
    Probe,
    render_text,
    run_checks,
    to_json,
    worst_status,
)
from vajra.runtime.pinning import FeatureResult

NAMES = [
    "interpreter",
    "free-threaded build",
    "GIL at run time",
    "architecture",
    "CPU",
    "affinity",
    "isolated cores",
    "SMT siblings",
    "clocksource",
    "perf_counter_ns",
    "/dev/shm",
    "transparent huge pages",
    "real-time scheduling",
    "memlock limit",
    "core plan",
]


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


@pytest.fixture(scope="module")
def real() -> list[Check]:
    return run_checks()


# --------------------------------------------------------------------------------------------
# the real machine


def test_every_check_runs_on_this_machine(real: list[Check]) -> None:
    assert [c.name for c in real] == NAMES
    for c in real:
        assert c.status in ("ok", "warn", "fail", "info")
        assert c.value and not c.value.startswith("could not check"), c
        if c.status in ("warn", "fail"):
            assert c.fix, f"{c.name} reports a problem without a fix"


def test_json_structure(real: list[Check]) -> None:
    doc = to_json(real)
    assert set(doc) == {"status", "counts", "checks"}
    assert doc["status"] == worst_status(real)
    counts = doc["counts"]
    assert isinstance(counts, dict) and sum(counts.values()) == len(NAMES)
    checks = doc["checks"]
    assert isinstance(checks, list) and len(checks) == len(NAMES)
    for entry in checks:
        assert set(entry) == {"name", "value", "status", "fix", "data"}
        assert isinstance(entry["data"], dict)
    round_trip = json.loads(json.dumps(doc))
    assert round_trip["checks"][0]["name"] == "interpreter"


def test_real_values_appear(real: list[Check]) -> None:
    c = by_name(real)
    assert c["CPU"].data["count"] == os.cpu_count()
    assert c["affinity"].data["cpus"] == sorted(os.sched_getaffinity(0))
    assert c["interpreter"].data["executable"] == sys.executable
    st = os.statvfs("/dev/shm")
    assert c["/dev/shm"].data["size_bytes"] == st.f_blocks * st.f_frsize
    info = time.get_clock_info("perf_counter")
    clock = c["perf_counter_ns"].data
    assert clock["implementation"] == info.implementation
    assert clock["resolution_ns"] == pytest.approx(info.resolution * 1e9)
    delta = clock["min_nonzero_delta_ns"]
    assert isinstance(delta, int) and delta > 0
    plan = c["core plan"].data
    assignments = plan["assignments"]
    assert isinstance(assignments, dict)
    assert set(assignments) == {"feed", "oracle", "sonar", "sentinel", "execution", "journal"}
    assert isinstance(plan["notes"], list)


def test_gil_checks_agree_with_the_interpreter(real: list[Check]) -> None:
    c = by_name(real)
    ft = sysconfig.get_config_var("Py_GIL_DISABLED") == 1
    assert (c["free-threaded build"].status == "ok") is ft
    assert (c["GIL at run time"].status == "ok") is (ft and not sys._is_gil_enabled())


def test_dev_shm_numbers_come_from_statvfs() -> None:
    recorded = os.statvfs("/dev/shm")

    class Recorded(Probe):
        def statvfs(self, path: str) -> os.statvfs_result | None:
            assert path == "/dev/shm"
            return recorded

    shm = by_name(run_checks(Recorded()))["/dev/shm"]
    assert shm.data == {
        "size_bytes": recorded.f_blocks * recorded.f_frsize,
        "free_bytes": recorded.f_bavail * recorded.f_frsize,
    }
    expected = "ok" if recorded.f_bavail * recorded.f_frsize >= SHM_MIN_FREE_BYTES else "warn"
    assert shm.status == expected


def test_render_text_lists_every_check(real: list[Check]) -> None:
    text = render_text(real)
    for name in NAMES:
        assert name in text
    assert text.rstrip().splitlines()[-1].startswith(worst_status(real))


# --------------------------------------------------------------------------------------------
# injected conditions


class Fake(Probe):
    """A probe with a healthy, simulated environment that tests degrade one field at a time."""

    def __init__(self, **overrides: object) -> None:
        self.o = overrides

    def python_version(self) -> tuple[int, int, int]:
        v = self.o.get("version", (3, 13, 5))
        assert isinstance(v, tuple)
        return v

    def gil_disabled_build(self) -> bool:
        return bool(self.o.get("ft", True))

    def gil_enabled(self) -> bool:
        return bool(self.o.get("gil", False))

    def environ(self, name: str) -> str | None:
        env = self.o.get("env", {})
        assert isinstance(env, dict)
        value = env.get(name)
        return None if value is None else str(value)

    def xoption(self, name: str) -> str | bool | None:
        x = self.o.get("xoptions", {})
        assert isinstance(x, dict)
        value = x.get(name)
        return value if isinstance(value, (str, bool)) else None

    def gil_culprits(self) -> list[str]:
        c = self.o.get("culprits", [])
        assert isinstance(c, list)
        return [str(x) for x in c]

    def arch(self) -> str:
        return str(self.o.get("arch", "x86_64"))

    def read_text(self, path: str) -> str | None:
        files = self.o.get("files", {})
        assert isinstance(files, dict)
        if path in files:
            value = files[path]
            return None if value is None else str(value)
        return super().read_text(path)

    def machine(self) -> Machine:
        m = self.o.get("machine")
        return m if isinstance(m, Machine) else Machine(cpus=(0, 1, 2, 3))

    def clock(self) -> ClockInfo:
        c = self.o.get("clock")
        if isinstance(c, ClockInfo):
            return c
        return ClockInfo("clock_gettime(CLOCK_MONOTONIC)", 1e-9, 40, 60.0, 1000)

    def statvfs(self, path: str) -> os.statvfs_result | None:
        if self.o.get("no_shm"):
            return None
        free = self.o.get("shm_free_blocks", 1 << 20)
        assert isinstance(free, int)
        # (bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, namemax)
        # bsize and bfree differ from frsize and bavail so that using the wrong ones shows.
        return os.statvfs_result((8192, 4096, 1 << 20, free + 1000, free, 0, 0, 0, 0, 255))

    def rlimit(self, which: int) -> tuple[int, int]:
        limits = self.o.get("rlimits", {})
        assert isinstance(limits, dict)
        value = limits.get(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        assert isinstance(value, tuple)
        return value

    def sched_fifo_trial(self) -> FeatureResult:
        ok = bool(self.o.get("fifo", True))
        return FeatureResult("sched_fifo", ok, "fine" if ok else "Operation not permitted: ...")


def test_healthy_fake_has_no_failures() -> None:
    checks = run_checks(
        Fake(
            machine=Machine(
                cpus=tuple(range(8)), isolated=frozenset({1, 2, 3}), nohz_full=frozenset({1, 2, 3})
            )
        )
    )
    bad = [c for c in checks if c.status in ("warn", "fail")]
    assert not bad, bad


def test_non_x86_fails() -> None:
    arch = by_name(run_checks(Fake(arch="aarch64")))["architecture"]
    assert arch.status == "fail"
    assert "x86-64 store ordering" in arch.value
    assert arch.fix


def test_gil_build_fails_with_bootstrap_fix() -> None:
    checks = by_name(run_checks(Fake(ft=False, gil=True)))
    assert checks["free-threaded build"].status == "fail"
    assert checks["free-threaded build"].fix == "run scripts/bootstrap-python"
    assert checks["GIL at run time"].status == "fail"
    assert worst_status(list(checks.values())) == "fail"
    assert to_json(list(checks.values()))["status"] == "fail"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"env": {"PYTHON_GIL": "1"}}, "PYTHON_GIL=1"),
        ({"xoptions": {"gil": "1"}}, "-X gil=1"),
        ({"culprits": ["pyhdrh"]}, "pyhdrh"),
        ({}, "C extension"),
    ],
)
def test_gil_on_at_run_time_names_the_cause(overrides: dict[str, object], needle: str) -> None:
    check = by_name(run_checks(Fake(gil=True, **overrides)))["GIL at run time"]
    assert check.status == "fail"
    assert needle in check.value
    assert check.fix


@pytest.mark.parametrize(
    ("version", "status"), [((3, 12, 4), "fail"), ((3, 13, 0), "ok"), ((3, 14, 0), "warn")]
)
def test_interpreter_version(version: tuple[int, int, int], status: str) -> None:
    assert by_name(run_checks(Fake(version=version)))["interpreter"].status == status


def test_small_dev_shm_warns_with_docker_fix() -> None:
    blocks = (64 * 1024 * 1024) // 4096
    shm = by_name(run_checks(Fake(shm_free_blocks=blocks)))["/dev/shm"]
    assert shm.status == "warn"
    assert shm.fix is not None and "shm_size" in shm.fix and "--shm-size" in shm.fix
    assert shm.data["free_bytes"] == 64 * 1024 * 1024


def test_missing_dev_shm_fails() -> None:
    assert by_name(run_checks(Fake(no_shm=True)))["/dev/shm"].status == "fail"


CS = "/sys/devices/system/clocksource/clocksource0"


@pytest.mark.parametrize(
    ("current", "available", "status", "fix_part"),
    [
        ("tsc", "tsc hpet acpi_pm", "ok", None),
        ("kvm-clock", "kvm-clock tsc acpi_pm", "warn", "echo tsc >"),
        ("hpet", "hpet acpi_pm", "warn", "invariant TSC"),
        (None, None, "info", None),
    ],
)
def test_clocksource(
    current: str | None, available: str | None, status: str, fix_part: str | None
) -> None:
    files = {f"{CS}/current_clocksource": current, f"{CS}/available_clocksource": available}
    check = by_name(run_checks(Fake(files=files)))["clocksource"]
    assert check.status == status
    if fix_part is None:
        assert check.fix is None
    else:
        assert check.fix is not None and fix_part in check.fix


def test_transparent_huge_pages_reports_the_active_value() -> None:
    files = {
        "/sys/kernel/mm/transparent_hugepage/enabled": "always [madvise] never\n",
        "/sys/kernel/mm/transparent_hugepage/defrag": "[always] defer madvise never\n",
    }
    thp = by_name(run_checks(Fake(files=files)))["transparent huge pages"]
    assert thp.data == {"enabled": "madvise", "defrag": "always"}
    assert "[madvise]" in thp.value


def test_isolation_missing_prints_kernel_args_for_hot_cores() -> None:
    check = by_name(run_checks(Fake(machine=Machine(cpus=(0, 1, 2, 3)))))["isolated cores"]
    assert check.status == "warn"
    assert check.fix is not None
    assert "isolcpus=1-3 nohz_full=1-3 rcu_nocbs=1-3" in check.fix


def test_isolation_without_nohz_full_warns() -> None:
    m = Machine(cpus=(0, 1, 2, 3), isolated=frozenset({1, 2, 3}))
    check = by_name(run_checks(Fake(machine=m)))["isolated cores"]
    assert check.status == "warn" and "tick" in check.value


def test_smt_siblings_of_hot_cores_warn() -> None:
    siblings = {c: (c % 4, c % 4 + 4) for c in range(8)}
    m = Machine(cpus=tuple(range(8)), siblings=siblings)
    check = by_name(run_checks(Fake(machine=m)))["SMT siblings"]
    assert check.status == "warn"
    assert check.data["active_siblings"] == {"1": [5], "2": [6], "3": [7]}
    assert check.fix is not None and "smt/control" in check.fix


def test_core_plan_on_two_cpus_warns_and_renders_its_notes() -> None:
    checks = run_checks(Fake(machine=Machine(cpus=(0, 1))))
    plan = by_name(checks)["core plan"]
    assert plan.status == "warn"
    notes = plan.data["notes"]
    assert isinstance(notes, list)
    assert "oracle and execution share cpu 1 and use spin-yield" in notes
    text = render_text(checks)
    assert "note: oracle and execution share cpu 1 and use spin-yield" in text


def test_core_plan_with_enough_cpus_is_ok() -> None:
    plan = by_name(run_checks(Fake(machine=Machine(cpus=tuple(range(8))))))["core plan"]
    assert plan.status == "ok"
    assert "execution 1 (busy-spin)" in plan.value


def test_perf_counter_that_never_moves_warns() -> None:
    stuck = ClockInfo("fake", 1e-9, None, 0.0, 1000)
    check = by_name(run_checks(Fake(clock=stuck)))["perf_counter_ns"]
    assert check.status == "warn" and check.fix


def test_coarse_perf_counter_warns() -> None:
    coarse = ClockInfo("fake", 1e-6, 4000, 4000.0, 1000)
    assert by_name(run_checks(Fake(clock=coarse)))["perf_counter_ns"].status == "warn"


def test_optional_realtime_and_memlock_are_info_with_fixes() -> None:
    small = (8 * 1024 * 1024, 8 * 1024 * 1024)
    no_caps = {"/proc/self/status": "Name:\tx\nCapEff:\t0000000000000000\n"}
    checks = by_name(
        run_checks(Fake(fifo=False, rlimits={resource.RLIMIT_MEMLOCK: small}, files=no_caps))
    )
    rt, mem = checks["real-time scheduling"], checks["memlock limit"]
    assert rt.status == "info" and rt.data["allowed"] is False and rt.fix
    assert rt.data["cap_sys_nice"] is False
    assert mem.status == "info" and "8 MiB" in mem.value and mem.fix
    assert mem.data["cap_ipc_lock"] is False


def test_a_crashing_probe_becomes_a_warning_not_a_crash() -> None:
    class Broken(Fake):
        def clock(self) -> ClockInfo:
            raise RuntimeError("clock exploded")

        def machine(self) -> Machine:
            raise OSError("no sysfs")

    checks = by_name(run_checks(Broken()))
    assert checks["perf_counter_ns"].status == "warn"
    assert "clock exploded" in checks["perf_counter_ns"].value
    for name in ("isolated cores", "SMT siblings", "core plan"):
        assert checks[name].status == "warn" and "no sysfs" in checks[name].value
    assert checks["architecture"].status == "ok"


def test_worst_status() -> None:
    assert worst_status([]) == "ok"
    assert worst_status([Check("a", "x", "info"), Check("b", "y", "ok")]) == "ok"
    assert worst_status([Check("a", "x", "warn"), Check("b", "y", "ok")]) == "warn"
    assert worst_status([Check("a", "x", "warn"), Check("b", "y", "fail")]) == "fail"
