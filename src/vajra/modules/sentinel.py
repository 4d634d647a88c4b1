"""Sentinel: the risk gate on every order, and the emergency state machine (docs/risk.md).

Sans-I/O: Sentinel owns no socket and reads no clock. The caller feeds it what it observed
(`on_rtt`, `on_inflight`, `on_pnl`, `on_position`, `on_otr`, `on_feed`, `heartbeat`,
`on_kill_flag`), calls `evaluate(now_ns)` once per loop iteration, and asks `check_order(...)`
before every single order write. Times are the caller's clock (`time.perf_counter_ns()` live,
simulated time in tests), the same clock for every input.

Ownership: one `Sentinel` belongs to one thread, the thread that writes orders (Execution):
the pre-trade check must see the inputs synchronously and it measures the RTTs itself. Other
threads never touch the object; they read the seqlocked `RISK` block that `RiskWriter`
publishes (the whole block via `read_risk`, or the state word alone via `RiskStateView`, a single
8-byte load for Sonar's SENTINEL_OK condition).

The emergency states, most severe last (NautilusTrader's ACTIVE / REDUCING / HALTED plus a
latched kill):

- NORMAL: orders allowed.
- DEGRADED: orders allowed, but something is near its limit (RTT rising, OTR or the day's loss
  at `warn_fraction` of its limit, a position over the limit): Execution shrinks its ladder
  and prefers orders that reduce exposure.
- LOCKDOWN: no new orders; everything resting is cancelled (Execution performs the cancel-all
  that `evaluate` demands once); automatic re-arm once nothing bad has been seen for
  `healthy_ns` (hysteresis).
- KILLED: as LOCKDOWN, but latched: only `reset()`, an explicit operator action, leaves it, and
  only into LOCKDOWN, so even a reset re-arms through the same health check.

Everything that changes the state lives in this module, and every change goes through the
table `TRANSITIONS` (h11's `_state.py` rule): an edge that is not in the table, or a reason the
edge does not accept, raises `IllegalTransition` after latching KILLED (reason INTERNAL): a bug
in the risk code fails safe, never open.
"""

from __future__ import annotations

import enum
import math
from array import array
from collections import deque
from dataclasses import dataclass, fields

from vajra.shm.layout import Field
from vajra.shm.seqlock import SeqlockReader, SeqlockWriter, seqlocked


class EmergencyState(enum.IntEnum):
    NORMAL = 0
    DEGRADED = 1
    LOCKDOWN = 2
    KILLED = 3


class Reason(enum.IntEnum):
    """Why the state is what it is (recorded with every change)."""

    NONE = 0  # the initial NORMAL
    RTT = 1  # order round trip (place -> ack)
    CANCEL_RTT = 2  # cancel round trip (cancel -> cancel ack)
    OTR = 3  # order-to-trade ratio watchdog
    DAILY_LOSS = 4
    FEED_STALE = 5
    HEARTBEAT = 6  # a watched module stopped beating
    KILL_FLAG = 7  # the control block's kill word
    MANUAL = 8  # operator: halt() or kill()
    POSITION = 9  # a position over max_position (from fills: the pre-trade check stops orders)
    HEALTHY = 10  # recovery: the causes cleared and stayed clear
    RESET = 11  # operator reset out of KILLED
    INTERNAL = 12  # an illegal transition was attempted: a bug, latched as a kill


class Verdict(enum.IntEnum):
    """The answer of `check_order`: OK, or why the order is refused (never a silent drop:
    Execution turns a refusal into a journalled event)."""

    OK = 0
    KILLED = 1
    LOCKDOWN = 2
    INVALID = 3  # qty, price or notional not positive, or side_sign not +1/-1
    DAILY_LOSS = 4
    NOTIONAL = 5
    OPEN_ORDERS = 6
    POSITION = 7


class RttKind(enum.IntEnum):
    ORDER = 0
    CANCEL = 1


#: Modules watched by `heartbeat` are numbered 0 .. MAX_MODULES - 1 (a bit each in the block).
MAX_MODULES = 16

_NEVER = -(1 << 62)  # "no such time yet": now - _NEVER exceeds every configured period

NORMAL, DEGRADED, LOCKDOWN, KILLED = (
    EmergencyState.NORMAL,
    EmergencyState.DEGRADED,
    EmergencyState.LOCKDOWN,
    EmergencyState.KILLED,
)


# -- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentinelConfig:
    """Frozen, with documented defaults; every field is checked (ValueError names the field).
    Money in paise, quantities in units, times in ns. docs/risk.md explains each choice."""

    # RTT lockdown rule: k breach episodes among the last N samples of one kind (see docs)
    rtt_lockdown_ns: int = 20_000_000  # an RTT above this is a breach
    rtt_window: int = 20  # N: samples of each kind the rule looks at
    rtt_breach_k: int = 3  # k: breach episodes in the window that lock down
    rtt_burst_ns: int = 2_000_000  # breaches acked within this of an episode's first are one
    rtt_hard_ns: int = 100_000_000  # one RTT, or one request outstanding, this long: at once
    rtt_degraded_ns: int = 10_000_000  # k samples of the window above this: DEGRADED
    rtt_stats_samples: int = 256  # dashboard ring for p50/p99 (a power of two >= rtt_window)
    # hysteresis
    healthy_ns: int = 30_000_000_000  # LOCKDOWN re-arms after this long with nothing bad seen
    degraded_clear_ns: int = 1_000_000_000  # DEGRADED -> NORMAL after this long with no warning
    warn_fraction: float = 0.8  # OTR and the day's loss are DEGRADED at this fraction of limit
    # pre-trade limits
    max_position: int = 1_000  # |position after the order|, units per instrument
    max_notional_per_order: int = 50_000_000  # paise (Rs 5 lakh)
    max_open_orders: int = 20  # resting orders, this one excluded
    daily_loss_limit: int = 5_000_000  # paise (Rs 50,000), realised + marked unrealised
    # watchdogs
    feed_stale_ns: int = 2_000_000_000  # no market event for this long: LOCKDOWN
    heartbeat_timeout_ns: int = 1_000_000_000  # a watched module silent this long: LOCKDOWN
    otr_ceiling: float = 50.0  # order-to-trade ratio: LOCKDOWN at it, DEGRADED at the warn level

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"SentinelConfig.{f.name} must be a number, got {v!r}")
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"SentinelConfig.{f.name} must be finite, got {v!r}")
        positive = (
            "rtt_lockdown_ns",
            "rtt_window",
            "rtt_breach_k",
            "rtt_hard_ns",
            "rtt_degraded_ns",
            "rtt_stats_samples",
            "healthy_ns",
            "max_position",
            "max_notional_per_order",
            "max_open_orders",
            "daily_loss_limit",
            "feed_stale_ns",
            "heartbeat_timeout_ns",
            "otr_ceiling",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"SentinelConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("rtt_burst_ns", "degraded_clear_ns"):
            if getattr(self, name) < 0:
                raise ValueError(f"SentinelConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.rtt_breach_k > self.rtt_window:
            raise ValueError(
                f"SentinelConfig.rtt_breach_k must be <= rtt_window ({self.rtt_window}), "
                f"got {self.rtt_breach_k}"
            )
        s = self.rtt_stats_samples
        if s & (s - 1) or s < self.rtt_window:
            raise ValueError(
                f"SentinelConfig.rtt_stats_samples must be a power of two >= rtt_window "
                f"({self.rtt_window}), got {s}"
            )
        if not self.rtt_degraded_ns < self.rtt_lockdown_ns:
            raise ValueError(
                f"SentinelConfig.rtt_degraded_ns must be < rtt_lockdown_ns "
                f"({self.rtt_lockdown_ns}), got {self.rtt_degraded_ns}"
            )
        if not self.rtt_hard_ns > self.rtt_lockdown_ns:
            raise ValueError(
                f"SentinelConfig.rtt_hard_ns must be > rtt_lockdown_ns "
                f"({self.rtt_lockdown_ns}), got {self.rtt_hard_ns}"
            )
        if not 0.0 < self.warn_fraction < 1.0:
            raise ValueError(
                f"SentinelConfig.warn_fraction must be in (0, 1), got {self.warn_fraction!r}"
            )


# -- the state machine: everything that can change the state is in this table ---------------


class IllegalTransition(RuntimeError):
    """An edge the table does not have, or a reason it does not accept (a bug in the caller of
    `transition`; Sentinel latches KILLED before raising it)."""


@dataclass(frozen=True, slots=True)
class Edge:
    cancel_all: bool  # entering through this edge demands one cancel-all of everything resting
    reasons: frozenset[Reason]  # the reasons that may cause it
    doc: str


_DEGRADE_CAUSES = frozenset(
    {Reason.RTT, Reason.CANCEL_RTT, Reason.OTR, Reason.DAILY_LOSS, Reason.POSITION}
)
_LOCKDOWN_CAUSES = frozenset(
    {
        Reason.RTT,
        Reason.CANCEL_RTT,
        Reason.OTR,
        Reason.FEED_STALE,
        Reason.HEARTBEAT,
        Reason.MANUAL,
    }
)
_KILL_CAUSES = frozenset({Reason.KILL_FLAG, Reason.DAILY_LOSS, Reason.MANUAL, Reason.INTERNAL})
_HEALTHY = frozenset({Reason.HEALTHY})

TRANSITIONS: dict[tuple[EmergencyState, EmergencyState], Edge] = {
    (NORMAL, DEGRADED): Edge(False, _DEGRADE_CAUSES, "a warning: orders allowed, ladder shrinks"),
    (NORMAL, LOCKDOWN): Edge(True, _LOCKDOWN_CAUSES, "a tripped watchdog"),
    (NORMAL, KILLED): Edge(True, _KILL_CAUSES, "kill flag, daily loss, operator kill"),
    (DEGRADED, NORMAL): Edge(False, _HEALTHY, "no warning for degraded_clear_ns"),
    (DEGRADED, LOCKDOWN): Edge(True, _LOCKDOWN_CAUSES, "a tripped watchdog"),
    (DEGRADED, KILLED): Edge(True, _KILL_CAUSES, "kill flag, daily loss, operator kill"),
    (LOCKDOWN, NORMAL): Edge(False, _HEALTHY, "automatic re-arm: nothing bad for healthy_ns"),
    (LOCKDOWN, DEGRADED): Edge(False, _DEGRADE_CAUSES, "re-arm while a warning still stands"),
    (LOCKDOWN, KILLED): Edge(True, _KILL_CAUSES, "cancel-all again: a partial one is retried"),
    (KILLED, LOCKDOWN): Edge(False, frozenset({Reason.RESET}), "operator reset; re-arm waits"),
}
"""Every legal change (from, to). Absent edges are illegal: KILLED -> NORMAL/DEGRADED (a kill
is left only by reset, into LOCKDOWN), and any state to itself (not a change)."""


def transition(state: EmergencyState, to: EmergencyState, reason: Reason) -> bool:
    """Check one change against the table; returns whether it demands a cancel-all."""
    edge = TRANSITIONS.get((state, to))
    if edge is None:
        raise IllegalTransition(f"no transition {state.name} -> {to.name}")
    if reason not in edge.reasons:
        raise IllegalTransition(f"{state.name} -> {to.name} cannot happen for {reason.name}")
    return edge.cancel_all


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded change: the state left, the state entered, why, and when."""

    prev: EmergencyState
    state: EmergencyState
    reason: Reason
    at_ns: int


# evaluate's results, preallocated: index state * 2 + cancel_all
_RESULTS: tuple[tuple[EmergencyState, bool], ...] = tuple(
    (s, c) for s in EmergencyState for c in (False, True)
)

_WARN, _EPISODE = 1, 2  # per-sample flags in the RTT ring

# hot-path constants: plain ints for the state, verdict members bound once (an Enum class
# attribute lookup costs more than a module global)
_LOCKDOWN_I, _KILLED_I = int(LOCKDOWN), int(KILLED)
_V_OK, _V_KILLED, _V_LOCKDOWN, _V_INVALID = (
    Verdict.OK,
    Verdict.KILLED,
    Verdict.LOCKDOWN,
    Verdict.INVALID,
)
_V_LOSS, _V_NOTIONAL, _V_OPEN, _V_POSITION = (
    Verdict.DAILY_LOSS,
    Verdict.NOTIONAL,
    Verdict.OPEN_ORDERS,
    Verdict.POSITION,
)


@dataclass(frozen=True, slots=True)
class RttStats:
    """Live RTT statistics of one kind (percentiles over the last `samples` RTTs, nearest rank;
    computed on demand, never per sample)."""

    last_ns: int
    p50_ns: int
    p99_ns: int
    max_ns: int
    samples: int  # in the percentile ring
    count: int  # since start
    breaches: int  # since start: samples above rtt_lockdown_ns
    window_episodes: int  # breach episodes among the last rtt_window samples
    window_warn: int  # samples above rtt_degraded_ns among the last rtt_window


class Sentinel:
    """Owned by one thread (Execution's). See the module docstring for the protocol."""

    __slots__ = (
        "_episode_start",
        "_episodes",
        "_flags",
        "_hard",
        "_hb",
        "_inflight",
        "_last_bad_ns",
        "_loss_floor",
        "_loss_warn",
        "_mask",
        "_max_notional",
        "_max_open",
        "_max_pos",
        "_otr_warn",
        "_pending_cancel",
        "_positions",
        "_rtt",
        "_rtt_bad_ns",
        "_st",
        "_warn_bad_ns",
        "_warns",
        "cancel_alls",
        "cfg",
        "checks",
        "entered_ns",
        "entered_reason",
        "feed_age_ns",
        "feed_last_ns",
        "halted",
        "heartbeat_stale",
        "heartbeat_watched",
        "history",
        "kill_seq",
        "last_trip_ns",
        "otr",
        "pnl",
        "positions_over",
        "reason",
        "refused",
        "rtt_breaches",
        "rtt_count",
        "rtt_last",
        "since_ns",
        "state",
        "transitions",
    )

    def __init__(self, cfg: SentinelConfig | None = None, now_ns: int = 0) -> None:
        """`now_ns` is the start time: the feed and heartbeat watchdogs count from it, so a
        feed that never delivers locks down `feed_stale_ns` after start."""
        self.cfg = cfg = cfg or SentinelConfig()
        self.state = NORMAL
        self._st = 0  # int(self.state), for the hot path
        self.reason = Reason.NONE
        self.since_ns = now_ns
        #: per state: the reason and time it was last entered (0 if never)
        self.entered_reason = [0] * len(EmergencyState)
        self.entered_ns = [0] * len(EmergencyState)
        self.entered_ns[NORMAL] = now_ns
        #: per reason: when it last caused a change
        self.last_trip_ns = [0] * len(Reason)
        #: the last 64 changes (allocates one small object per change, which is rare)
        self.history: deque[Transition] = deque(maxlen=64)
        self.transitions = 0
        self.cancel_alls = 0
        self._pending_cancel = False
        self._last_bad_ns = now_ns  # LOCKDOWN: last time any cause was seen bad
        self._warn_bad_ns = now_ns  # DEGRADED: last time any warning stood
        # RTT: one ring per kind; the rule window is its last rtt_window slots
        s = cfg.rtt_stats_samples
        self._mask = s - 1
        self._rtt = (array("q", bytes(8 * s)), array("q", bytes(8 * s)))
        self._flags = (bytearray(s), bytearray(s))
        self.rtt_count = [0, 0]
        self.rtt_last = [0, 0]
        self.rtt_breaches = [0, 0]
        self._episodes = [0, 0]
        self._warns = [0, 0]
        self._episode_start = [_NEVER, _NEVER]
        self._hard = [False, False]
        self._rtt_bad_ns = _NEVER
        self._inflight = [0, 0]  # send time of the oldest request awaiting its answer, 0: none
        # money, positions, OTR
        self.pnl = 0
        self._loss_floor = -cfg.daily_loss_limit
        self._loss_warn = -int(cfg.warn_fraction * cfg.daily_loss_limit)
        self._max_notional = cfg.max_notional_per_order
        self._max_open = cfg.max_open_orders
        self._max_pos = cfg.max_position
        self._positions: dict[int, int] = {}
        self.positions_over = 0
        self.otr = 0.0
        self._otr_warn = cfg.warn_fraction * cfg.otr_ceiling
        # feed and heartbeats
        self.feed_last_ns = now_ns
        self.feed_age_ns = 0
        self._hb = [0] * MAX_MODULES
        self.heartbeat_watched = 0  # bit i: module i is watched
        self.heartbeat_stale = 0  # bit i: module i was stale at the last evaluate
        # operator and kill
        self.halted = False
        self.kill_seq = 0
        # pre-trade counters
        self.checks = 0
        self.refused = [0] * len(Verdict)

    # -- inputs ----------------------------------------------------------------------------

    def on_rtt(self, kind: RttKind, rtt_ns: int, now_ns: int) -> None:
        """One measured round trip: ORDER = ack time - send time of a place (or modify), CANCEL =
        cancel-ack time - cancel send time; `now_ns` is when the answer was processed. O(1), no
        sorting. The lockdown rule is applied here, so the order after the tripping sample is
        already refused: k breach episodes among the last `rtt_window` samples, or one RTT of
        at least `rtt_hard_ns`. A breach within `rtt_burst_ns` of the first breach of its
        episode joins that episode: answers held up by one pause of ours (a GC, a preemption)
        arrive together and count once."""
        cfg = self.cfg
        k = kind
        ring, flags = self._rtt[k], self._flags[k]
        n = self.rtt_count[k]
        w = cfg.rtt_window
        if n >= w:  # the sample leaving the rule window
            old = flags[(n - w) & self._mask]
            if old & _EPISODE:
                self._episodes[k] -= 1
            if old & _WARN:
                self._warns[k] -= 1
        i = n & self._mask
        ring[i] = rtt_ns
        self.rtt_count[k] = n + 1
        self.rtt_last[k] = rtt_ns
        f = 0
        if rtt_ns > cfg.rtt_degraded_ns:
            f = _WARN
            self._warns[k] += 1
        if rtt_ns > cfg.rtt_lockdown_ns:
            self.rtt_breaches[k] += 1
            self._rtt_bad_ns = now_ns
            if now_ns - self._episode_start[k] > cfg.rtt_burst_ns:
                self._episode_start[k] = now_ns
                f |= _EPISODE
                self._episodes[k] += 1
            if rtt_ns >= cfg.rtt_hard_ns:
                self._hard[k] = True
            if self._st < LOCKDOWN and (self._hard[k] or self._episodes[k] >= cfg.rtt_breach_k):
                self._move(LOCKDOWN, Reason.CANCEL_RTT if k else Reason.RTT, now_ns)
        flags[i] = f

    def on_inflight(self, kind: RttKind, oldest_sent_ns: int) -> None:
        """The send time of the oldest request of `kind` still awaiting its answer (0: none).
        A broker that stops answering produces no RTT samples at all; this is how Sentinel sees
        it: outstanding for `rtt_hard_ns` locks down, outstanding beyond `rtt_lockdown_ns`
        degrades and, in LOCKDOWN, blocks the re-arm. Call it whenever the oldest changes
        (or every loop)."""
        self._inflight[kind] = oldest_sent_ns

    def on_pnl(self, pnl_paise: int) -> None:
        """The day's P&L so far (realised + unrealised marked to market, net of charges). At
        or below -daily_loss_limit `check_order` refuses at once and `evaluate` latches KILLED;
        at `warn_fraction` of the limit the state is DEGRADED."""
        self.pnl = pnl_paise

    def on_position(self, token: int, qty: int) -> None:
        """The net position of one instrument after a fill (units, signed). A position over
        `max_position` (fills of several orders can overshoot) makes the state DEGRADED; the
        pre-trade check then admits only orders that reduce it."""
        d = self._positions
        old = d.get(token, 0)
        d[token] = qty
        lim = self._max_pos
        self.positions_over += (abs(qty) > lim) - (abs(old) > lim)

    def on_otr(self, otr: float) -> None:
        """The current order-to-trade ratio as the exchange computes it for the day."""
        self.otr = otr

    def on_feed(self, now_ns: int, last_event_ns: int) -> None:
        """The market feed's newest event was received at `last_event_ns` (the caller's clock).
        `evaluate` locks down once it is older than `feed_stale_ns`."""
        if last_event_ns > self.feed_last_ns:
            self.feed_last_ns = last_event_ns
        self.feed_age_ns = now_ns - self.feed_last_ns

    def heartbeat(self, module_id: int, now_ns: int) -> None:
        """Module `module_id` (0 .. MAX_MODULES - 1) is alive. A module is watched from its first
        heartbeat until `unwatch`; silent for `heartbeat_timeout_ns`, it locks down."""
        if not 0 <= module_id < MAX_MODULES:
            raise ValueError(f"module_id must be in 0..{MAX_MODULES - 1}, got {module_id}")
        self._hb[module_id] = now_ns
        self.heartbeat_watched |= 1 << module_id

    def unwatch(self, module_id: int) -> None:
        """An orderly stop: module `module_id` is no longer expected to beat."""
        self.heartbeat_watched &= ~(1 << module_id)
        self.heartbeat_stale &= ~(1 << module_id)

    def on_kill_flag(self, now_ns: int, seq: int = 1) -> None:
        """The control block's kill word is set (`seq` is its value): KILLED at once, latched.
        The next `evaluate` demands the cancel-all. Idempotent."""
        self.kill_seq = seq
        if self._st != KILLED:
            self._move(KILLED, Reason.KILL_FLAG, now_ns)

    # -- operator actions --------------------------------------------------------------------

    def halt(self, now_ns: int) -> None:
        """Operator halt: LOCKDOWN (MANUAL) that does not re-arm until `resume`."""
        self.halted = True
        if self._st < LOCKDOWN:
            self._move(LOCKDOWN, Reason.MANUAL, now_ns)

    def resume(self, now_ns: int) -> None:
        """Lift an operator halt. Re-arm still waits `healthy_ns` from now."""
        if self.halted:
            self.halted = False
            self._last_bad_ns = max(self._last_bad_ns, now_ns)

    def kill(self, now_ns: int) -> None:
        """Operator kill: KILLED (MANUAL), latched."""
        if self._st != KILLED:
            self._move(KILLED, Reason.MANUAL, now_ns)

    def reset(self, now_ns: int, kill_word: int = 0) -> bool:
        """The explicit operator reset out of KILLED (the engine calls it on Command.REARM).
        Refused (False) while `kill_word` (the control block's, re-read by the caller) is set or
        the day's loss is at its limit. Accepted, it enters LOCKDOWN (RESET): the automatic
        re-arm then needs `healthy_ns` of health counted from now, like any lockdown."""
        if self._st != KILLED or kill_word or self.pnl <= self._loss_floor:
            return False
        self.kill_seq = 0
        self._move(LOCKDOWN, Reason.RESET, now_ns)
        return True

    def new_day(self) -> None:
        """Start of a trading day: the day's P&L and OTR start again (a kill stays latched)."""
        self.pnl = 0
        self.otr = 0.0

    # -- evaluation --------------------------------------------------------------------------

    def evaluate(self, now_ns: int) -> tuple[EmergencyState, bool]:
        """Apply the watchdogs at `now_ns`; returns (state, cancel_all). `cancel_all` is an
        edge: True exactly once, at the first evaluation after entering LOCKDOWN or KILLED;
        Execution must then cancel everything resting (and keep its own retry if a cancel
        fails: a cancel is always allowed). Allocation-free (the result is preallocated)."""
        if self._st != KILLED:
            self._assess(now_ns)
        pending = self._pending_cancel
        self._pending_cancel = False
        return _RESULTS[self._st * 2 + pending]

    def _assess(self, now: int) -> None:
        cfg = self.cfg
        if self.pnl <= self._loss_floor:
            self._move(KILLED, Reason.DAILY_LOSS, now)
            return
        sent_o, sent_c = self._inflight
        age_o = now - sent_o if sent_o else 0
        age_c = now - sent_c if sent_c else 0
        self.feed_age_ns = now - self.feed_last_ns
        feed_stale = self.feed_age_ns > cfg.feed_stale_ns
        stale_hb = self._stale_modules(now)
        if self._st == LOCKDOWN:
            # exit rule (hysteresis): nothing bad seen for healthy_ns. RTT evidence is any
            # sample above the threshold (`_rtt_bad_ns`, set by on_rtt) or a request outstanding
            # beyond it; the OTR must be back below its warn level, not just below the ceiling.
            lim = cfg.rtt_lockdown_ns
            if (
                self.halted
                or feed_stale
                or stale_hb
                or self.otr >= self._otr_warn
                or age_o > lim
                or age_c > lim
            ):
                self._last_bad_ns = now
            last_bad = max(self._last_bad_ns, self._rtt_bad_ns)
            if now - last_bad >= cfg.healthy_ns:
                self._clear_rtt_window()
                warn = self._warning(age_o, age_c)
                self._warn_bad_ns = now
                if warn:
                    self._move(DEGRADED, warn, now)
                else:
                    self._move(NORMAL, Reason.HEALTHY, now)
            return
        # NORMAL or DEGRADED: the entry rules
        hard, k = cfg.rtt_hard_ns, cfg.rtt_breach_k
        trip = Reason.NONE
        if self._hard[0] or self._episodes[0] >= k or age_o >= hard:
            trip = Reason.RTT
        elif self._hard[1] or self._episodes[1] >= k or age_c >= hard:
            trip = Reason.CANCEL_RTT
        elif feed_stale:
            trip = Reason.FEED_STALE
        elif stale_hb:
            trip = Reason.HEARTBEAT
        elif self.otr >= cfg.otr_ceiling:
            trip = Reason.OTR
        if trip:
            self._move(LOCKDOWN, trip, now)
            return
        warn = self._warning(age_o, age_c)
        if warn:
            self._warn_bad_ns = now
            if self._st == NORMAL:
                self._move(DEGRADED, warn, now)
        elif self._st == DEGRADED and now - self._warn_bad_ns >= cfg.degraded_clear_ns:
            self._move(NORMAL, Reason.HEALTHY, now)

    def _warning(self, age_o: int, age_c: int) -> Reason:
        """The first standing warning (DEGRADED cause), or NONE."""
        cfg = self.cfg
        k, lim = cfg.rtt_breach_k, cfg.rtt_lockdown_ns
        if self._episodes[0] or self._warns[0] >= k or age_o > lim:
            return Reason.RTT
        if self._episodes[1] or self._warns[1] >= k or age_c > lim:
            return Reason.CANCEL_RTT
        if self.otr >= self._otr_warn:
            return Reason.OTR
        if self.pnl <= self._loss_warn:
            return Reason.DAILY_LOSS
        if self.positions_over:
            return Reason.POSITION
        return Reason.NONE

    def _stale_modules(self, now: int) -> int:
        m = self.heartbeat_watched
        stale = 0
        if m:
            hb, timeout = self._hb, self.cfg.heartbeat_timeout_ns
            i = 0
            while m:
                if m & 1 and now - hb[i] > timeout:
                    stale |= 1 << i
                m >>= 1
                i += 1
        self.heartbeat_stale = stale
        return stale

    def _clear_rtt_window(self) -> None:
        """At re-arm: the evidence in the rule windows is older than healthy_ns; start afresh
        (the percentile ring keeps its samples for the dashboard)."""
        for k in (0, 1):
            f = self._flags[k]
            f[:] = bytes(len(f))
            self._episodes[k] = 0
            self._warns[k] = 0
            self._hard[k] = False
            self._episode_start[k] = _NEVER

    def _move(self, to: EmergencyState, reason: Reason, now: int) -> None:
        prev = self.state
        try:
            cancel = transition(prev, to, reason)
        except IllegalTransition:
            if prev is not KILLED:  # fail safe: a bug in the risk code latches a kill
                self._enter(prev, KILLED, Reason.INTERNAL, now, True)
            raise
        self._enter(prev, to, reason, now, cancel)

    def _enter(
        self, prev: EmergencyState, to: EmergencyState, reason: Reason, now: int, cancel: bool
    ) -> None:
        self.state = to
        self._st = int(to)
        self.reason = reason
        self.since_ns = now
        self.entered_reason[to] = reason
        self.entered_ns[to] = now
        self.last_trip_ns[reason] = now
        self.transitions += 1
        self.history.append(Transition(prev, to, reason, now))
        if to == LOCKDOWN:
            self._last_bad_ns = now
        if cancel:
            self._pending_cancel = True
            self.cancel_alls += 1

    # -- the pre-trade check -----------------------------------------------------------------

    def check_order(
        self,
        token: int,
        side_sign: int,
        qty: int,
        price: int,
        notional: int,
        open_orders: int,
        position: int,
        *,
        kill: int = 0,
        now_ns: int = 0,
    ) -> Verdict:
        """The gate before every order write (a place, or a modify with its new terms). O(1)
        and allocation-free (plain int compares; the verdicts are preallocated).

        `side_sign` +1 buys, -1 sells; `qty` units; `price` and `notional` (price x qty x
        multiplier) in paise; `open_orders` resting now, this one excluded; `position` the
        exposure the order adds to (pass filled position + same-side resting quantity for a
        hard limit). `kill` is the control block's kill word read just before this call
        (`ControlReader.kill_requested()`): nonzero latches KILLED (at `now_ns`) and refuses,
        whatever else holds. Order of the checks: kill, state (LOCKDOWN/KILLED refuse
        everything), a malformed order, daily loss, notional, open orders, position. An order
        that leaves |position| smaller passes the position limit even while over it.
        `token` is accepted for the journal of refusals; limits are per instrument already."""
        self.checks += 1
        if kill:
            self.on_kill_flag(now_ns, kill)
            v = _V_KILLED
        else:
            v = self.would_allow(side_sign, qty, price, notional, open_orders, position)
            if v is _V_OK:
                return v
        self.refused[v] += 1
        return v

    def would_allow(
        self, side_sign: int, qty: int, price: int, notional: int, open_orders: int, position: int
    ) -> Verdict:
        """`check_order`'s verdict without counting it or reading a kill word: for rehearsing a
        write (`OrderGateway.rehearse`) and for showing whether the best candidate would pass."""
        st = self._st
        if st >= _LOCKDOWN_I:
            v = _V_KILLED if st == _KILLED_I else _V_LOCKDOWN
        elif qty <= 0 or price <= 0 or notional <= 0 or (side_sign != 1 and side_sign != -1):
            v = _V_INVALID
        elif self.pnl <= self._loss_floor:
            v = _V_LOSS
        elif notional > self._max_notional:
            v = _V_NOTIONAL
        elif open_orders >= self._max_open:
            v = _V_OPEN
        else:
            after = position + side_sign * qty
            if after < 0:
                after = -after
            if after <= self._max_pos or after < (position if position >= 0 else -position):
                return _V_OK
            v = _V_POSITION
        return v

    def check_cancel(self) -> Verdict:
        """Cancels are always allowed: in every state, with the kill flag set, over every
        limit. A cancel only removes risk, and LOCKDOWN and KILLED depend on them."""
        return Verdict.OK

    @property
    def ok(self) -> bool:
        """New orders may be placed (NORMAL or DEGRADED)."""
        return self._st < LOCKDOWN

    # -- statistics --------------------------------------------------------------------------

    def rtt_percentile(self, kind: RttKind, q: float) -> int:
        """Nearest-rank percentile (0 < q <= 1) of the last `rtt_stats_samples` RTTs of `kind`
        (0 with no sample). Sorts a copy: for evaluate-rate or publish-rate callers only."""
        s = self._sorted(kind)
        return _rank(s, q)

    def rtt_stats(self, kind: RttKind) -> RttStats:
        s = self._sorted(kind)
        return RttStats(
            last_ns=self.rtt_last[kind],
            p50_ns=_rank(s, 0.5),
            p99_ns=_rank(s, 0.99),
            max_ns=s[-1] if s else 0,
            samples=len(s),
            count=self.rtt_count[kind],
            breaches=self.rtt_breaches[kind],
            window_episodes=self._episodes[kind],
            window_warn=self._warns[kind],
        )

    def _sorted(self, kind: RttKind) -> list[int]:
        n = min(self.rtt_count[kind], self._mask + 1)
        return sorted(self._rtt[kind][:n])

    def rearm_at_ns(self) -> int:
        """In LOCKDOWN: the earliest automatic re-arm if nothing bad happens from now (else 0)."""
        if self._st != LOCKDOWN:
            return 0
        return max(self._last_bad_ns, self._rtt_bad_ns) + self.cfg.healthy_ns

    def inflight_age_ns(self, kind: RttKind, now_ns: int) -> int:
        sent = self._inflight[kind]
        return now_ns - sent if sent else 0


def _rank(s: list[int], q: float) -> int:
    if not s:
        return 0
    return s[max(0, math.ceil(q * len(s)) - 1)]


# -- shared memory -------------------------------------------------------------------------


_CFG_FIELDS = tuple(f.name for f in fields(SentinelConfig))
_CFG_FLOAT = frozenset(f.name for f in fields(SentinelConfig) if f.type in ("float", float))

RISK = seqlocked(
    "risk",
    1,
    (
        Field("state", doc="EmergencyState"),
        Field("reason", doc="Reason of the current state"),
        Field("since_ns", doc="when the current state was entered"),
        Field("transitions"),
        Field("cancel_alls", doc="cancel-alls demanded so far"),
        Field("rearm_at_ns", doc="LOCKDOWN: earliest automatic re-arm; 0 otherwise"),
        Field("kill_seq", doc="kill word that latched KILLED (0 after a reset)"),
        Field("halted", doc="1 while an operator halt stands"),
        Field("publish_ns", doc="the caller's clock at publish"),
        *(
            f
            for s in EmergencyState
            for f in (
                Field(f"{s.name.lower()}_reason", doc=f"reason {s.name} was last entered"),
                Field(f"{s.name.lower()}_entered_ns", doc=f"when {s.name} was last entered"),
            )
        ),
        *(
            Field(f"trip_{r.name.lower()}_ns", doc="last change caused by this reason")
            for r in Reason
            if r
        ),
        *(
            f
            for k in RttKind
            for f in (
                Field(f"{k.name.lower()}_rtt_last_ns"),
                Field(f"{k.name.lower()}_rtt_p50_ns"),
                Field(f"{k.name.lower()}_rtt_p99_ns"),
                Field(f"{k.name.lower()}_rtt_max_ns"),
                Field(f"{k.name.lower()}_rtt_samples", doc="in the percentile ring"),
                Field(f"{k.name.lower()}_rtt_count", doc="since start"),
                Field(f"{k.name.lower()}_rtt_breaches", doc="since start"),
                Field(f"{k.name.lower()}_rtt_episodes", doc="breach episodes in the rule window"),
                Field(f"{k.name.lower()}_rtt_warn", doc="samples over the warn level in window"),
                Field(f"{k.name.lower()}_inflight_age_ns", doc="oldest unanswered request"),
            )
        ),
        Field("pnl", doc="paise"),
        Field("otr", "d"),
        Field("feed_age_ns"),
        Field("heartbeat_watched", doc="bit per module"),
        Field("heartbeat_stale", doc="bit per module"),
        Field("positions_over", doc="instruments over max_position"),
        Field("checks", doc="pre-trade checks so far"),
        *(Field(f"refused_{v.name.lower()}") for v in Verdict if v),
        *(
            Field(f"cfg_{n}", "d" if n in _CFG_FLOAT else "q", doc="limit in use")
            for n in _CFG_FIELDS
        ),
    ),
)


class RiskWriter:
    """Publishes a Sentinel into a seqlocked RISK block (single writer: the Sentinel's owner
    thread, at dashboard rate). The values, percentiles included, are computed before the
    sequence turns odd, so readers are held off only for the stores."""

    __slots__ = ("_first", "_isd", "_w")

    def __init__(self, buf: memoryview, offset: int) -> None:
        self._w = SeqlockWriter(buf, offset, RISK)
        self._first = self._w.first
        body = RISK.fields[1:]
        self._isd = [f.fmt == "d" for f in body]

    def publish(self, s: Sentinel, now_ns: int = 0) -> None:
        """`now_ns` (the caller's clock) dates the snapshot and ages the in-flight requests."""
        v: list[int | float] = [
            int(s.state),
            int(s.reason),
            s.since_ns,
            s.transitions,
            s.cancel_alls,
            s.rearm_at_ns(),
            s.kill_seq,
            1 if s.halted else 0,
            now_ns,
        ]
        for st in EmergencyState:
            v.append(s.entered_reason[st])
            v.append(s.entered_ns[st])
        v.extend(s.last_trip_ns[1:])
        for k in RttKind:
            r = s.rtt_stats(k)
            v += (
                r.last_ns,
                r.p50_ns,
                r.p99_ns,
                r.max_ns,
                r.samples,
                r.count,
                r.breaches,
                r.window_episodes,
                r.window_warn,
                s.inflight_age_ns(k, now_ns) if now_ns else 0,
            )
        v += (
            s.pnl,
            float(s.otr),
            s.feed_age_ns,
            s.heartbeat_watched,
            s.heartbeat_stale,
            s.positions_over,
            s.checks,
        )
        v.extend(s.refused[1:])
        cfg = s.cfg
        for n in _CFG_FIELDS:
            v.append(getattr(cfg, n))
        w = self._w
        q, d, f, isd = w.q, w.d, self._first, self._isd
        if len(v) != len(isd):  # the value list and RISK must be declared in the same order
            raise AssertionError(f"RISK has {len(isd)} fields, publish built {len(v)}")
        w.begin()
        for i in range(len(v)):
            if isd[i]:
                d[f + i] = float(v[i])
            else:
                q[f + i] = int(v[i])
        w.end()

    def close(self) -> None:
        self._w.close()


def read_risk(buf: memoryview | bytearray, offset: int) -> dict[str, int | float]:
    """One consistent copy of a RISK block, by field name (`state` as an EmergencyState,
    `reason` as a Reason). Allocates: for the monitor and tests, not hot loops."""
    q = memoryview(buf).cast("q")
    try:
        v = SeqlockReader(q, offset, RISK).read()
    finally:
        q.release()
    v["state"] = EmergencyState(int(v["state"]))
    v["reason"] = Reason(int(v["reason"]))
    return v


class RiskStateView:
    """The state word of a RISK block alone, for another thread's per-iteration check (Sonar's
    SENTINEL_OK): one aligned 8-byte load, atomic on x86-64, so it needs no seqlock retry. It
    may lag the Sentinel by one publish; the Sentinel's own `check_order` never lags."""

    __slots__ = ("_q", "_w")

    def __init__(self, buf: memoryview, offset: int) -> None:
        self._q = buf.cast("q")
        self._w = offset // 8 + RISK.word("state")

    def state(self) -> int:
        return self._q[self._w]

    def ok(self) -> bool:
        """New orders allowed (NORMAL or DEGRADED) as of the last publish."""
        return self._q[self._w] < LOCKDOWN

    def close(self) -> None:
        self._q.release()
