"""Order-write budgets: the broker's rate limits and the exchange's Order-to-Trade Ratio (OTR).

Why here, and why one object per budget: every order write (place, modify, cancel) passes the
gateway, and the gateway asks these budgets before anything leaves (reference §3: "place,
modify and cancel share one budget: one token bucket for all order writes"). A budget that
some path could skip is no budget, so `Budgets.try_acquire` is the single door: it asks the
OTR budget, then the rate limiter, and records the write in both or in neither.

Rate limits (`BrokerProfile`, `RateLimiter`). Each broker states limits over several windows
(Kite: 10/s, 400/min, 5,000 placements/day). The limiter keeps, per window, a ring of the last
`limit` write timestamps: a write is allowed iff the k-th most recent write is already out of
the window (k = limit for a cancel, limit - reserve for a place or modify). That is an exact
sliding window -- in every half-open interval of the window's length there are never more
than `limit` allowed writes -- so it is at least as strict as a broker's fixed buckets or token
bucket, at O(1) per write. The per-day cap is a plain counter reset by `new_day`, because
brokers count it per trading day, not over a sliding 24 h.

Cancels first: a cancel reduces risk, so placements and modifications must leave `reserve`
slots free in every window; a cancel may use any slot. When a budget runs out, the resting
orders can still be pulled.

OTR (`OtrRules`, `OtrBudget`): OTR = (entries + modifications + cancellations) / trades per day
over algo orders (reference §2). The budget keeps the raw counts and the penalty-relevant ones
(writes priced inside the exemption band are left out), the slab the day is in, the projected
penalty, and enforces a ceiling the engine chooses below the first penalty slab. See
`OtrBudget` for the rules chosen where the circulars are silent.

Ownership (free threading): a `RateLimiter`, an `OtrBudget` and a `Budgets` are owned by the
gateway's thread and take no lock. Other threads (dashboard, Sentinel) read `snapshot()`
values that the owner publishes; they never call into these objects.

Units: integer nanoseconds from the caller's monotonic clock (`time.perf_counter_ns()` live,
simulated time in tests); nothing here reads a clock. Prices in the instrument's integer units.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vajra.market.instruments import Segment

__all__ = [
    "BUILTIN_PROFILES",
    "NSE_OTR_2026_04",
    "SEBI_UNREGISTERED_OPS",
    "BrokerProfile",
    "Budgets",
    "LimiterSnapshot",
    "OtrBudget",
    "OtrRules",
    "OtrSnapshot",
    "RateLimiter",
    "RateWindow",
    "Refusal",
    "WindowUsage",
    "WriteKind",
    "penalty_paise",
    "slab_rate_paise",
]

_NS_PER_S = 1_000_000_000

#: SEBI retail-algo framework (from 2026-04-01): above 10 orders/s per exchange segment per
#: client a strategy must be registered with the exchange. Profiles above it must say so.
SEBI_UNREGISTERED_OPS = 10


class WriteKind(enum.IntEnum):
    """An order write, as the budgets see it (also an index into the per-kind counters)."""

    PLACE = 0
    MODIFY = 1
    CANCEL = 2


class Refusal(enum.IntEnum):
    """Why the last write was refused (a throttled write is an event, never a silent drop)."""

    NONE = 0
    COOLDOWN = 1  # the broker answered 429 / "Too many requests": nothing goes out until later
    WINDOW = 2  # a sliding window is full for this kind (for a place/modify: down to the reserve)
    DAY_CAP = 3  # the per-day cap is used up (rejects included)
    MODIFICATION_CAP = 4  # this order already has the broker's maximum of modifications
    OTR_CEILING = 5  # the write would take the penalty-relevant OTR above the ceiling


_PLACE, _MODIFY, _CANCEL = WriteKind.PLACE, WriteKind.MODIFY, WriteKind.CANCEL
# Plain ints for the hot path (enum attribute lookups cost a dict probe each).
_R_NONE, _R_COOLDOWN, _R_WINDOW, _R_DAY, _R_MODS, _R_OTR = (int(r) for r in Refusal)
_REFUSALS = tuple(Refusal)  # code -> member without an enum call
_NEVER = -(1 << 62)  # timestamp of a write that never happened: older than any window
_FOREVER = 1 << 62  # a cap that is never reached


# -- broker profiles --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateWindow:
    """At most `limit` order writes in any interval of `span_ns` (place, modify and cancel)."""

    limit: int
    span_ns: int

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"window limit must be an int >= 1, got {self.limit!r}")
        if isinstance(self.span_ns, bool) or not isinstance(self.span_ns, int) or self.span_ns < 1:
            raise ValueError(f"window span must be an int >= 1 ns, got {self.span_ns!r}")

    @property
    def name(self) -> str:
        """A short label ("1s", "1m", "30m", "1h") used for reserves and on the dashboard."""
        ns = self.span_ns
        if ns % (3600 * _NS_PER_S) == 0:
            return f"{ns // (3600 * _NS_PER_S)}h"
        if ns % (60 * _NS_PER_S) == 0:
            return f"{ns // (60 * _NS_PER_S)}m"
        if ns % _NS_PER_S == 0:
            return f"{ns // _NS_PER_S}s"
        return f"{ns}ns"


@dataclass(frozen=True, slots=True)
class BrokerProfile:
    """One broker's order-write limits, as documented by the broker (reference §3).

    `per_second` and `per_minute` count every write (place, modify, cancel). `per_day` is per
    trading day, reset by the limiter's `new_day`; it counts placements only -- rejected ones
    included, as Kite documents -- unless `day_cap_all_writes` (Dhan's 7,000/day is stated for
    the order APIs as a whole, so it counts every write: the conservative reading). Extra
    windows (Upstox 2,000 per 30 min, Dhan 1,000/h) count every write. `cooldown_ns` is how
    long the broker refuses everything after answering 429.
    """

    name: str
    per_second: int
    per_minute: int | None = None
    per_day: int | None = None
    day_cap_all_writes: bool = False
    extra_windows: tuple[RateWindow, ...] = ()
    max_modifications: int | None = None  # per order; None: the broker states no limit
    cooldown_ns: int = 10 * _NS_PER_S
    sebi_registered: bool = False  # required to exceed SEBI_UNREGISTERED_OPS per second

    def __post_init__(self) -> None:
        where = f"broker profile {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("broker profile: name must be a non-empty string")
        for field, value, optional in (
            ("per_second", self.per_second, False),
            ("per_minute", self.per_minute, True),
            ("per_day", self.per_day, True),
            ("max_modifications", self.max_modifications, True),
        ):
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{where}: {field} must be an int >= 1, got {value!r}")
        if isinstance(self.cooldown_ns, bool) or not isinstance(self.cooldown_ns, int):
            raise ValueError(f"{where}: cooldown_ns must be an int, got {self.cooldown_ns!r}")
        if self.cooldown_ns < 0:
            raise ValueError(f"{where}: cooldown_ns must be >= 0, got {self.cooldown_ns}")
        if self.per_second > SEBI_UNREGISTERED_OPS and not self.sebi_registered:
            raise ValueError(
                f"{where}: per_second {self.per_second} exceeds the SEBI threshold of "
                f"{SEBI_UNREGISTERED_OPS}/s for unregistered algos (set sebi_registered)"
            )
        if self.day_cap_all_writes and self.per_day is None:
            raise ValueError(f"{where}: day_cap_all_writes without a per_day cap")
        names = [w.name for w in self.windows]
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: two windows of the same length: {names}")

    @property
    def windows(self) -> tuple[RateWindow, ...]:
        """Every sliding window, shortest first (the day cap is not one: see `per_day`)."""
        ws = [RateWindow(self.per_second, _NS_PER_S)]
        if self.per_minute is not None:
            ws.append(RateWindow(self.per_minute, 60 * _NS_PER_S))
        ws.extend(self.extra_windows)
        return tuple(sorted(ws, key=lambda w: w.span_ns))

    def may_modify(self, modifications_so_far: int) -> bool:
        """True if an order already modified this many times may be modified once more."""
        return self.max_modifications is None or modifications_so_far < self.max_modifications

    @classmethod
    def builtin(cls, name: str) -> BrokerProfile:
        try:
            return BUILTIN_PROFILES[name]
        except KeyError:
            raise ValueError(
                f"no built-in broker profile {name!r}; known: {sorted(BUILTIN_PROFILES)}"
            ) from None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> BrokerProfile:
        """A profile from a config table (TOML `[broker]`), every key checked.

        Keys: `name` (required), `base` (a built-in profile to start from), `per_second`,
        `per_minute`, `per_day`, `day_cap_all_writes`, `windows` (a list of
        `{limit = 2000, seconds = 1800}`), `max_modifications`, `cooldown_ms`,
        `sebi_registered`. An unknown key is an error, not a default: a typo in a limit must
        not silently leave the broker's limit unenforced. Without `base`, `per_second` is
        required. An optional limit (`per_minute`, `per_day`, `max_modifications`) is absent
        when its key is; write `"none"` to drop one a `base` profile has.
        """
        known = {
            "name",
            "base",
            "per_second",
            "per_minute",
            "per_day",
            "day_cap_all_writes",
            "windows",
            "max_modifications",
            "cooldown_ms",
            "sebi_registered",
        }
        if not isinstance(cfg, Mapping):
            raise ValueError(f"broker profile config must be a table, got {type(cfg).__name__}")
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(
                f"broker profile config: unknown keys {unknown}; known: {sorted(known)}"
            )
        name = cfg.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("broker profile config: 'name' must be a non-empty string")
        where = f"broker profile {name!r}"

        base: BrokerProfile | None = None
        if "base" in cfg:
            if not isinstance(cfg["base"], str):
                raise ValueError(f"{where}: 'base' must be a profile name")
            base = cls.builtin(cfg["base"])
        elif "per_second" not in cfg:
            raise ValueError(f"{where}: 'per_second' is required (or give a 'base' profile)")

        def int_key(key: str, default: int | None, optional: bool) -> int | None:
            if key not in cfg:
                return default
            v: object = cfg[key]
            if optional and v == "none":
                return None
            if isinstance(v, bool) or not isinstance(v, int):
                hint = ' (or "none")' if optional else ""
                raise ValueError(f"{where}: {key!r} must be an integer{hint}, got {v!r}")
            if v < (0 if key == "cooldown_ms" else 1):
                raise ValueError(f"{where}: {key!r} must be positive, got {v}")
            return v

        def bool_key(key: str, default: bool) -> bool:
            v: object = cfg.get(key, default)
            if not isinstance(v, bool):
                raise ValueError(f"{where}: {key!r} must be true or false, got {v!r}")
            return v

        windows: tuple[RateWindow, ...] = base.extra_windows if base else ()
        if "windows" in cfg:
            raw = cfg["windows"]
            if not isinstance(raw, list | tuple):
                raise ValueError(f"{where}: 'windows' must be a list of {{limit, seconds}} tables")
            parsed = []
            for i, w in enumerate(raw):
                if not isinstance(w, Mapping) or set(w) != {"limit", "seconds"}:
                    raise ValueError(
                        f"{where}: windows[{i}] must be a table with exactly 'limit' and "
                        f"'seconds', got {w!r}"
                    )
                lim, sec = w["limit"], w["seconds"]
                for k, v in (("limit", lim), ("seconds", sec)):
                    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                        raise ValueError(
                            f"{where}: windows[{i}].{k} must be an int >= 1, got {v!r}"
                        )
                parsed.append(RateWindow(lim, sec * _NS_PER_S))
            windows = tuple(parsed)

        per_second = int_key("per_second", base.per_second if base else None, optional=False)
        assert per_second is not None  # required above unless a base supplies it
        cooldown_ms = int_key(
            "cooldown_ms", (base.cooldown_ns // 1_000_000) if base else 10_000, optional=False
        )
        assert cooldown_ms is not None
        return cls(
            name=name,
            per_second=per_second,
            per_minute=int_key("per_minute", base.per_minute if base else None, True),
            per_day=int_key("per_day", base.per_day if base else None, True),
            day_cap_all_writes=bool_key(
                "day_cap_all_writes", base.day_cap_all_writes if base else False
            ),
            extra_windows=windows,
            max_modifications=int_key(
                "max_modifications", base.max_modifications if base else None, True
            ),
            cooldown_ns=cooldown_ms * 1_000_000,
            sebi_registered=bool_key("sebi_registered", base.sebi_registered if base else False),
        )


#: Broker limits as of 2026-04 (reference §3). Cooldowns other than Kite's are not documented:
#: 10 s is assumed for all (check).
BUILTIN_PROFILES: dict[str, BrokerProfile] = {
    p.name: p
    for p in (
        # Kite Connect: 10/s, 400/min, 5,000 placements/day (rejects included), 25 mods/order,
        # ~10 s after a 429.
        BrokerProfile("kite", per_second=10, per_minute=400, per_day=5000, max_modifications=25),
        # Upstox, unregistered algos: 10/s, 500/min, 2,000 per 30 min.
        BrokerProfile(
            "upstox",
            per_second=10,
            per_minute=500,
            extra_windows=(RateWindow(2000, 1800 * _NS_PER_S),),
        ),
        # Dhan: 10/s, 250/min, 1,000/h, 7,000/day, 25 mods/order.
        BrokerProfile(
            "dhan",
            per_second=10,
            per_minute=250,
            per_day=7000,
            day_cap_all_writes=True,
            extra_windows=(RateWindow(1000, 3600 * _NS_PER_S),),
            max_modifications=25,
        ),
        # Angel One: the broker allows 20/s, but SEBI's 10/s threshold for unregistered algos
        # is the binding limit. No per-minute limit is documented in the reference.
        BrokerProfile("angel", per_second=SEBI_UNREGISTERED_OPS),
    )
}


# -- the rate limiter -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowUsage:
    name: str
    used: int  # writes inside the window now
    limit: int
    reserve: int  # slots only a cancel may take


@dataclass(frozen=True, slots=True)
class LimiterSnapshot:
    """What the dashboard shows for the rate budget (taken by the owner thread)."""

    profile: str
    allowed: tuple[int, int, int]  # per WriteKind
    refused: tuple[int, int, int]  # per WriteKind
    refusals: tuple[int, ...]  # per Refusal
    venue_rejects: tuple[int, int, int]  # writes the venue refused after we sent them
    rate_limited: int  # 429s received
    windows: tuple[WindowUsage, ...]
    day: int
    day_used: int
    day_cap: int | None
    cooldown_until_ns: int


class RateLimiter:
    """Exact sliding windows over every limit of a `BrokerProfile`, cancels first.

    Rules:
    - A write is counted when it is acquired -- before it is sent -- and never refunded: a
      write the broker refuses (any reason, 429 included) still consumed its window slot and,
      for a placement, its daily placement (Kite counts rejected orders toward the 5,000).
      `on_venue_reject` exists to make that explicit and to count rejects; it gives nothing back.
    - Reserve: a place or modify is allowed only while a window holds fewer than
      `limit - reserve` writes; a cancel while it holds fewer than `limit`. Default reserve:
      `cancel_reserve` in every window (2: in Kite's 10/s window eight new writes a second, two
      slots always left to pull resting orders), overridable per window name (`reserves=
      {"1m": 20}`), and "day" for a day cap that counts cancels. A reserve must leave at least
      one slot for placements.
    - Cooldown: after a 429 (`on_rate_limited`) nothing is allowed -- not even a cancel --
      until the cooldown ends. The broker refuses every write during its cooldown and may
      extend it when hammered, so sending a cancel then only delays every later cancel. Callers
      queue and use `next_allowed_ns`, at which time the reserve lets the cancels out first.
    - `margin_ns` lengthens every window: the broker counts arrivals, and network jitter can
      bring two writes sent 1 s apart closer together at the broker.
    - Modifications per order: the broker's cap is checked when the caller passes the order's
      modification count (the gateway's order table holds it; the limiter holds no per-order
      state, so it allocates nothing per order).

    `now_ns` must never decrease (one monotonic clock, one owner thread).
    """

    __slots__ = (
        "_allowed",
        "_cooldown_until",
        "_day",
        "_day_counts",
        "_day_limits",
        "_day_used",
        "_last_ns",
        "_mods_cap",
        "_rate_limited",
        "_refusals",
        "_refused",
        "_venue_rejects",
        "_wins",
        "last_refusal",
        "profile",
    )

    def __init__(
        self,
        profile: BrokerProfile,
        *,
        cancel_reserve: int = 2,
        reserves: Mapping[str, int] | None = None,
        margin_ns: int = 0,
        day: int | _dt.date = 0,
    ) -> None:
        windows = profile.windows
        if margin_ns < 0:
            raise ValueError(f"margin_ns must be >= 0, got {margin_ns}")
        if cancel_reserve < 0:
            raise ValueError(f"cancel_reserve must be >= 0, got {cancel_reserve}")
        overrides = dict(reserves or {})
        names = [w.name for w in windows] + (["day"] if profile.per_day is not None else [])
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ValueError(f"reserves for unknown windows {unknown}; windows are {names}")
        self.profile = profile
        wins = []
        for w in windows:
            r = overrides.get(w.name, min(cancel_reserve, w.limit - 1))
            if not 0 <= r < w.limit:
                raise ValueError(
                    f"reserve {r} for window {w.name} must be within 0..{w.limit - 1} "
                    "(a placement needs at least one slot)"
                )
            # The ring: the last `limit` write times, oldest at [0]; full of "never" at start.
            ring: deque[int] = deque([_NEVER] * w.limit, maxlen=w.limit)
            wins.append((ring, w.span_ns + margin_ns, r))
        self._wins = tuple(wins)
        cap = profile.per_day
        day_res = 0
        if cap is not None:
            default = min(cancel_reserve, cap - 1) if profile.day_cap_all_writes else 0
            day_res = overrides.get("day", default)
            if not 0 <= day_res < cap:
                raise ValueError(f"reserve {day_res} for the day cap must be within 0..{cap - 1}")
        # Per kind: does it count toward the day cap, and below which count it is allowed.
        counts = (cap is not None, profile.day_cap_all_writes, profile.day_cap_all_writes)
        self._day_counts = counts
        self._day_limits = tuple(
            (cap - (0 if kind == _CANCEL else day_res)) if counts[kind] and cap else _FOREVER
            for kind in WriteKind
        )
        self._day_used = 0
        self._day = _day_index(day)
        mods = profile.max_modifications
        self._mods_cap = mods if mods is not None else _FOREVER
        self._cooldown_until = _NEVER
        self._last_ns = _NEVER
        self._allowed = [0, 0, 0]
        self._refused = [0, 0, 0]
        self._venue_rejects = [0, 0, 0]
        self._refusals = [0] * len(Refusal)
        self._rate_limited = 0
        self.last_refusal: Refusal = Refusal.NONE

    # -- the per-request path ------------------------------------------------------------------

    def _check(self, kind: WriteKind, now_ns: int, order_modifications: int) -> int:
        """Refusal code for a write at `now_ns` (0: allowed), without recording anything.

        Cost: three int comparisons, then one deque index near its left end and one
        comparison per window (2-3 for the built-in profiles). No container is allocated,
        only int temporaries (and the loop's tuple iterator). Measured on 3.13t (which runs
        without the specializing interpreter): try_acquire ~1 us allowed, ~0.65 us refused.
        """
        if now_ns < self._last_ns:
            raise ValueError(f"time went backwards: {now_ns} < {self._last_ns}")
        # The caps that only a new day lifts first, so the refusal says waiting will not help.
        if kind == _MODIFY and order_modifications >= self._mods_cap:
            return _R_MODS
        if self._day_used >= self._day_limits[kind]:
            return _R_DAY
        if now_ns < self._cooldown_until:
            return _R_COOLDOWN
        cancel = kind == _CANCEL
        for ring, span, reserve in self._wins:
            # The k-th most recent write (k = limit, or limit - reserve) must already be out of
            # the window (t <= now - span): then the window holds at most k - 1 writes and
            # this one makes k. ring[0] is the limit-th most recent, ring[reserve] the k-th.
            if ring[0 if cancel else reserve] > now_ns - span:
                return _R_WINDOW
        return _R_NONE

    def try_acquire(self, kind: WriteKind, now_ns: int, order_modifications: int = 0) -> bool:
        """Take a slot for one write at `now_ns`; False (and `last_refusal`) if it must wait.

        On True the write counts in every window and, for a placement (or any write under a
        day cap of every write), in the day's cap -- whatever the venue answers later. For a
        MODIFY pass the order's modifications so far to apply the broker's per-order cap.
        Cost: `_check` plus one deque append per window (the ring drops its oldest entry).
        """
        code = self._check(kind, now_ns, order_modifications)
        if code:
            self._refused[kind] += 1
            self._refusals[code] += 1
            self.last_refusal = _REFUSALS[code]
            return False
        for ring, _, _ in self._wins:
            ring.append(now_ns)  # maxlen: drops the oldest
        if self._day_counts[kind]:
            self._day_used += 1
        self._allowed[kind] += 1
        self._last_ns = now_ns
        self.last_refusal = Refusal.NONE
        return True

    def can_acquire(self, kind: WriteKind, now_ns: int, order_modifications: int = 0) -> bool:
        """Would `try_acquire` allow it now? Records nothing (for planning a ladder)."""
        return self._check(kind, now_ns, order_modifications) == _R_NONE

    # -- venue answers and the day -------------------------------------------------------------

    def on_rate_limited(self, now_ns: int, retry_after_ns: int = 0) -> int:
        """The broker answered 429 / "Too many requests": refuse every write for a while.

        The cooldown lasts the venue's `retry_after_ns` (a duration, as in `Reject`) or the
        profile's cooldown, whichever is longer, and never shortens one already running.
        Returns the time writes may resume. Our count and the broker's disagree when this
        happens (another client on the API key, jitter): the cooldown is the safe answer.
        """
        until = now_ns + max(retry_after_ns, self.profile.cooldown_ns)
        if until > self._cooldown_until:
            self._cooldown_until = until
        self._rate_limited += 1
        return self._cooldown_until

    def on_venue_reject(self, kind: WriteKind) -> None:
        """Count a write the venue refused. Deliberately gives nothing back: the slot and, for a
        placement, the day's placement stay consumed (Kite counts rejected orders)."""
        self._venue_rejects[kind] += 1

    def new_day(self, day: int | _dt.date) -> None:
        """A new trading day (a day index or a date, from the caller's calendar): resets the
        day cap. Sliding windows run on across the boundary: they are real time."""
        d = _day_index(day)
        if d < self._day:
            raise ValueError(f"trading day went backwards: {d} < {self._day}")
        if d != self._day:
            self._day = d
            self._day_used = 0

    # -- scheduling and the dashboard ----------------------------------------------------------

    def next_allowed_ns(
        self, kind: WriteKind, now_ns: int, order_modifications: int = 0
    ) -> int | None:
        """The earliest time >= now at which this write would be allowed if nothing else is
        sent meanwhile; None if not before the next trading day (day cap, or the order's
        modification cap). Lets the caller schedule instead of spinning."""
        if (kind == _MODIFY and order_modifications >= self._mods_cap) or (
            self._day_used >= self._day_limits[kind]
        ):
            return None
        cancel = kind == _CANCEL
        t = max(now_ns, self._cooldown_until, self._last_ns)
        for ring, span, reserve in self._wins:
            t = max(t, ring[0 if cancel else reserve] + span)
        return t

    def window_usage(self, now_ns: int) -> tuple[WindowUsage, ...]:
        """Writes inside each window at `now_ns` (binary search in each ring: O(log limit))."""
        out = []
        for w, (ring, span, reserve) in zip(self.profile.windows, self._wins, strict=True):
            cutoff = now_ns - span
            lo, hi = 0, w.limit  # the ring is in time order: find the first write inside
            while lo < hi:
                mid = (lo + hi) // 2
                if ring[mid] > cutoff:
                    hi = mid
                else:
                    lo = mid + 1
            out.append(WindowUsage(w.name, w.limit - lo, w.limit, reserve))
        return tuple(out)

    @property
    def cooldown_until_ns(self) -> int:
        return self._cooldown_until

    @property
    def day_used(self) -> int:
        return self._day_used

    def snapshot(self, now_ns: int) -> LimiterSnapshot:
        a, r, v = self._allowed, self._refused, self._venue_rejects
        return LimiterSnapshot(
            profile=self.profile.name,
            allowed=(a[0], a[1], a[2]),
            refused=(r[0], r[1], r[2]),
            refusals=tuple(self._refusals),
            venue_rejects=(v[0], v[1], v[2]),
            rate_limited=self._rate_limited,
            windows=self.window_usage(now_ns),
            day=self._day,
            day_used=self._day_used,
            day_cap=self.profile.per_day,
            cooldown_until_ns=self._cooldown_until,
        )


def _day_index(day: int | _dt.date) -> int:
    if isinstance(day, _dt.date):
        return day.toordinal()
    if isinstance(day, bool) or not isinstance(day, int):
        raise ValueError(f"a trading day is a date or an int index, got {day!r}")
    return day


# -- OTR ----------------------------------------------------------------------------------------


#: segments whose exemption band is a fixed fraction of LTP (a set: one hash, not a tuple
#: built of three attribute loads on every call)
_CASH_LIKE = frozenset((Segment.NSE_EQ, Segment.BSE_EQ, Segment.NFO_FUT))


@dataclass(frozen=True, slots=True)
class OtrRules:
    """The exchange's OTR penalty slabs and exemption bands, dated (reference §2).

    `slabs`: (OTR threshold, paise per algo order) ascending; an OTR at or above a threshold is
    in that slab (OTR exactly 50 pays 2 paise), below the first it pays nothing. Exemption bands
    are exact rationals so a price is judged in integers: cash and futures within
    `cash_band_num / cash_band_den` of LTP; options within `option_band_num / option_band_den`
    of the premium or `option_band_floor` currency units, whichever is wider.
    """

    name: str
    slabs: tuple[tuple[int, int], ...]
    cash_band_num: int
    cash_band_den: int
    option_band_num: int
    option_band_den: int
    option_band_floor: int  # rupees

    def __post_init__(self) -> None:
        if not self.slabs:
            raise ValueError(f"OTR rules {self.name!r}: no slabs")
        prev_t, prev_r = 0, 0
        for t, r in self.slabs:
            if t <= prev_t or r <= prev_r:
                raise ValueError(
                    f"OTR rules {self.name!r}: slab thresholds and rates must increase, got "
                    f"{self.slabs}"
                )
            prev_t, prev_r = t, r
        for f in ("cash_band_num", "cash_band_den", "option_band_num", "option_band_den"):
            if getattr(self, f) < (1 if f.endswith("den") else 0):
                raise ValueError(f"OTR rules {self.name!r}: bad {f} {getattr(self, f)}")
        if self.option_band_floor < 0:
            raise ValueError(f"OTR rules {self.name!r}: negative option_band_floor")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> OtrRules:
        """From a dated config table: `name`, `slabs = [[50, 2], [250, 10], ...]`,
        `cash_band_bp` (75 = 0.75%), `option_band_pct` (40), `option_band_floor_rupees` (20)."""
        known = {"name", "slabs", "cash_band_bp", "option_band_pct", "option_band_floor_rupees"}
        unknown = sorted(set(cfg) - known)
        missing = sorted(known - set(cfg))
        if unknown or missing:
            raise ValueError(f"OTR rules config: unknown keys {unknown}, missing keys {missing}")
        for k in known - {"name", "slabs"}:
            v = cfg[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"OTR rules config: {k!r} must be an int >= 0, got {v!r}")
        try:
            slabs = tuple((int(t), int(r)) for t, r in cfg["slabs"])
        except (TypeError, ValueError):
            raise ValueError(
                f"OTR rules config: 'slabs' must be [[threshold, paise], ...], got {cfg['slabs']!r}"
            ) from None
        return cls(
            name=str(cfg["name"]),
            slabs=slabs,
            cash_band_num=cfg["cash_band_bp"],
            cash_band_den=10_000,
            option_band_num=cfg["option_band_pct"],
            option_band_den=100,
            option_band_floor=cfg["option_band_floor_rupees"],
        )

    def band(self, segment: Segment, ltp: int, price_scale: int) -> int:
        """The widest |price - ltp| (price units) still exempt, or -1 when no write is (an
        unknown LTP, or a segment the rules do not cover). Cash (NSE/BSE equity) and futures:
        0.75% of LTP. Options: max(40% of the premium, Rs 20). Callers pricing many orders
        against one LTP (the Execution ladder) take it once; `exempt` is this, per price."""
        if ltp <= 0:
            return -1
        if segment in _CASH_LIKE:
            return ltp * self.cash_band_num // self.cash_band_den
        if segment == Segment.NFO_OPT:
            pct = ltp * self.option_band_num // self.option_band_den
            floor = self.option_band_floor * price_scale
            return pct if pct > floor else floor
        return -1

    def exempt(self, segment: Segment, price: int, ltp: int, price_scale: int) -> bool:
        """Is a write at `price` outside the OTR count, given the last traded price? (See
        `band`.) Any other segment, or an unknown LTP (<= 0), is never exempt: when in doubt
        the write counts. For a cancel, judge the resting order's price against the LTP when
        the cancel is sent.
        """
        d = price - ltp if price >= ltp else ltp - price
        return d <= self.band(segment, ltp, price_scale)


#: NSE, from 2026-04-06 (SEBI circular of 2026-02-04; slabs from the BSE notice, NSE jointly
#: (check)).
NSE_OTR_2026_04 = OtrRules(
    name="nse-2026-04",
    slabs=((50, 2), (250, 10), (500, 15), (1000, 20), (2000, 25)),
    cash_band_num=75,
    cash_band_den=10_000,
    option_band_num=40,
    option_band_den=100,
    option_band_floor=20,
)


def slab_rate_paise(orders: int, trades: int, rules: OtrRules = NSE_OTR_2026_04) -> int:
    """Penalty paise per algo order for a day with this many orders and trades.

    OTR = orders / max(trades, 1): a day without a trade is judged as if it had one (check:
    the circulars do not say; this is the exchanges' usual convention). Integer comparisons
    only: orders >= threshold * trades.
    """
    t = trades if trades > 0 else 1
    rate = 0
    for threshold, paise in rules.slabs:
        if orders >= threshold * t:
            rate = paise
        else:
            break
    return rate


def penalty_paise(orders: int, trades: int, rules: OtrRules = NSE_OTR_2026_04) -> int:
    """The day's penalty: the slab's rate times every penalty-relevant order write."""
    return slab_rate_paise(orders, trades, rules) * orders


@dataclass(frozen=True, slots=True)
class OtrSnapshot:
    """What the dashboard shows for the OTR budget (taken by the owner thread)."""

    day: int
    entries: int
    modifications: int
    cancels: int
    penalty_entries: int
    penalty_modifications: int
    penalty_cancels: int
    fills: int
    trades: int
    reserved_cancels: int
    ceiling: int
    otr_raw: float
    otr_penalty: float
    slab_paise: int
    penalty_paise: int  # if the day ended now
    projected_penalty_paise: int  # if every resting order is then cancelled outside the band
    headroom: int
    pressure: float


class OtrBudget:
    """The day's OTR, and a ceiling the engine keeps under by refusing entries and modifies.

    Counting rules (where the circulars are silent, the choice that over- rather than
    under-states our OTR):
    - Orders: entries, modifications and cancellations, each counted when sent. A rejected
      entry stays counted. An IOC's unfilled rest is a system cancel and counts
      (reference §2), and so does any order the venue expires, unless priced in the band.
    - Exemption: a write priced inside the band (`OtrRules.exempt`) is kept in the raw counts
      and left out of the penalty-relevant ones. The slab, penalty and ceiling use the latter.
    - Trades: one per order that traded, at its first fill (`on_fill(first_of_order=True)`),
      not one per fill: the exchange counts at least that many, so our OTR is never lower than
      the exchange's. Raw fills are counted too. Trades from exempt orders count as trades.
    - No trade yet: trades are taken as max(trades, 1). That is the only free allowance:
      `ceiling` penalty-relevant writes (including reserved cancels) before the first trade.
      A larger start-of-day allowance would let a day without fills end above the ceiling,
      so there is none.

    The ceiling (P = penalty-relevant writes, R = reserved cancels, T = max(trades, 1)):
    - Every entry reserves the one cancel it may need later, exempt or not -- an order placed
      in the band may be out of it when it is pulled. The reservation is released exactly
      once per order: by its first cancel (`record(CANCEL, ...)`), or by `on_order_done` when
      it ends without one (filled, rejected, expired; an expiry is a system cancel and counts).
    - A place is allowed iff P + [not exempt] + R + 1 + spare <= ceiling * T; a non-exempt
      modify iff P + 1 + R + spare <= ceiling * T; an exempt modify always.
    - A cancel is never refused: it was paid for by its entry's reservation. Hence at all
      times P + R <= ceiling * T, and so P <= ceiling * T even after every resting order is
      cancelled outside the band. `spare` extra writes are held back for cancels that need
      no reservation -- a retry after a lost answer (`repeat_cancel=True`) -- so up to
      `spare` retries still keep P <= ceiling * T.
    - T only grows during a day, so a write allowed once never becomes a breach later.
    - `pressure()` (0..1) is (P + R + spare) / (ceiling * T): Execution widens the ladder into
      the band, or pauses it, as it nears 1, before a refusal would ever be needed.

    A new trading day resets the counts but keeps the reservations of orders still open.
    """

    __slots__ = (
        "_cancels",
        "_day",
        "_entries",
        "_fills",
        "_mods",
        "_p_cancels",
        "_p_entries",
        "_p_mods",
        "_reserved",
        "_trades",
        "ceiling",
        "refused",
        "rules",
        "spare",
    )

    def __init__(
        self,
        ceiling: int,
        *,
        rules: OtrRules = NSE_OTR_2026_04,
        spare: int = 2,
        day: int | _dt.date = 0,
    ) -> None:
        if isinstance(ceiling, bool) or not isinstance(ceiling, int) or ceiling < 1:
            raise ValueError(f"OTR ceiling must be an int >= 1, got {ceiling!r}")
        if spare < 0:
            raise ValueError(f"spare must be >= 0, got {spare}")
        if ceiling < spare + 2:
            raise ValueError(
                f"OTR ceiling {ceiling} leaves no room for a first order (needs >= spare + 2 = "
                f"{spare + 2}: the entry and its cancel)"
            )
        self.ceiling = ceiling
        self.rules = rules
        self.spare = spare
        self._day = _day_index(day)
        self._reserved = 0
        self.refused = 0
        self._reset_counts()

    def _reset_counts(self) -> None:
        self._entries = self._mods = self._cancels = 0
        self._p_entries = self._p_mods = self._p_cancels = 0
        self._fills = self._trades = 0

    # -- the per-request path (cost: a few int additions and one comparison; no allocation) ----

    def allows(self, kind: WriteKind, exempt: bool) -> bool:
        """May this write go out without risking the ceiling? A cancel: always."""
        if kind == _CANCEL:
            return True
        t = self._trades if self._trades > 0 else 1
        used = self._p_entries + self._p_mods + self._p_cancels + self._reserved + self.spare
        if kind == _PLACE:
            used += 1  # the cancel this entry may need
        elif exempt:
            return True  # an exempt modify changes neither P nor R
        if not exempt:
            used += 1
        return used <= self.ceiling * t

    def record(self, kind: WriteKind, exempt: bool, *, repeat_cancel: bool = False) -> None:
        """A write was sent (after `allows`). `repeat_cancel`: this order already had a cancel
        counted (a retry), so there is no reservation left to release."""
        if kind == _PLACE:
            self._entries += 1
            self._reserved += 1
            if not exempt:
                self._p_entries += 1
        elif kind == _MODIFY:
            self._mods += 1
            if not exempt:
                self._p_mods += 1
        else:
            self._cancels += 1
            if not exempt:
                self._p_cancels += 1
            if not repeat_cancel and self._reserved > 0:
                self._reserved -= 1

    def on_fill(self, first_of_order: bool) -> None:
        """A fill. Pass True for the first fill of an order: that is when it becomes a trade."""
        self._fills += 1
        if first_of_order:
            self._trades += 1

    def on_order_done(
        self, cancel_sent: bool, system_cancel: bool = False, exempt: bool = False
    ) -> None:
        """An order ended (filled, cancel-acked, rejected, expired). Releases its reservation
        unless a cancel of ours already did. `system_cancel`: the venue cancelled it itself (an
        IOC's rest, the session end) and no cancel of ours was counted: that counts as a
        cancellation, exempt if the order was priced in the band (judged now)."""
        if cancel_sent:
            return
        if self._reserved > 0:
            self._reserved -= 1
        if system_cancel:
            self._cancels += 1
            if not exempt:
                self._p_cancels += 1

    def new_day(self, day: int | _dt.date) -> None:
        """A new trading day: counts start again; open orders keep their reserved cancel."""
        d = _day_index(day)
        if d < self._day:
            raise ValueError(f"trading day went backwards: {d} < {self._day}")
        if d != self._day:
            self._day = d
            self._reset_counts()

    # -- readings ------------------------------------------------------------------------------

    @property
    def entries(self) -> int:
        return self._entries

    @property
    def modifications(self) -> int:
        return self._mods

    @property
    def cancels(self) -> int:
        return self._cancels

    @property
    def orders(self) -> int:
        """Raw order writes today (entries + modifications + cancellations)."""
        return self._entries + self._mods + self._cancels

    @property
    def penalty_orders(self) -> int:
        """Penalty-relevant order writes today (the exempt ones left out)."""
        return self._p_entries + self._p_mods + self._p_cancels

    @property
    def trades(self) -> int:
        return self._trades

    @property
    def reserved_cancels(self) -> int:
        return self._reserved

    def budget(self) -> int:
        """Penalty-relevant writes the ceiling allows at today's trades: ceiling * max(T, 1)."""
        return self.ceiling * (self._trades if self._trades > 0 else 1)

    def headroom(self) -> int:
        """Non-exempt writes still possible (each new entry takes 2: itself and its cancel)."""
        return self.budget() - self.penalty_orders - self._reserved - self.spare

    def pressure(self) -> float:
        """0 (idle) .. 1 (at the ceiling): how hard Execution should widen or pause the ladder."""
        used = self.penalty_orders + self._reserved + self.spare
        p = used / self.budget()
        return 1.0 if p > 1.0 else p

    def slab_paise(self) -> int:
        return slab_rate_paise(self.penalty_orders, self._trades, self.rules)

    def penalty_paise(self) -> int:
        return penalty_paise(self.penalty_orders, self._trades, self.rules)

    def projected_penalty_paise(self) -> int:
        """The penalty if every resting order is then cancelled outside the band."""
        return penalty_paise(self.penalty_orders + self._reserved, self._trades, self.rules)

    def snapshot(self) -> OtrSnapshot:
        t = self._trades if self._trades > 0 else 1
        return OtrSnapshot(
            day=self._day,
            entries=self._entries,
            modifications=self._mods,
            cancels=self._cancels,
            penalty_entries=self._p_entries,
            penalty_modifications=self._p_mods,
            penalty_cancels=self._p_cancels,
            fills=self._fills,
            trades=self._trades,
            reserved_cancels=self._reserved,
            ceiling=self.ceiling,
            otr_raw=self.orders / t,
            otr_penalty=self.penalty_orders / t,
            slab_paise=self.slab_paise(),
            penalty_paise=self.penalty_paise(),
            projected_penalty_paise=self.projected_penalty_paise(),
            headroom=self.headroom(),
            pressure=self.pressure(),
        )


# -- the single door ---------------------------------------------------------------------------


class Budgets:
    """Rate limits and OTR asked together, so no order write can pass one and skip the other.

    Order of the questions: OTR first (a pure check), then the limiter (which records on
    success), then the OTR record -- a write is counted in both or in neither. Owned by the
    gateway thread, like its parts.
    """

    __slots__ = ("last_refusal", "limiter", "otr")

    def __init__(self, limiter: RateLimiter, otr: OtrBudget) -> None:
        self.limiter = limiter
        self.otr = otr
        self.last_refusal: Refusal = Refusal.NONE

    def try_acquire(
        self,
        kind: WriteKind,
        now_ns: int,
        *,
        exempt: bool,
        order_modifications: int = 0,
        repeat_cancel: bool = False,
    ) -> bool:
        """Take the budget for one write, or say why not (`last_refusal`).

        Cost: `OtrBudget.allows` + `RateLimiter.try_acquire` + `OtrBudget.record`; no
        allocation besides int temporaries.
        """
        if not self.otr.allows(kind, exempt):
            self.otr.refused += 1
            self.last_refusal = Refusal.OTR_CEILING
            return False
        if not self.limiter.try_acquire(kind, now_ns, order_modifications):
            self.last_refusal = self.limiter.last_refusal
            return False
        self.otr.record(kind, exempt, repeat_cancel=repeat_cancel)
        self.last_refusal = Refusal.NONE
        return True

    def acquire_place(self, now_ns: int, exempt: bool) -> bool:
        """`try_acquire(WriteKind.PLACE, now_ns, exempt=exempt)` for the order-write hot path:
        positional arguments (a keyword call costs ~0.5 µs on 3.13t), the same checks in the
        same order."""
        otr = self.otr
        if not otr.allows(_PLACE, exempt):
            otr.refused += 1
            self.last_refusal = Refusal.OTR_CEILING
            return False
        limiter = self.limiter
        if not limiter.try_acquire(_PLACE, now_ns, 0):
            self.last_refusal = limiter.last_refusal
            return False
        otr.record(_PLACE, exempt)
        self.last_refusal = Refusal.NONE
        return True

    def new_day(self, day: int | _dt.date) -> None:
        self.limiter.new_day(day)
        self.otr.new_day(day)
