"""Sonar: market entropy, the Attack / Veto regime, and the zero-trust gate.

Entropy (docs/signals.md): the Shannon entropy of consecutive pairs of mid-price move
directions over the last `window` moves, normalised to 0..1 (2 bits = 1), with the mid sampled
once per `sample_ns` of event time so quote flicker (a mid that steps out and back within a
fraction of a second) does not pass for information. A trend (up, up, ...)
and a mean-reverting market (up, down, up, ...) both concentrate the pairs, so entropy is low and
imbalance signals carry information; a noisy market spreads the pairs evenly, entropy nears 1,
and Sonar vetoes. A thin book (wide spread) vetoes at once, whatever the entropy.

Regime switches have hysteresis (enter Veto above `enter_veto`, leave below `exit_veto`) and a
minimum dwell time, so the regime cannot flap at event rate.

The zero-trust gate: Execution may place orders only while every condition passes. Each
condition's state and the time it last changed are kept individually and published in a
seqlocked block, so the dashboard shows exactly which condition closed the gate and since when.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from vajra.market.book import L2Book, Violation
from vajra.shm.layout import Field
from vajra.shm.seqlock import SeqlockWriter, seqlocked

_GAP = int(Violation.SEQUENCE_GAP)
_CROSS_OR_LOCK = int(Violation.CROSSED | Violation.LOCKED)


class Regime(enum.IntEnum):
    VETO = 0
    ATTACK = 1


class VetoReason(enum.IntFlag):
    NONE = 0
    WARMUP = 1  # not enough moves seen yet to judge
    ENTROPY = 2
    THIN = 4  # spread wider than max_spread_ticks, or no book


class Condition(enum.IntEnum):
    FEED_FRESH = 0
    NO_GAP = 1
    BOOK_SANE = 2
    CLOCK_STABLE = 3
    REGIME_ATTACK = 4
    SENTINEL_OK = 5
    KILL_CLEAR = 6


CONDITIONS = tuple(Condition)
_WARMUP, _ENTROPY, _THIN = int(VetoReason.WARMUP), int(VetoReason.ENTROPY), int(VetoReason.THIN)


@dataclass(frozen=True, slots=True)
class SonarConfig:
    window: int = 24  # direction pairs in the entropy window
    sample_ns: int = 500_000_000  # mid sampled this often (event time); 0: every mid change
    enter_veto: float = 0.95  # normalised entropy above which Attack turns to Veto
    exit_veto: float = 0.90  # below which Veto turns back to Attack
    min_dwell_ns: int = 2_000_000_000  # minimum time in a regime before an entropy switch
    max_spread_ticks: int = 10  # wider than this vetoes at once (thin book)
    stale_after_ns: int = 2_000_000_000  # no market data for this long closes the gate

    def __post_init__(self) -> None:
        if self.window < 4:
            raise ValueError("sonar window must be >= 4")
        if not 0.0 < self.exit_veto < self.enter_veto <= 1.0:
            raise ValueError("sonar thresholds need 0 < exit_veto < enter_veto <= 1")
        if self.sample_ns < 0:
            raise ValueError("sonar sample_ns must be >= 0")
        if self.min_dwell_ns < 0 or self.max_spread_ticks < 1 or self.stale_after_ns <= 0:
            raise ValueError("sonar dwell >= 0, max_spread_ticks >= 1, stale_after_ns > 0")


GATE = seqlocked(
    "gate",
    1,
    (
        Field("open", doc="1 when every condition passes"),
        Field("open_changed_ns"),
        Field("regime"),
        Field("regime_since_ns"),
        Field("veto_reasons"),
        Field("entropy", "d", doc="normalised 0..1"),
        Field("moves", doc="mid-price moves seen"),
        *(
            f
            for c in CONDITIONS
            for f in (Field(f"{c.name.lower()}_ok"), Field(f"{c.name.lower()}_changed_ns"))
        ),
    ),
)


class Sonar:
    """Owned by one thread. Feed it book states (`on_book`), then `evaluate_gate`."""

    def __init__(self, cfg: SonarConfig | None = None) -> None:
        self.cfg = cfg = cfg or SonarConfig()
        self._pairs = bytearray(cfg.window)  # ring of pair symbols 0..3
        self._pi = 0
        self._counts = [0, 0, 0, 0]
        self._npairs = 0
        self._last_mid2 = 0  # bid + ask in ticks (2 x mid, an integer)
        self._last_dir = -1  # 0 down, 1 up, -1 none yet
        self._next_sample = 0
        self._plogp = [0.0] * (cfg.window + 1)  # -p log2 p for p = c / window
        w = cfg.window
        for c in range(1, w + 1):
            p = c / w
            self._plogp[c] = -p * math.log2(p)
        self.moves = 0
        self.entropy = 1.0
        self.regime = Regime.VETO
        #: VetoReason bits of the regime in force (a plain int on the hot path)
        self.reasons: int = _WARMUP
        self.regime_since_ns = 0
        self._entropy_latch = False
        self.last_event_ns = 0
        self.spread = 0
        # gate
        self.ok = [False] * len(CONDITIONS)
        self.changed_ns = [0] * len(CONDITIONS)
        self.open = False
        self.open_changed_ns = 0

    # -- entropy and regime -----------------------------------------------------------------

    def on_book(self, book: L2Book, now_ns: int, event_ns: int = 0) -> None:
        """Account one book state: `now_ns` is the local receive time (staleness), `event_ns`
        the event's own time (exchange time; the receive time when the venue gives none), on
        which sampling and the dwell run, so a replay at any speed gives the same regimes.
        Cost between samples: ~10 attribute operations; at a sample that moved the mid: a ring
        update and an O(1) entropy update from a precomputed table."""
        self.last_event_ns = now_ns
        if not event_ns:
            event_ns = now_ns
        bid, ask = book.best_bid(), book.best_ask()
        if bid == 0 or ask == 0:
            self.spread = 0
            self._set_regime(Regime.VETO, _THIN, event_ns, force=True)
            return
        self.spread = spread = ask - bid
        mid2 = bid + ask
        sample = self.cfg.sample_ns
        if sample:
            if event_ns < self._next_sample:
                self._decide(spread, event_ns)
                return
            self._next_sample = event_ns + sample
        last = self._last_mid2
        self._last_mid2 = mid2
        if last and mid2 != last:
            d = 1 if mid2 > last else 0
            if self._last_dir >= 0:
                self._add_pair(self._last_dir * 2 + d)
            self._last_dir = d
            self.moves += 1
        self._decide(spread, event_ns)

    def _add_pair(self, sym: int) -> None:
        w = self.cfg.window
        counts = self._counts
        if self._npairs == w:
            counts[self._pairs[self._pi]] -= 1
        else:
            self._npairs += 1
        self._pairs[self._pi] = sym
        counts[sym] += 1
        self._pi = self._pi + 1 if self._pi + 1 < w else 0
        if self._npairs == w:
            t = self._plogp
            self.entropy = (t[counts[0]] + t[counts[1]] + t[counts[2]] + t[counts[3]]) / 2.0

    def _decide(self, spread: int, now_ns: int) -> None:
        """Regime rule: warm-up and a thin book veto at once; otherwise the entropy latch
        (on above `enter_veto`, off below `exit_veto`, unchanged in between) decides, and a
        switch it asks for waits until the regime has lasted `min_dwell_ns`.
        Plain ints, not VetoReason: IntFlag arithmetic runs as Python-level enum code."""
        cfg = self.cfg
        full = self._npairs == cfg.window
        if full:
            e = self.entropy
            if e > cfg.enter_veto:
                self._entropy_latch = True
            elif e < cfg.exit_veto:
                self._entropy_latch = False
        reasons = _ENTROPY if self._entropy_latch else 0
        if not full:
            reasons |= _WARMUP
        if spread > cfg.max_spread_ticks:
            reasons |= _THIN
        if reasons & (_WARMUP | _THIN):
            self._set_regime(Regime.VETO, reasons, now_ns, force=True)
        elif reasons:
            self._set_regime(Regime.VETO, reasons, now_ns, force=False)
        else:
            self._set_regime(Regime.ATTACK, reasons, now_ns, force=False)

    def _set_regime(self, regime: Regime, reasons: int, now_ns: int, force: bool) -> None:
        """Immediate when `force` (safety vetoes); otherwise only after the minimum dwell. While
        a switch waits, `reasons` keeps describing the regime in force."""
        if regime is self.regime:
            self.reasons = reasons
            return
        if not force and now_ns - self.regime_since_ns < self.cfg.min_dwell_ns:
            return
        self.regime = regime
        self.reasons = reasons
        self.regime_since_ns = now_ns

    # -- the gate ---------------------------------------------------------------------------

    def evaluate_gate(
        self,
        now_ns: int,
        book: L2Book,
        *,
        clock_stable: bool = True,
        sentinel_ok: bool = True,
        kill_clear: bool = True,
    ) -> bool:
        """Re-evaluate every condition at `now_ns` (the caller's clock, same as the events'
        recv_ns); returns whether the gate is open."""
        state = book.state
        fresh = self.last_event_ns > 0 and now_ns - self.last_event_ns <= self.cfg.stale_after_ns
        vals = (
            fresh,
            not state & _GAP,
            not state & _CROSS_OR_LOCK,
            clock_stable,
            self.regime is Regime.ATTACK,
            sentinel_ok,
            kill_clear,
        )
        ok, changed = self.ok, self.changed_ns
        all_ok = True
        for i in range(len(vals)):
            v = vals[i]
            if v != ok[i]:
                ok[i] = v
                changed[i] = now_ns
            all_ok = all_ok and v
        if all_ok != self.open:
            self.open = all_ok
            self.open_changed_ns = now_ns
        return all_ok

    def failing(self) -> list[str]:
        return [c.name for c in CONDITIONS if not self.ok[c]]


class GateWriter:
    """Publishes Sonar's regime and gate into a seqlocked block (single writer)."""

    __slots__ = ("_first", "_w")

    def __init__(self, buf: memoryview, offset: int) -> None:
        self._w = SeqlockWriter(buf, offset, GATE)
        self._first = self._w.first

    def publish(self, s: Sonar) -> None:
        w = self._w
        q, d, f = w.q, w.d, self._first
        w.begin()
        q[f] = 1 if s.open else 0
        q[f + 1] = s.open_changed_ns
        q[f + 2] = int(s.regime)
        q[f + 3] = s.regime_since_ns
        q[f + 4] = s.reasons
        d[f + 5] = s.entropy
        q[f + 6] = s.moves
        ok, changed = s.ok, s.changed_ns
        for i in range(len(CONDITIONS)):
            q[f + 7 + 2 * i] = 1 if ok[i] else 0
            q[f + 8 + 2 * i] = changed[i]
        w.end()

    def close(self) -> None:
        self._w.close()
