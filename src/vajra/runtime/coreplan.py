"""Which CPU each engine module runs on, and how each one waits for work.

A busy-spinning consumer reacts in about a microsecond but owns its CPU completely; the same
loop on a CPU that is shared with another thread stalls that thread for a whole scheduler time
slice (milliseconds). The placement and the wait strategy therefore have to be decided
together, from what the machine really offers: how many CPUs this process may use, which of
them the kernel keeps free of other work (``isolcpus=``), and which are SMT threads of the same
physical core. This module makes that decision once, deterministically, and explains it in
plain words so that a degraded placement (a 2-vCPU cloud VM) is visible rather than silent.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Final

__all__ = [
    "COLD_MODULES",
    "HOT_MODULES",
    "HOT_PRIORITY",
    "HOUSEKEEPING",
    "MODULES",
    "WARM_MODULES",
    "CorePlan",
    "CorePlanError",
    "Machine",
    "Tier",
    "WaitKind",
    "format_cpulist",
    "parse_cpulist",
    "plan_auto",
    "plan_from_config",
    "tier_of",
]

# Data-flow order (ingress to journal): the order used whenever modules are listed.
MODULES: Final[tuple[str, ...]] = ("feed", "oracle", "sonar", "sentinel", "execution", "journal")
# Hot modules in the order they get the best CPUs: the signal -> order hop (oracle -> execution)
# is the latency the engine is judged on, so execution comes first and oracle second.
HOT_PRIORITY: Final[tuple[str, ...]] = ("execution", "oracle", "feed")
HOT_MODULES: Final[frozenset[str]] = frozenset(HOT_PRIORITY)
WARM_MODULES: Final[tuple[str, ...]] = ("sentinel", "sonar")
COLD_MODULES: Final[tuple[str, ...]] = ("journal",)
# Not a module: the CPU left to the kernel, interrupts and the separate monitor process.
HOUSEKEEPING: Final = "housekeeping"

_SYSFS_CPU: Final = Path("/sys/devices/system/cpu")


class CorePlanError(ValueError):
    """A ``[cores]`` configuration that cannot be run on this machine."""


class Tier(StrEnum):
    """How much a module's latency matters, which decides what CPU it deserves."""

    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


class WaitKind(StrEnum):
    """How a consumer waits for its ring: the cost of waking trades against CPU ownership.

    busy-spin: poll without pause; ~1 µs hand-off, but only sane alone on a dedicated CPU.
    spin-yield: poll, calling ``sched_yield`` between polls; lets a co-located thread run.
    spin-park: spin briefly, then sleep; costs tens of µs to wake (see shm-ipc trap 7).
    """

    BUSY_SPIN = "busy-spin"
    SPIN_YIELD = "spin-yield"
    SPIN_PARK = "spin-park"


_TIERS: Final[Mapping[str, Tier]] = MappingProxyType(
    {m: Tier.HOT for m in HOT_PRIORITY}
    | {m: Tier.WARM for m in WARM_MODULES}
    | {m: Tier.COLD for m in COLD_MODULES}
)


def tier_of(module: str) -> Tier:
    """Tier of a module name; raises KeyError for names that are not engine modules."""
    return _TIERS[module]


# --------------------------------------------------------------------------------------------
# cpulist syntax


def parse_cpulist(text: str) -> list[int]:
    """Parse the kernel's cpulist syntax ("0-3,8,10-11") into a sorted list without repeats.

    The same syntax appears in sysfs, /proc status files and kernel arguments, so every
    reader in Vajra goes through this one function. An empty string (or the "(null)" some
    kernels print for an unset mask) is the empty set. Range strides ("0-15:2") are accepted
    because ``isolcpus=`` accepts them.
    """
    text = text.strip()
    if not text or text == "(null)":
        return []
    cpus: set[int] = set()
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            raise ValueError(f"empty element in cpulist {text!r}")
        stride = 1
        if ":" in part:
            part, _, stride_text = part.partition(":")
            stride = _cpu_number(stride_text, text)
            if stride < 1:
                raise ValueError(f"stride must be at least 1 in cpulist {text!r}")
        if "-" in part:
            lo_text, _, hi_text = part.partition("-")
            lo, hi = _cpu_number(lo_text, text), _cpu_number(hi_text, text)
            if hi < lo:
                raise ValueError(f"descending range {part!r} in cpulist {text!r}")
            cpus.update(range(lo, hi + 1, stride))
        else:
            cpus.add(_cpu_number(part, text))
    return sorted(cpus)


def _cpu_number(token: str, whole: str) -> int:
    token = token.strip()
    if not token.isdigit() or not token.isascii():
        raise ValueError(f"{token!r} is not a CPU number in cpulist {whole!r}")
    return int(token)


def format_cpulist(cpus: Iterable[int]) -> str:
    """Format CPUs the way the kernel prints them, so messages can be pasted into kernel args."""
    ordered = sorted(set(cpus))
    if any(c < 0 for c in ordered):
        raise ValueError(f"negative CPU number in {ordered}")
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


# --------------------------------------------------------------------------------------------
# the machine


@dataclass(frozen=True)
class Machine:
    """The CPUs the planner may use and the topology facts that change where modules go.

    ``siblings`` maps a CPU to all SMT threads of its physical core (itself included); a CPU
    missing from the map is treated as a core of its own, which is the safe reading when
    sysfs does not tell.
    """

    cpus: tuple[int, ...]
    online: tuple[int, ...] = ()
    isolated: frozenset[int] = frozenset()
    siblings: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    nohz_full: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        cpus = tuple(sorted(set(self.cpus)))
        if not cpus:
            raise ValueError("a machine needs at least one usable CPU")
        if cpus[0] < 0:
            raise ValueError(f"negative CPU number in {cpus}")
        online = tuple(sorted(set(self.online))) or cpus
        missing = set(cpus) - set(online)
        if missing:
            raise ValueError(f"usable cpus {format_cpulist(missing)} are not online")
        siblings = {
            cpu: tuple(sorted(set(sibs) | {cpu})) for cpu, sibs in sorted(self.siblings.items())
        }
        for cpu, sibs in siblings.items():
            for other in sibs:
                if other in siblings and siblings[other] != sibs:
                    raise ValueError(
                        f"inconsistent SMT siblings: cpu {cpu} -> {sibs}, "
                        f"cpu {other} -> {siblings[other]}"
                    )
        object.__setattr__(self, "cpus", cpus)
        object.__setattr__(self, "online", online)
        object.__setattr__(self, "isolated", frozenset(self.isolated))
        object.__setattr__(self, "nohz_full", frozenset(self.nohz_full))
        object.__setattr__(self, "siblings", MappingProxyType(siblings))

    def core_of(self, cpu: int) -> tuple[int, ...]:
        """All SMT threads of ``cpu``'s physical core (online or not), ``cpu`` included."""
        return self.siblings.get(cpu, (cpu,))

    def same_core(self, a: int, b: int) -> bool:
        return a == b or b in self.core_of(a)

    def active_siblings(self, cpu: int) -> tuple[int, ...]:
        """Online SMT siblings other than ``cpu``: the threads that can steal its core."""
        online = set(self.online)
        return tuple(s for s in self.core_of(cpu) if s != cpu and s in online)

    def cores(self) -> tuple[tuple[int, ...], ...]:
        """Physical cores as tuples of their usable CPUs, ordered by lowest CPU."""
        seen: dict[tuple[int, ...], list[int]] = {}
        for cpu in self.cpus:
            seen.setdefault(self.core_of(cpu), []).append(cpu)
        return tuple(sorted(tuple(v) for v in seen.values()))

    @classmethod
    def detect(
        cls,
        *,
        sysfs_cpu: Path = _SYSFS_CPU,
        affinity: Collection[int] | None = None,
        proc_cgroup: Path = Path("/proc/self/cgroup"),
        cgroup_root: Path = Path("/sys/fs/cgroup"),
        include_isolated: bool = True,
    ) -> Machine:
        """Read the running machine; every sysfs file is optional (containers hide some).

        ``cpus`` is the current affinity, with one exception: the kernel starts every process
        outside ``isolcpus=`` CPUs, so a process with exactly that default mask would never
        see the isolated cores it was configured for. When the affinity equals
        "cgroup cpuset minus isolated", the isolated CPUs of the cpuset are added, because
        ``sched_setaffinity`` may move threads there. An affinity narrowed any further
        (taskset, docker --cpuset-cpus) is respected as is.
        """
        current = sorted(os.sched_getaffinity(0) if affinity is None else affinity)
        online = _read_cpulist(sysfs_cpu / "online") or current
        isolated = frozenset(_read_cpulist(sysfs_cpu / "isolated") or ())
        nohz_full = frozenset(_read_cpulist(sysfs_cpu / "nohz_full") or ())
        usable = set(current)
        if include_isolated and isolated and not usable & isolated:
            cpuset = _read_cgroup_cpuset(proc_cgroup, cgroup_root)
            if cpuset is not None:
                reachable = set(cpuset) & set(online)
                if usable == reachable - isolated:
                    usable |= reachable & isolated
        siblings: dict[int, tuple[int, ...]] = {}
        for cpu in sorted(set(online) | usable):
            sibs = _read_cpulist(sysfs_cpu / f"cpu{cpu}" / "topology" / "thread_siblings_list")
            siblings[cpu] = tuple(sibs) if sibs else (cpu,)
        # Siblings lists are read one file at a time and can race with hotplug; keep only
        # symmetric entries so that one odd read degrades to "own core" instead of failing.
        consistent = {
            cpu: sibs
            for cpu, sibs in siblings.items()
            if all(siblings.get(o, sibs) == sibs for o in sibs)
        }
        return cls(
            cpus=tuple(sorted(usable)),
            online=tuple(sorted(set(online) | usable)),
            isolated=isolated,
            siblings=consistent,
            nohz_full=nohz_full,
        )


def _read_cpulist(path: Path) -> list[int] | None:
    try:
        return parse_cpulist(path.read_text())
    except (OSError, ValueError):
        return None


def _read_cgroup_cpuset(proc_cgroup: Path, cgroup_root: Path) -> list[int] | None:
    """CPUs the cgroup cpuset allows (v2 unified or v1 cpuset hierarchy), None if unknown."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    candidates: list[tuple[Path, str]] = []
    for line in lines:
        hier, _, rest = line.partition(":")
        controllers, _, rel = rest.partition(":")
        rel = rel.lstrip("/")
        if hier == "0" and controllers == "":
            candidates.append((cgroup_root / rel, "cpuset.cpus.effective"))
        elif "cpuset" in controllers.split(","):
            candidates.append((cgroup_root / "cpuset" / rel, "cpuset.effective_cpus"))
    for directory, name in candidates:
        current = directory
        while True:
            cpus = _read_cpulist(current / name)
            if cpus:
                return cpus
            if current == cgroup_root or current.parent == current:
                break
            current = current.parent
    return None


# --------------------------------------------------------------------------------------------
# the plan


@dataclass(frozen=True)
class CorePlan:
    """Module -> CPU and module -> wait strategy, plus why; ``shared`` is derived, not given.

    ``shared`` is true when any module has company on its CPU (another module or the
    housekeeping work), i.e. when some hand-off may cost a context switch.
    """

    assignments: Mapping[str, int]
    waits: Mapping[str, WaitKind]
    housekeeping: int
    notes: tuple[str, ...] = ()
    shared: bool = field(init=False)

    def __post_init__(self) -> None:
        for name, mapping in (("assignments", self.assignments), ("waits", self.waits)):
            extra = set(mapping) - set(MODULES)
            missing = set(MODULES) - set(mapping)
            if extra or missing:
                raise ValueError(
                    f"{name} must name exactly the modules {', '.join(MODULES)}; "
                    f"missing {sorted(missing)}, unknown {sorted(extra)}"
                )
        assignments = {m: int(self.assignments[m]) for m in MODULES}
        waits = {m: WaitKind(self.waits[m]) for m in MODULES}
        object.__setattr__(self, "assignments", MappingProxyType(assignments))
        object.__setattr__(self, "waits", MappingProxyType(waits))
        object.__setattr__(self, "notes", tuple(self.notes))
        shared = any(
            cpu == self.housekeeping or list(assignments.values()).count(cpu) > 1
            for cpu in assignments.values()
        )
        object.__setattr__(self, "shared", shared)

    def modules_on(self, cpu: int) -> tuple[str, ...]:
        """Modules placed on ``cpu``, in data-flow order (housekeeping is not a module)."""
        return tuple(m for m in MODULES if self.assignments[m] == cpu)

    def cpus(self) -> tuple[int, ...]:
        """Every CPU the plan uses, housekeeping included."""
        return tuple(sorted(set(self.assignments.values()) | {self.housekeeping}))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for ``vajra doctor --json`` and the dashboard."""
        return {
            "assignments": dict(self.assignments),
            "waits": {m: str(w) for m, w in self.waits.items()},
            "housekeeping": self.housekeeping,
            "shared": self.shared,
            "notes": list(self.notes),
        }


def plan_auto(machine: Machine) -> CorePlan:
    """Place every module on ``machine`` and pick its wait strategy.

    Order of decisions, each justified by what it protects:

    1. Housekeeping goes to the lowest non-isolated CPU (isolated CPUs are the ones the
       operator cleared for latency work; CPU 0 usually takes the interrupts anyway).
    2. Hot modules, in priority order execution, oracle, feed, take one CPU per physical core
       (isolated cores first), then the housekeeping core's other SMT threads, then SMT
       threads of cores already holding a hot module: a logical CPU of one's own (even one
       sharing execution units) beats time-sharing a CPU, where a hand-off costs a switch.
    3. With fewer than three non-housekeeping CPUs, feed - which waits on the network anyway -
       joins the housekeeping CPU, and execution and oracle share what is left, so the
       measured signal -> order hop stays off the CPU that takes interrupts.
    4. Warm then cold modules take leftover CPUs: whole free cores, then the housekeeping
       core's siblings, then second threads of free cores, then siblings of hot cores; with
       nothing left they join housekeeping.
    5. Waits follow placement (see ``_default_wait``).
    """
    hk = _choose_housekeeping(machine)
    assignments: dict[str, int] = {}
    if len(machine.cpus) == 1:
        assignments = dict.fromkeys(MODULES, hk)
    else:
        slots = _hot_slots(machine, hk)
        if len(slots) >= len(HOT_PRIORITY):
            assignments.update(zip(HOT_PRIORITY, slots, strict=False))
        else:
            assignments["execution"] = slots[0]
            assignments["oracle"] = slots[1] if len(slots) > 1 else slots[0]
            assignments["feed"] = hk
        spare = _spare_order(machine, hk, [assignments[m] for m in HOT_PRIORITY])
        for module in (*WARM_MODULES, *COLD_MODULES):
            assignments[module] = spare.pop(0) if spare else hk
    waits = {m: _default_wait(m, assignments, hk, machine) for m in MODULES}
    notes = _explain(machine, assignments, waits, hk, overrides={}, auto=True)
    return CorePlan(assignments=assignments, waits=waits, housekeeping=hk, notes=tuple(notes))


def _choose_housekeeping(machine: Machine) -> int:
    def key(cpu: int) -> tuple[bool, bool, int]:
        return (cpu in machine.isolated, cpu in machine.nohz_full, cpu)

    return min(machine.cpus, key=key)


def _hot_slots(machine: Machine, hk: int) -> list[int]:
    """Non-housekeeping CPUs in the order hot modules should take them."""
    hk_core = machine.core_of(hk)

    def pref(cpu: int) -> tuple[bool, bool, int]:
        return (cpu not in machine.isolated, cpu not in machine.nohz_full, cpu)

    whole: list[int] = []
    others_of_whole: list[int] = []
    hk_siblings: list[int] = []
    for core in machine.cores():
        if machine.core_of(core[0]) == hk_core:
            hk_siblings.extend(c for c in core if c != hk)
            continue
        ranked = sorted(core, key=pref)
        whole.append(ranked[0])
        others_of_whole.extend(ranked[1:])
    whole.sort(key=pref)
    hk_siblings.sort(key=pref)
    # SMT threads of hot cores come last, those of the best-ranked cores first, so that a
    # second thread goes next to the highest-priority module's core.
    rank = {machine.core_of(c): i for i, c in enumerate(whole)}
    others_of_whole.sort(key=lambda c: (rank[machine.core_of(c)], pref(c)))
    return whole + hk_siblings + others_of_whole


def _spare_order(machine: Machine, hk: int, hot_cpus: list[int]) -> list[int]:
    used = set(hot_cpus) | {hk}
    hk_core = machine.core_of(hk)
    hot_cores = {machine.core_of(c) for c in hot_cpus}
    first_threads: list[int] = []
    second_threads: list[int] = []
    hk_siblings: list[int] = []
    hot_siblings: list[int] = []
    for core in machine.cores():
        free = [c for c in core if c not in used]
        key = machine.core_of(core[0])
        if key == hk_core:
            hk_siblings.extend(free)
        elif key in hot_cores:
            hot_siblings.extend(free)
        elif free:
            first_threads.append(free[0])
            second_threads.extend(free[1:])
    return first_threads + hk_siblings + second_threads + hot_siblings


def _default_wait(
    module: str, assignments: Mapping[str, int], hk: int, machine: Machine
) -> WaitKind:
    """The wait a module gets unless configured otherwise.

    Hot: busy-spin only alone on a non-housekeeping CPU, else spin-yield so the co-located
    thread gets the CPU back at every poll. Warm: spin-yield when it has a physical core to
    itself (an idle core costs nothing to poll), spin-park when it shares a CPU or an SMT
    sibling with anything, so that idle polling does not take execution units from a hot
    thread. Cold modules block on I/O: spin-park always.
    """
    tier = _TIERS[module]
    cpu = assignments[module]
    alone = cpu != hk and sum(1 for c in assignments.values() if c == cpu) == 1
    if tier is Tier.HOT:
        return WaitKind.BUSY_SPIN if alone else WaitKind.SPIN_YIELD
    if tier is Tier.COLD or not alone:
        return WaitKind.SPIN_PARK
    busy_core = any(
        machine.same_core(cpu, other_cpu)
        for other, other_cpu in assignments.items()
        if other != module
    ) or machine.same_core(cpu, hk)
    return WaitKind.SPIN_PARK if busy_core else WaitKind.SPIN_YIELD


def _cpus_phrase(cpus: Collection[int]) -> str:
    return f"cpu {format_cpulist(cpus)}" if len(cpus) == 1 else f"cpus {format_cpulist(cpus)}"


def _join(names: Iterable[str]) -> str:
    items = list(names)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _explain(
    machine: Machine,
    assignments: Mapping[str, int],
    waits: Mapping[str, WaitKind],
    hk: int,
    *,
    overrides: Mapping[str, tuple[WaitKind, WaitKind]],
    auto: bool,
) -> list[str]:
    notes: list[str] = []
    cpus = machine.cpus
    n = len(cpus)
    lonely_hot = [m for m in HOT_PRIORITY if waits[m] is WaitKind.BUSY_SPIN]
    if len(cpus) == 1:
        notes.append(
            f"1 CPU: every module and housekeeping share cpu {cpus[0]}; hot modules use "
            "spin-yield, the rest spin-park, and a hand-off can cost a context switch "
            "(tens of µs) instead of ~1 µs"
        )
    elif auto and len(lonely_hot) < len(HOT_PRIORITY):
        who = (
            f"only {_join(lonely_hot)} {'has' if len(lonely_hot) == 1 else 'have'} a CPU "
            "to busy-spin on"
            if lonely_hot
            else "no hot module has a CPU to itself, so none busy-spins"
        )
        notes.append(
            f"{n} CPUs for 3 hot modules plus housekeeping: {who}; "
            f"{len(HOT_PRIORITY) + 1} CPUs would give every hot module one"
        )
    # One note per CPU that hosts more than one thing.
    for cpu in sorted(set(assignments.values()) | {hk}):
        mods = [m for m in MODULES if assignments[m] == cpu]
        if not mods or (len(mods) == 1 and cpu != hk):
            continue
        where = f"housekeeping cpu {cpu}" if cpu == hk else f"cpu {cpu}"
        verb = "shares" if len(mods) == 1 else "share"
        kinds = sorted({waits[m] for m in mods}, key=list(WaitKind).index)
        if len(kinds) == 1:
            use = "uses" if len(mods) == 1 else "use"
            notes.append(f"{_join(mods)} {verb} {where} and {use} {kinds[0]}")
        else:
            parts = "; ".join(f"{_join(m for m in mods if waits[m] is k)} {k}" for k in kinds)
            notes.append(f"{_join(mods)} {verb} {where}: {parts}")
    # SMT: hot modules on one physical core, and anything sitting next to a hot module.
    hot_placed = [(m, assignments[m]) for m in HOT_PRIORITY]
    for i, (a, ca) in enumerate(hot_placed):
        for b, cb in hot_placed[i + 1 :]:
            if ca != cb and machine.same_core(ca, cb):
                notes.append(
                    f"{a} (cpu {ca}) and {b} (cpu {cb}) are SMT threads of one physical core: "
                    "each has a logical CPU of its own but they compete for its execution units"
                )
    for module in MODULES:
        cpu = assignments[module]
        if cpu == hk:
            continue  # already described by the housekeeping sharing note
        if module in HOT_MODULES:
            if cpu != hk and machine.same_core(cpu, hk):
                notes.append(
                    f"{module} (cpu {cpu}) is an SMT thread of housekeeping cpu {hk}: "
                    "interrupts and the monitor process there slow it down"
                )
            continue
        neighbours = [h for h, hc in hot_placed if hc != cpu and machine.same_core(cpu, hc)]
        if neighbours:
            notes.append(
                f"{module} (cpu {cpu}) is an SMT thread of the core running {_join(neighbours)}: "
                f"it uses {waits[module]}"
                + (
                    " so that idle polling does not slow them"
                    if waits[module] is WaitKind.SPIN_PARK
                    else ""
                )
            )
    # Isolation.
    usable_isolated = sorted(machine.isolated & set(cpus))
    if n > 1 and not usable_isolated:
        notes.append(
            "no isolated CPUs (kernel isolcpus=): other processes and kernel threads may "
            "preempt the hot modules; `vajra doctor` prints the kernel arguments to set"
        )
    elif usable_isolated:
        hot_cpus = {assignments[m] for m in HOT_PRIORITY}
        idle_isolated = [c for c in usable_isolated if c not in hot_cpus]
        for m in HOT_PRIORITY:
            cpu = assignments[m]
            if cpu not in machine.isolated and idle_isolated:
                notes.append(
                    f"{m} runs on non-isolated cpu {cpu} while isolated "
                    f"{_cpus_phrase(idle_isolated)} host no hot module"
                    + (" (auto keeps hot modules on distinct physical cores first)" if auto else "")
                )
        if hk in machine.isolated:
            notes.append(
                f"housekeeping is on isolated cpu {hk}: the kernel does not balance load onto "
                "isolated CPUs, so OS and monitor work there is never spread out"
            )
    outside = sorted(machine.isolated - set(cpus))
    if outside:
        notes.append(
            f"isolated {_cpus_phrase(outside)} {'is' if len(outside) == 1 else 'are'} outside "
            f"this process's CPU set "
            f"({format_cpulist(cpus)}) and are not used"
        )
    # Overrides, the dangerous ones loudly.
    for module, (wait, default) in overrides.items():
        cpu = assignments[module]
        company = [m for m in MODULES if assignments[m] == cpu and m != module]
        if wait is WaitKind.BUSY_SPIN and (company or cpu == hk):
            victims = [*company, *(["housekeeping (OS, monitor)"] if cpu == hk else [])]
            notes.append(
                f"WARNING: [cores.wait] {module} = busy-spin on cpu {cpu}, which it shares "
                f"with {_join(victims)}: the spinner keeps the CPU for whole scheduler time "
                "slices, so they stall for milliseconds at a time"
            )
        else:
            notes.append(f"[cores.wait] {module} = {wait} (the derived wait is {default})")
    return notes


# --------------------------------------------------------------------------------------------
# configuration


def plan_from_config(cfg: Mapping[str, object], machine: Machine) -> CorePlan:
    """Build the plan from the ``[cores]`` table of the TOML configuration.

    ``plan = "auto"`` (also the meaning of an empty table) defers to ``plan_auto``; module
    keys with CPU numbers make an explicit plan, which must place every module and
    housekeeping on a CPU this process may use. ``[cores.wait]`` overrides the derived wait
    of any module in either mode. Errors name the offending key and the allowed CPUs,
    because the person reading them is editing a config file, not this code.
    """
    allowed = format_cpulist(machine.cpus)
    table = dict(cfg)
    plan_value = table.pop("plan", None)
    wait_table = table.pop("wait", {})
    known = (*MODULES, HOUSEKEEPING)
    for key in table:
        if key not in known:
            raise CorePlanError(
                f"[cores] {key}: unknown key; expected plan, wait, housekeeping or a module "
                f"({', '.join(MODULES)})"
            )
    if plan_value is None:
        plan_value = "explicit" if table else "auto"
    if plan_value == "auto":
        if table:
            raise CorePlanError(
                f'[cores] plan = "auto" cannot be combined with explicit cpus '
                f"({', '.join(table)}): remove them or drop the plan key"
            )
        base = plan_auto(machine)
        assignments = dict(base.assignments)
        hk = base.housekeeping
    elif plan_value == "explicit":
        missing = [k for k in known if k not in table]
        if missing:
            raise CorePlanError(
                f"[cores] an explicit plan needs a cpu for every module and housekeeping; "
                f"missing {', '.join(missing)} (allowed cpus: {allowed})"
            )
        placed = {key: _config_cpu(key, table[key], machine) for key in known}
        hk = placed.pop(HOUSEKEEPING)
        assignments = placed
    else:
        raise CorePlanError(f'[cores] plan = {plan_value!r}: expected "auto" or "explicit"')
    overrides = _config_waits(wait_table)
    defaults = {m: _default_wait(m, assignments, hk, machine) for m in MODULES}
    waits = defaults | overrides
    notes = _explain(
        machine,
        assignments,
        waits,
        hk,
        overrides={m: (w, defaults[m]) for m, w in overrides.items()},
        auto=plan_value == "auto",
    )
    return CorePlan(assignments=assignments, waits=waits, housekeeping=hk, notes=tuple(notes))


def _config_cpu(key: str, value: object, machine: Machine) -> int:
    allowed = format_cpulist(machine.cpus)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CorePlanError(
            f"[cores] {key} = {value!r}: expected a cpu number (allowed cpus: {allowed})"
        )
    if value not in machine.cpus:
        raise CorePlanError(
            f"[cores] {key} = {value}: cpu {value} is not available to this process "
            f"(allowed cpus: {allowed})"
        )
    return value


def _config_waits(wait_table: object) -> dict[str, WaitKind]:
    if not isinstance(wait_table, Mapping):
        raise CorePlanError(f"[cores.wait] must be a table of module = wait, got {wait_table!r}")
    choices = ", ".join(w.value for w in WaitKind)
    overrides: dict[str, WaitKind] = {}
    for key, value in wait_table.items():
        if key not in MODULES:
            raise CorePlanError(
                f"[cores.wait] {key}: unknown module; expected one of {', '.join(MODULES)}"
            )
        try:
            overrides[key] = WaitKind(value)
        except ValueError:
            raise CorePlanError(
                f"[cores.wait] {key} = {value!r}: expected one of {choices}"
            ) from None
    return {m: overrides[m] for m in MODULES if m in overrides}
