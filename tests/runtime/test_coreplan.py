"""Core plan: placement rules on simulated machines, config validation, cpulist syntax."""

from __future__ import annotations

import os
import random
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.runtime.coreplan import (
    HOT_MODULES,
    HOT_PRIORITY,
    MODULES,
    CorePlan,
    CorePlanError,
    Machine,
    Tier,
    WaitKind,
    format_cpulist,
    parse_cpulist,
    plan_auto,
    plan_from_config,
    tier_of,
)

REPO = Path(__file__).resolve().parents[2]


def flat(n: int, isolated: frozenset[int] = frozenset()) -> Machine:
    """n CPUs, no SMT."""
    return Machine(cpus=tuple(range(n)), isolated=isolated)


def smt(
    cores: int,
    threads: int = 2,
    cpus: Iterable[int] | None = None,
    isolated: frozenset[int] = frozenset(),
) -> Machine:
    """cores x threads CPUs numbered like Linux does: cpu c and c + cores are siblings."""
    total = cores * threads
    siblings = {c: tuple(c % cores + k * cores for k in range(threads)) for c in range(total)}
    usable = tuple(range(total)) if cpus is None else tuple(cpus)
    return Machine(cpus=usable, online=tuple(range(total)), siblings=siblings, isolated=isolated)


MACHINES = {
    "1cpu": flat(1),
    "2cpu": flat(2),
    "3cpu": flat(3),
    "4cpu": flat(4),
    "4cpu-2x2smt": smt(2),
    "7cpu": flat(7),
    "8cpu-4x2smt": smt(4),
    "8cpu-4x2smt-iso-2-6": smt(4, isolated=frozenset({2, 6})),
    "8cpu-iso-5-7": flat(8, isolated=frozenset({5, 6, 7})),
    "16cpu": flat(16),
    "16cpu-8x2smt": smt(8),
    "16cpu-8x2smt-iso": smt(8, isolated=frozenset({2, 3, 4, 5, 10, 11, 12, 13})),
    "16cpu-restricted-2-5-all-isolated": smt(8, cpus=(2, 3, 4, 5), isolated=frozenset(range(2, 6))),
    "16cpu-restricted-odd": smt(8, cpus=(1, 3, 9, 11)),
    "8cpu-restricted-one-thread-each": smt(4, cpus=(0, 1, 2, 3)),
}


def physical_cores_excluding(machine: Machine, cpu: int) -> int:
    return sum(1 for core in machine.cores() if not machine.same_core(core[0], cpu))


# --------------------------------------------------------------------------------------------
# invariants every auto plan must satisfy


def check_invariants(machine: Machine, plan: CorePlan) -> None:
    cpus = set(machine.cpus)
    assert set(plan.assignments) == set(MODULES) == set(plan.waits)
    assert plan.housekeeping in cpus
    for module, cpu in plan.assignments.items():
        assert cpu in cpus, f"{module} on cpu {cpu} outside {sorted(cpus)}"

    for module in MODULES:
        cpu = plan.assignments[module]
        company = [m for m in plan.modules_on(cpu) if m != module]
        shared = bool(company) or cpu == plan.housekeeping
        wait = plan.waits[module]
        if wait is WaitKind.BUSY_SPIN:
            assert not shared, f"{module} busy-spins on shared cpu {cpu}"
        if shared:
            expected = WaitKind.SPIN_YIELD if module in HOT_MODULES else WaitKind.SPIN_PARK
            assert wait is expected, f"{module} shares cpu {cpu} but waits with {wait}"
            assert any(f"cpu {cpu}" in n and module in n for n in plan.notes), (
                f"no note explains that {module} shares cpu {cpu}: {plan.notes}"
            )
        if tier_of(module) is Tier.HOT and not shared:
            assert wait is WaitKind.BUSY_SPIN
        if tier_of(module) is Tier.COLD:
            assert wait is WaitKind.SPIN_PARK

    sharing = any(
        cpu == plan.housekeeping or len(plan.modules_on(cpu)) > 1
        for cpu in plan.assignments.values()
    )
    assert plan.shared is sharing

    # Hot modules on distinct physical cores whenever enough cores exist beside housekeeping.
    if physical_cores_excluding(machine, plan.housekeeping) >= len(HOT_PRIORITY):
        hot_cpus = [plan.assignments[m] for m in HOT_PRIORITY]
        for i, a in enumerate(hot_cpus):
            for b in hot_cpus[i + 1 :]:
                assert not machine.same_core(a, b), f"hot modules on one core: {hot_cpus}"
            assert not machine.same_core(a, plan.housekeeping)

    # Enough CPUs: every hot module alone and busy-spinning.
    if len(cpus) > len(HOT_PRIORITY):
        assert all(plan.waits[m] is WaitKind.BUSY_SPIN for m in HOT_PRIORITY)

    # Isolation: housekeeping avoids isolated CPUs when it can; hot modules take isolated
    # cores first, in priority order.
    non_isolated = cpus - machine.isolated
    if non_isolated:
        assert plan.housekeeping not in machine.isolated
    iso_cores = sum(
        1
        for core in machine.cores()
        if any(c in machine.isolated for c in core)
        and not machine.same_core(core[0], plan.housekeeping)
    )
    for rank, module in enumerate(HOT_PRIORITY):
        if rank < iso_cores:
            assert plan.assignments[module] in machine.isolated, (
                f"{module} not isolated though {iso_cores} isolated cores exist"
            )


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_auto_plan_invariants(name: str) -> None:
    machine = MACHINES[name]
    plan = plan_auto(machine)
    check_invariants(machine, plan)
    assert plan_auto(machine) == plan  # deterministic


@st.composite
def machines(draw: st.DrawFn) -> Machine:
    cores = draw(st.integers(1, 12))
    threads = draw(st.sampled_from([1, 2, 4]))
    total = cores * threads
    everything = list(range(total))
    usable = draw(st.lists(st.sampled_from(everything), min_size=1, unique=True))
    isolated = draw(st.frozensets(st.sampled_from(everything)))
    siblings = {c: tuple(c % cores + k * cores for k in range(threads)) for c in everything}
    return Machine(
        cpus=tuple(usable),
        online=tuple(everything),
        isolated=isolated,
        siblings=siblings,
    )


@settings(max_examples=300, deadline=None)
@given(machines())
def test_auto_plan_invariants_on_generated_machines(machine: Machine) -> None:
    plan = plan_auto(machine)
    check_invariants(machine, plan)
    shuffled = Machine(
        cpus=tuple(reversed(machine.cpus)),
        online=tuple(reversed(machine.online)),
        isolated=machine.isolated,
        siblings=dict(reversed(list(machine.siblings.items()))),
    )
    assert plan_auto(shuffled) == plan


# --------------------------------------------------------------------------------------------
# specific machines


def test_one_cpu_everything_shares_it() -> None:
    plan = plan_auto(flat(1))
    assert set(plan.assignments.values()) == {0}
    assert plan.housekeeping == 0
    assert plan.shared
    assert WaitKind.BUSY_SPIN not in plan.waits.values()
    assert plan.waits["execution"] is WaitKind.SPIN_YIELD
    assert plan.waits["journal"] is WaitKind.SPIN_PARK
    assert plan.notes[0].startswith("1 CPU:")


def test_two_cpus_pair_oracle_with_execution_off_housekeeping() -> None:
    plan = plan_auto(flat(2))
    assert plan.housekeeping == 0
    assert plan.assignments["execution"] == plan.assignments["oracle"] == 1
    assert plan.modules_on(1) == ("oracle", "execution")
    assert plan.modules_on(0) == ("feed", "sonar", "sentinel", "journal")
    assert plan.waits["oracle"] is plan.waits["execution"] is WaitKind.SPIN_YIELD
    assert plan.waits["feed"] is WaitKind.SPIN_YIELD
    assert plan.waits["sentinel"] is WaitKind.SPIN_PARK
    assert "oracle and execution share cpu 1 and use spin-yield" in plan.notes
    assert any(n.startswith("2 CPUs for 3 hot modules") for n in plan.notes)


def test_three_cpus_give_execution_and_oracle_their_own() -> None:
    plan = plan_auto(flat(3))
    assert (plan.assignments["execution"], plan.assignments["oracle"]) == (1, 2)
    assert plan.assignments["feed"] == plan.housekeeping == 0
    assert plan.waits["execution"] is plan.waits["oracle"] is WaitKind.BUSY_SPIN
    assert plan.waits["feed"] is WaitKind.SPIN_YIELD


def test_four_cpus_every_hot_module_busy_spins() -> None:
    plan = plan_auto(flat(4))
    assert [plan.assignments[m] for m in HOT_PRIORITY] == [1, 2, 3]
    assert all(plan.waits[m] is WaitKind.BUSY_SPIN for m in HOT_PRIORITY)
    assert plan.modules_on(0) == ("sonar", "sentinel", "journal")
    assert "sonar, sentinel and journal share housekeeping cpu 0 and use spin-park" in plan.notes


def test_seven_cpus_nothing_shared() -> None:
    plan = plan_auto(flat(7))
    assert not plan.shared
    assert len(set(plan.assignments.values()) | {plan.housekeeping}) == 7
    # A warm module alone on a whole core may poll cheaply; the cold one never spins.
    assert plan.waits["sentinel"] is WaitKind.SPIN_YIELD
    assert plan.waits["journal"] is WaitKind.SPIN_PARK


def test_eight_cpus_smt_one_hot_module_per_core_warm_on_siblings() -> None:
    machine = smt(4)  # siblings (0,4) (1,5) (2,6) (3,7)
    plan = plan_auto(machine)
    assert plan.housekeeping == 0
    assert [plan.assignments[m] for m in HOT_PRIORITY] == [1, 2, 3]
    assert not plan.shared
    # Leftover SMT threads host the rest: the housekeeping core's sibling first.
    assert plan.assignments["sentinel"] == 4
    assert {plan.assignments["sonar"], plan.assignments["journal"]} <= {5, 6, 7}
    # Next to a spinning hot thread, idle polling would steal its execution units.
    assert plan.waits["sonar"] is WaitKind.SPIN_PARK
    assert any("sonar" in n and "SMT" in n for n in plan.notes)


def test_four_cpus_smt_prefers_own_logical_cpu_over_time_sharing() -> None:
    machine = smt(2)  # siblings (0,2) (1,3)
    plan = plan_auto(machine)
    hot = [plan.assignments[m] for m in HOT_PRIORITY]
    assert len(set(hot)) == 3 and plan.housekeeping not in hot
    assert all(plan.waits[m] is WaitKind.BUSY_SPIN for m in HOT_PRIORITY)
    # Only one whole core besides housekeeping: execution gets it, and the notes say who
    # ends up on SMT threads of a shared core.
    assert plan.assignments["execution"] == 1
    assert any("SMT threads of one physical core" in n for n in plan.notes)


def test_isolated_cores_take_hot_modules() -> None:
    machine = smt(8, isolated=frozenset({2, 3, 4, 5, 10, 11, 12, 13}))
    plan = plan_auto(machine)
    assert plan.housekeeping == 0
    assert [plan.assignments[m] for m in HOT_PRIORITY] == [2, 3, 4]
    assert not any(n.startswith("no isolated CPUs") for n in plan.notes)


def test_isolated_smt_pair_does_not_put_two_hot_modules_on_one_core() -> None:
    machine = smt(4, isolated=frozenset({2, 6}))  # one isolated physical core
    plan = plan_auto(machine)
    assert plan.assignments["execution"] == 2
    assert plan.assignments["oracle"] != 6 and plan.assignments["feed"] != 6
    assert any("isolated cpu 6" in n for n in plan.notes)


def test_restricted_affinity_all_isolated_puts_housekeeping_on_an_isolated_cpu() -> None:
    machine = smt(8, cpus=(2, 3, 4, 5), isolated=frozenset(range(2, 6)))
    plan = plan_auto(machine)
    assert set(plan.assignments.values()) | {plan.housekeeping} <= {2, 3, 4, 5}
    assert plan.housekeeping == 2
    assert any("housekeeping is on isolated cpu 2" in n for n in plan.notes)


def test_isolated_cpus_outside_affinity_are_reported() -> None:
    machine = flat(8, isolated=frozenset({6, 7}))
    narrowed = Machine(cpus=(0, 1, 2, 3), online=machine.online, isolated=machine.isolated)
    plan = plan_auto(narrowed)
    assert any("isolated cpus 6-7 are outside" in n for n in plan.notes)


def test_no_isolation_is_noted() -> None:
    assert any(n.startswith("no isolated CPUs") for n in plan_auto(flat(4)).notes)


def test_modules_on_and_to_dict() -> None:
    plan = plan_auto(flat(2))
    assert plan.modules_on(5) == ()
    data = plan.to_dict()
    assert data["assignments"] == dict(plan.assignments)
    assert data["waits"] == {m: str(w) for m, w in plan.waits.items()}
    assert data["shared"] is True
    assert plan.cpus() == (0, 1)


def test_coreplan_rejects_incomplete_mappings() -> None:
    with pytest.raises(ValueError, match="journal"):
        CorePlan(
            assignments={m: 0 for m in MODULES if m != "journal"},
            waits=dict.fromkeys(MODULES, WaitKind.SPIN_PARK),
            housekeeping=0,
        )


# --------------------------------------------------------------------------------------------
# Machine


def test_machine_validation() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Machine(cpus=())
    with pytest.raises(ValueError, match="not online"):
        Machine(cpus=(0, 5), online=(0, 1))
    with pytest.raises(ValueError, match="inconsistent SMT"):
        Machine(cpus=(0, 1, 2), siblings={0: (0, 1), 1: (1, 2)})


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_sysfs(root: Path, cores: int, threads: int, isolated: str = "") -> Path:
    sysfs = root / "sys" / "cpu"
    total = cores * threads
    write(sysfs / "online", f"0-{total - 1}\n")
    write(sysfs / "isolated", isolated + "\n")
    write(sysfs / "nohz_full", "(null)\n")
    for c in range(total):
        sibs = [c % cores + k * cores for k in range(threads)]
        write(sysfs / f"cpu{c}" / "topology" / "thread_siblings_list", format_cpulist(sibs))
    return sysfs


def test_detect_reads_a_fake_sysfs(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, cores=4, threads=2, isolated="")
    m = Machine.detect(sysfs_cpu=sysfs, affinity={0, 1, 2, 3, 4, 5, 6, 7})
    assert m.cpus == tuple(range(8))
    assert m.online == tuple(range(8))
    assert m.isolated == frozenset()
    assert m.nohz_full == frozenset()
    assert m.siblings[1] == (1, 5)
    assert m.core_of(5) == (1, 5)
    assert m.active_siblings(1) == (5,)


def test_detect_tolerates_missing_files(tmp_path: Path) -> None:
    m = Machine.detect(sysfs_cpu=tmp_path / "nothing", affinity={0, 3})
    assert m.cpus == (0, 3)
    assert m.online == (0, 3)
    assert m.isolated == frozenset()
    assert m.core_of(3) == (3,)


def test_detect_adds_isolated_cpus_when_affinity_is_the_kernel_default(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, cores=8, threads=1, isolated="2-5")
    proc_cgroup = tmp_path / "proc-cgroup"
    proc_cgroup.write_text("0::/engine/vajra\n")
    cgroot = tmp_path / "cgroup"
    write(cgroot / "engine" / "cpuset.cpus.effective", "0-7\n")  # found by walking up
    default_mask = {0, 1, 6, 7}  # what init hands out: cpuset minus isolated
    m = Machine.detect(
        sysfs_cpu=sysfs, affinity=default_mask, proc_cgroup=proc_cgroup, cgroup_root=cgroot
    )
    assert m.cpus == tuple(range(8))
    assert [plan_auto(m).assignments[x] for x in HOT_PRIORITY] == [2, 3, 4]
    # Narrowed on purpose (taskset): respected.
    narrowed = Machine.detect(
        sysfs_cpu=sysfs, affinity={0, 1}, proc_cgroup=proc_cgroup, cgroup_root=cgroot
    )
    assert narrowed.cpus == (0, 1)
    # Opting out keeps the literal affinity.
    literal = Machine.detect(
        sysfs_cpu=sysfs,
        affinity=default_mask,
        proc_cgroup=proc_cgroup,
        cgroup_root=cgroot,
        include_isolated=False,
    )
    assert literal.cpus == (0, 1, 6, 7)


def test_detect_reads_cgroup_v1_cpuset(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, cores=4, threads=1, isolated="3")
    proc_cgroup = tmp_path / "proc-cgroup"
    proc_cgroup.write_text("4:memory:/x\n3:cpuset:/\n0::/\n")
    cgroot = tmp_path / "cgroup"
    write(cgroot / "cpuset" / "cpuset.effective_cpus", "0-3\n")
    m = Machine.detect(
        sysfs_cpu=sysfs, affinity={0, 1, 2}, proc_cgroup=proc_cgroup, cgroup_root=cgroot
    )
    assert m.cpus == (0, 1, 2, 3)


def test_detect_on_this_machine() -> None:
    m = Machine.detect()
    affinity = os.sched_getaffinity(0)
    assert set(affinity) <= set(m.cpus)
    if not m.isolated:
        assert set(m.cpus) == affinity
    check_invariants(m, plan_auto(m))


# --------------------------------------------------------------------------------------------
# configuration

EXPLICIT_8 = {
    "housekeeping": 0,
    "execution": 1,
    "oracle": 2,
    "feed": 3,
    "sentinel": 4,
    "sonar": 5,
    "journal": 6,
}


def test_config_auto_and_empty_table_match_plan_auto() -> None:
    machine = smt(4)
    assert plan_from_config({}, machine) == plan_auto(machine)
    assert plan_from_config({"plan": "auto"}, machine) == plan_auto(machine)


def test_config_explicit_plan() -> None:
    machine = smt(4)
    plan = plan_from_config(EXPLICIT_8, machine)
    assert plan.housekeeping == 0
    assert dict(plan.assignments) == {k: v for k, v in EXPLICIT_8.items() if k != "housekeeping"}
    assert plan.waits["execution"] is WaitKind.BUSY_SPIN


def test_config_explicit_plan_may_share_with_derived_waits_and_notes() -> None:
    machine = flat(4)
    cfg = {**EXPLICIT_8, "execution": 1, "oracle": 1, "feed": 2, "sentinel": 3}
    cfg |= {"sonar": 3, "journal": 0}
    plan = plan_from_config(cfg, machine)
    check_invariants_loose(plan)
    assert plan.waits["execution"] is plan.waits["oracle"] is WaitKind.SPIN_YIELD
    assert plan.waits["feed"] is WaitKind.BUSY_SPIN
    assert plan.waits["sonar"] is WaitKind.SPIN_PARK
    assert "oracle and execution share cpu 1 and use spin-yield" in plan.notes


def check_invariants_loose(plan: CorePlan) -> None:
    """The wait rules hold for explicit plans too (no placement rules: the user chose)."""
    for module in MODULES:
        cpu = plan.assignments[module]
        alone = plan.modules_on(cpu) == (module,) and cpu != plan.housekeeping
        if plan.waits[module] is WaitKind.BUSY_SPIN:
            assert alone


@pytest.mark.parametrize(
    ("cfg", "pattern"),
    [
        ({**EXPLICIT_8, "exection": 1}, r"\[cores\] exection: unknown key"),
        (
            {**EXPLICIT_8, "execution": 9},
            r"execution = 9: cpu 9 is not available.*allowed cpus: 0-7",
        ),
        ({**EXPLICIT_8, "housekeeping": -1}, r"housekeeping = -1.*allowed cpus: 0-7"),
        ({**EXPLICIT_8, "oracle": "2"}, r"oracle = '2': expected a cpu number"),
        ({**EXPLICIT_8, "oracle": True}, r"oracle = True: expected a cpu number"),
        ({k: v for k, v in EXPLICIT_8.items() if k != "journal"}, r"missing journal"),
        ({"execution": 1}, r"missing feed, oracle, sonar, sentinel, journal, housekeeping"),
        ({"plan": "explicit"}, r"missing feed"),
        ({"plan": "auto", "execution": 1}, r'plan = "auto" cannot be combined.*execution'),
        ({"plan": "fastest"}, r"plan = 'fastest': expected"),
        ({"wait": {"executor": "busy-spin"}}, r"\[cores.wait\] executor: unknown module"),
        ({"wait": {"execution": "spin"}}, r"execution = 'spin': expected one of busy-spin"),
        ({"wait": ["execution"]}, r"\[cores.wait\] must be a table"),
    ],
)
def test_config_errors_name_the_key(cfg: dict[str, object], pattern: str) -> None:
    with pytest.raises(CorePlanError, match=pattern):
        plan_from_config(cfg, smt(4))


def test_core_plan_error_is_a_value_error() -> None:
    assert issubclass(CorePlanError, ValueError)


def test_wait_override_busy_spin_on_shared_cpu_is_loud() -> None:
    plan = plan_from_config({"wait": {"execution": "busy-spin"}}, flat(2))
    assert plan.waits["execution"] is WaitKind.BUSY_SPIN
    assert plan.waits["oracle"] is WaitKind.SPIN_YIELD
    warning = [n for n in plan.notes if n.startswith("WARNING:")]
    assert len(warning) == 1 and "execution" in warning[0] and "oracle" in warning[0]


def test_wait_override_on_housekeeping_names_it() -> None:
    plan = plan_from_config({"wait": {"feed": "busy-spin"}}, flat(2))
    assert any(n.startswith("WARNING:") and "housekeeping" in n for n in plan.notes)


def test_harmless_wait_override_is_noted_quietly() -> None:
    plan = plan_from_config({"wait": {"journal": "spin-yield"}}, flat(8))
    assert plan.waits["journal"] is WaitKind.SPIN_YIELD
    assert "[cores.wait] journal = spin-yield (the derived wait is spin-park)" in plan.notes
    assert not any(n.startswith("WARNING") for n in plan.notes)


def test_default_toml_cores_section() -> None:
    text = (REPO / "config" / "default.toml").read_text()
    cores = tomllib.loads(text)["cores"]
    assert cores["plan"] == "auto"
    machine = smt(4)
    assert plan_from_config(cores, machine) == plan_auto(machine)
    # The commented explicit example must stay a valid plan for the machine it describes.
    example = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^# (\w+) = (\d+)", text, flags=re.MULTILINE)
    }
    assert set(example) == {*MODULES, "housekeeping"}
    plan = plan_from_config(example, machine)
    assert not plan.shared


# --------------------------------------------------------------------------------------------
# cpulist


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0-3,8,10-11", [0, 1, 2, 3, 8, 10, 11]),
        ("2-5,8\n", [2, 3, 4, 5, 8]),
        ("", []),
        ("\n", []),
        ("(null)\n", []),
        ("7", [7]),
        ("3,1,1-2", [1, 2, 3]),
        ("0-7:2", [0, 2, 4, 6]),
    ],
)
def test_parse_cpulist(text: str, cpus: list[int]) -> None:
    assert parse_cpulist(text) == cpus


@pytest.mark.parametrize("text", ["a", "3-1", "1,,2", "-1", "1-", "0-3:0", "1 2", "²"])
def test_parse_cpulist_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cpulist(text)


def test_format_cpulist() -> None:
    assert format_cpulist([]) == ""
    assert format_cpulist([5, 0, 1, 2, 3, 3, 7, 8]) == "0-3,5,7-8"
    with pytest.raises(ValueError):
        format_cpulist([-1])


@given(st.sets(st.integers(0, 4096)))
def test_cpulist_round_trip(cpus: set[int]) -> None:
    text = format_cpulist(cpus)
    assert parse_cpulist(text) == sorted(cpus)
    assert format_cpulist(parse_cpulist(text)) == text


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 40)), max_size=20), st.randoms())
def test_parse_cpulist_accepts_any_order_and_overlap(
    ranges: list[tuple[int, int]], rnd: random.Random
) -> None:
    parts = [f"{lo}-{lo + n}" if n else str(lo) for lo, n in ranges]
    rnd.shuffle(parts)
    expected = sorted({c for lo, n in ranges for c in range(lo, lo + n + 1)})
    assert parse_cpulist(",".join(parts)) == expected
