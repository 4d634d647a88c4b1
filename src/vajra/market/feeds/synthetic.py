"""The embedded default market: a seeded stochastic order-flow model on NSE ticks and lots.

Why a model and not a random walk: Sonar and Oracle read order-book microstructure (queue sizes,
imbalance, spread, trade flow), so the default market must produce it from order flow. This is
the level-quantity model of Cont, Stoikov & Talreja (2010): limit orders arrive at distance i
ticks from the opposite best quote with rate λ(i) = λ / i**α, market orders with rate μ per side,
and resting quantity is cancelled at rate θ per resting order. Market orders optionally excite
themselves (a Hawkes process per side, branching ratio n < 1), so trades cluster. Four phases
(`Phase`), each a `PhaseParams`, switch on a schedule or a seeded Markov chain, and every switch
is announced in-stream (`PhaseChange`) so detectors can be scored against ground truth.
`docs/synthetic-flow.md` has the equations, every default and the observable statistics.

Units: trade prices in paise on the instrument's tick grid, book levels as tick indexes (the
`BookUpdate` convention); quantities in shares (NSE's unit), always whole lots, because for NSE
derivatives the lot is the minimum order size and every order is a multiple of it. Internally
quantities are lots and prices are tick indexes into two flat lists spanning the price band, so
an event costs a few list reads and writes and the event object.

Determinism: one `random.Random(seed)` drives everything, in a fixed order, with no hash(),
set or dict iteration over user-ordered keys, so a seed gives the same events in every process.

Ownership: a feed is owned by one thread (the simulated venue's); it is not thread-safe.
"""

from __future__ import annotations

import enum
import math
import random
import types
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from vajra.market.events import BookUpdate, Side, Trade
from vajra.market.instruments import Instrument, Segment

IST = timezone(timedelta(hours=5, minutes=30), "IST")
#: 2026-11-26 09:15:00 IST, the normal-market open, in ns since the epoch.
DEFAULT_START_NS = int(datetime(2026, 11, 26, 9, 15, tzinfo=IST).timestamp()) * 1_000_000_000
#: Reference price of the default instrument: ₹2,450.00 in paise.
DEFAULT_PRICE = 245_000


class Phase(enum.IntEnum):
    """Market regimes the generator can be in; an IntEnum so it fits a shared-memory word."""

    TRENDING = 1
    MEAN_REVERTING = 2
    NOISY = 3
    THIN = 4


class InjectionKind(enum.IntEnum):
    STALE_GAP = 1
    CROSSED = 2


@dataclass(frozen=True, slots=True)
class PhaseChange:
    """Ground truth, not market data: the generator entered `phase` at `exch_ns`.

    `direction` is the trend sign (+1 up, -1 down) in TRENDING and 0 otherwise. `anchor_x2` is
    twice the mid the flow leans back towards in MEAN_REVERTING (best bid + best ask at the
    switch, price units; doubled so a half-tick mid stays an integer), else 0. `prev` is None
    for the first event of a stream.
    """

    token: int
    recv_ns: int
    exch_ns: int
    phase: Phase
    prev: Phase | None
    direction: int = 0
    anchor_x2: int = 0


@dataclass(frozen=True, slots=True)
class Injected:
    """Ground truth, not market data: a deliberate fault starts now.

    STALE_GAP: no further event for `duration_ns` (the venue goes quiet; the book is unchanged
    afterwards, so it is a stale feed, not a lost one). CROSSED: the next BookUpdate crosses the
    book and the one after it repairs the crossing.
    """

    token: int
    recv_ns: int
    exch_ns: int
    kind: InjectionKind
    duration_ns: int = 0


SyntheticEvent = BookUpdate | Trade | PhaseChange | Injected


@dataclass(frozen=True, slots=True)
class PhaseParams:
    """One regime's order-flow parameters. Rates are per second of simulated time.

    lam, alpha: limit orders per side arrive at distance i = 1..levels ticks from the opposite
        best quote with rate lam / i**alpha (alpha small: orders spread deep; large: at the touch).
    mu: market orders per side, base rate.
    theta: cancellation rate of each resting order. Orders are not tracked one by one: a cancel
        removes a limit-sized chunk from a level chosen in proportion to its quantity, at a rate
        theta * resting_lots / limit_lots per side, which is the same lots-per-second outflow.
    limit_lots, market_lots: mean order sizes in lots (sizes are 1 + geometric, so >= 1 lot).
    hawkes_n, hawkes_decay: market-order self-excitation; each market order adds
        hawkes_n * hawkes_decay to its own side's rate, decaying at hawkes_decay per second.
        hawkes_n is the branching ratio (expected orders triggered per order), < 1 for stability.
    flow_bias, limit_bias: how far the lean ℓ in [-1, 1] tilts the flow: buy market orders at
        mu * (1 + flow_bias*ℓ), sells at mu * (1 - flow_bias*ℓ), bid limits at lam *
        (1 + limit_bias*ℓ), ask limits at lam * (1 - limit_bias*ℓ). ℓ is the trend direction in
        TRENDING, -tanh(deviation / revert_ticks) in MEAN_REVERTING and 0 otherwise.
    revert_ticks: MEAN_REVERTING's deviation scale (ticks of mid away from the anchor at which
        the lean reaches tanh(1) = 76 %).
    churn: cancel/replace churn at the touch, per side: at this rate a limit-sized chunk is
        cancelled from the best quote, on top of theta. A rate per side, not per resting order,
        so a thick level that becomes the best is not torn down at once: it is the small orders
        placed inside the spread that flicker, as quote-replacing market makers' do.
    """

    lam: float
    alpha: float
    mu: float
    theta: float
    limit_lots: float = 2.0
    market_lots: float = 2.0
    hawkes_n: float = 0.0
    hawkes_decay: float = 1.0
    flow_bias: float = 0.0
    limit_bias: float = 0.0
    revert_ticks: float = 8.0
    churn: float = 0.0

    def __post_init__(self) -> None:
        if min(self.lam, self.mu, self.theta, self.alpha) < 0 or self.lam == 0:
            raise ValueError("rates must be >= 0 and lam > 0")
        if self.limit_lots < 1 or self.market_lots < 1:
            raise ValueError("mean order sizes are at least one lot")
        if not 0 <= self.hawkes_n < 1 or self.hawkes_decay <= 0:
            raise ValueError("Hawkes branching ratio must be in [0, 1), decay > 0")
        if not (0 <= self.flow_bias <= 1 and 0 <= self.limit_bias <= 1):
            raise ValueError("biases must be within [0, 1] so no rate turns negative")
        if self.churn < 0:
            raise ValueError("churn must be >= 0")
        if self.revert_ticks <= 0:
            raise ValueError("revert_ticks must be > 0")


#: Defaults, tuned so the phases differ in what a detector sees (docs/synthetic-flow.md).
DEFAULT_PARAMS: Mapping[Phase, PhaseParams] = types.MappingProxyType(
    {
        Phase.TRENDING: PhaseParams(
            lam=4.0,
            alpha=0.5,
            mu=3.0,
            theta=1.0,
            hawkes_n=0.5,
            hawkes_decay=2.0,
            flow_bias=0.3,
            limit_bias=0.15,
        ),
        Phase.MEAN_REVERTING: PhaseParams(
            lam=4.0,
            alpha=0.5,
            mu=3.0,
            theta=1.0,
            hawkes_n=0.2,
            hawkes_decay=2.0,
            flow_bias=0.8,
            limit_bias=0.5,
            revert_ticks=2.0,
        ),
        Phase.NOISY: PhaseParams(
            lam=15.0,
            alpha=1.0,
            mu=2.0,
            theta=1.0,
            churn=20.0,
            limit_lots=1.0,
            market_lots=1.5,
            hawkes_n=0.2,
            hawkes_decay=2.0,
        ),
        Phase.THIN: PhaseParams(
            lam=0.4,
            alpha=0.1,
            mu=1.0,
            theta=1.5,
            limit_lots=1.5,
            market_lots=2.0,
        ),
    }
)

#: Default schedule: each phase in turn, cycled, in seconds of simulated time. About 13,000
#: events per cycle with the default parameters, so every phase appears within the first 15,000.
DEFAULT_SCHEDULE: tuple[tuple[Phase, float], ...] = (
    (Phase.MEAN_REVERTING, 40.0),
    (Phase.TRENDING, 40.0),
    (Phase.NOISY, 20.0),
    (Phase.THIN, 60.0),
)


@dataclass(frozen=True, slots=True)
class MarkovSchedule:
    """Regimes as a seeded Markov chain: stay in a phase for Exp(mean_dwell_s[phase]) seconds,
    then move to another phase with probabilities `transitions[phase][next]` (weights,
    normalised; None means uniform over the other phases). Draws come from the feed's own
    seeded generator, so the path is part of the seed's determinism."""

    mean_dwell_s: Mapping[Phase, float]
    transitions: Mapping[Phase, Mapping[Phase, float]] | None = None
    start: Phase = Phase.MEAN_REVERTING

    def __post_init__(self) -> None:
        if self.start not in self.mean_dwell_s:
            raise ValueError(f"the start phase {self.start.name} has no mean dwell time")
        for p in Phase:
            if p in self.mean_dwell_s:
                if self.mean_dwell_s[p] <= 0:
                    raise ValueError(f"mean_dwell_s[{p.name}] must be > 0")
                self.weights(p)

    def weights(self, current: Phase) -> list[tuple[Phase, float]]:
        """Next-phase weights in Phase order (never the mapping's order: determinism), over the
        phases that have a dwell time."""
        row = None if self.transitions is None else self.transitions.get(current)
        out = [
            (p, 1.0 if row is None else float(row.get(p, 0.0)))
            for p in Phase
            if p != current and p in self.mean_dwell_s
        ]
        if any(w < 0 for _, w in out) or sum(w for _, w in out) <= 0:
            raise ValueError(f"no valid transition out of {current.name}")
        return out


@dataclass(frozen=True, slots=True)
class Injections:
    """Deliberate faults for demos and tests, off by default. Times are simulated seconds after
    the session start. `stale_at_s`: the venue goes silent for `stale_for_s`. `crossed_at_s`:
    one crossed BookUpdate (a bid one tick above the best ask), repaired by the next update, so
    a book that applies every event sees exactly one violation. Each is announced by `Injected`."""

    stale_at_s: float | None = None
    stale_for_s: float = 5.0
    crossed_at_s: float | None = None


def default_instrument() -> Instrument:
    """A fictional NSE stock future near ₹2,450: tick ₹0.10 (the 2025 table for ₹1,000-5,000),
    lot 250 shares, operating range ±10 % of the reference price (check: NSE sets stock-futures
    bands per contract). The symbol and token are made up so nothing mistakes it for a real
    contract; the December contract because the November one expired on Tuesday 2026-11-24."""
    return Instrument(
        token=990_001,
        symbol="SYNTH26DECFUT",
        exchange="NFO",
        segment=Segment.NFO_FUT,
        price_decimals=2,
        tick=10,
        lot=250,
        band_low=220_500,
        band_high=269_500,
        name="SYNTH",
        expiry="2026-12-29",
    )


_NEVER = 1 << 62
_BID, _ASK = Side.BID, Side.ASK


def _size_rate(mean_lots: float) -> float:
    """Rate r such that 1 + floor(Exp(r)) has mean `mean_lots` (0: always one lot)."""
    return 0.0 if mean_lots <= 1.0 else math.log(mean_lots / (mean_lots - 1.0))


class SyntheticFeed:
    """An endless, deterministic stream of `SyntheticEvent`s for one instrument.

    Call `initial_snapshot()` first and apply it, then consume `next_event()` (or iterate). The
    stream starts with a `PhaseChange`; `phase` is the regime that produced the last event.
    Multi-event outcomes (a market order sweeping levels: one `Trade` per level, then one
    `BookUpdate`) come out in that order with the same `exch_ns`.
    """

    __slots__ = (
        "_adep",
        "_anchor2",
        "_aq",
        "_ba",
        "_bb",
        "_bdep",
        "_beta",
        "_bq",
        "_ca_rate",
        "_churn",
        "_cum",
        "_decay",
        "_direction",
        "_eb",
        "_es",
        "_flow",
        "_hi",
        "_initial",
        "_injections",
        "_lam",
        "_lean",
        "_limit_bias",
        "_lot",
        "_markov",
        "_mu",
        "_params",
        "_pending",
        "_px0",
        "_revert",
        "_rl",
        "_rm",
        "_rng",
        "_schedule",
        "_schedule_i",
        "_seq",
        "_session_mid2",
        "_stale_ns",
        "_t",
        "_t0",
        "_t_inject",
        "_t_phase_end",
        "_tick",
        "_trade_id",
        "instrument",
        "levels",
        "phase",
        "recv_base_ns",
        "start_ns",
        "token",
    )

    def __init__(
        self,
        seed: int,
        instrument: Instrument | None = None,
        schedule: Sequence[tuple[Phase, float]] | MarkovSchedule | None = None,
        levels: int = 10,
        *,
        params: Mapping[Phase, PhaseParams] | None = None,
        price: int | None = None,
        start_ns: int = DEFAULT_START_NS,
        recv_base_ns: int = 1_000_000_000,
        inject: Injections | None = None,
    ) -> None:
        """`seed` must be an int (string seeds would work but invite hash-like surprises).
        `price` is the opening best ask in paise, one tick above the best bid (default ₹2,450
        for the default instrument, else the middle of the instrument's band). `levels` is how many ticks from the opposite best
        limit orders may land (CST's L); older orders left deeper by price moves stay until
        cancelled. `recv_ns` = ns since session start + `recv_base_ns` (never 0; the live
        driver overwrites it with its own clock)."""
        if not isinstance(seed, int):
            raise TypeError("seed must be an int")
        if levels < 1:
            raise ValueError("levels must be >= 1")
        inst = instrument or default_instrument()
        tick = inst.tick
        if price is None:
            if instrument is None:
                price = DEFAULT_PRICE
            elif inst.band_low and inst.band_high:
                price = (inst.band_low + inst.band_high) // 2 // tick * tick
            else:
                raise ValueError("give `price` for an instrument without a price band")
        if price <= 0 or price % tick:
            raise ValueError(f"price {price} is not a positive multiple of the tick {tick}")
        lo = inst.band_low // tick if inst.band_low else price * 9 // 10 // tick
        hi = inst.band_high // tick if inst.band_high else price * 11 // 10 // tick
        p0 = price // tick - lo  # index of the opening best ask
        if not levels + 1 < p0 < hi - lo - levels - 1:
            raise ValueError("price too close to the band for the book to fit")
        self.instrument = inst
        self.token = inst.token
        self.levels = levels
        self.start_ns = start_ns
        self.recv_base_ns = recv_base_ns
        self._tick = tick
        self._px0 = lo * tick
        self._t0 = lo  # tick index of slot 0 (BookUpdate levels are tick indexes)
        self._lot = inst.lot
        self._hi = hi - lo
        self._rng = random.Random(seed)
        self._params = dict(DEFAULT_PARAMS)
        if params:
            for p in Phase:
                if p in params:
                    self._params[p] = params[p]
        self._bq = [0] * (self._hi + 1)
        self._aq = [0] * (self._hi + 1)
        self._bb, self._ba = p0 - 1, p0
        self._session_mid2 = 2 * p0 - 1
        self._anchor2 = self._session_mid2
        self._t = 0
        self._seq = 0
        self._trade_id = 0
        self._eb = self._es = 0.0
        self._pending: deque[SyntheticEvent] = deque()
        inj = inject or Injections()
        due = []
        if inj.stale_at_s is not None:
            if inj.stale_at_s < 0 or inj.stale_for_s <= 0:
                raise ValueError("a stale gap needs stale_at_s >= 0 and stale_for_s > 0")
            due.append((round(inj.stale_at_s * 1e9), InjectionKind.STALE_GAP))
        if inj.crossed_at_s is not None:
            if inj.crossed_at_s < 0:
                raise ValueError("crossed_at_s must be >= 0")
            due.append((round(inj.crossed_at_s * 1e9), InjectionKind.CROSSED))
        #: pending injections, latest first, so the next is popped from the end
        self._injections = sorted(due, reverse=True)
        self._t_inject = self._injections[-1][0] if due else _NEVER
        self._stale_ns = round(inj.stale_for_s * 1e9)

        # schedule
        self._markov: MarkovSchedule | None = None
        self._schedule: tuple[tuple[Phase, float], ...] = ()
        self._schedule_i = 0
        if isinstance(schedule, MarkovSchedule):
            self._markov = schedule
            first = schedule.start
            self._t_phase_end = self._dwell_ns(first)
        else:
            self._schedule = tuple(schedule) if schedule is not None else DEFAULT_SCHEDULE
            if not self._schedule or any(s <= 0 for _, s in self._schedule):
                raise ValueError("a schedule needs at least one segment, each of > 0 s")
            first = self._schedule[0][0]
            self._t_phase_end = round(self._schedule[0][1] * 1e9)
        self.phase = first
        self._direction = 0
        self._enter(first)
        self._fill_initial()
        self._bdep = sum(self._bq)
        self._adep = sum(self._aq)
        self._initial = self.snapshot()
        self._pending.append(
            PhaseChange(
                self.token, recv_base_ns, start_ns, first, None, self._direction, self._anchor()
            )
        )

    # -- public -------------------------------------------------------------------------------

    def initial_snapshot(self) -> BookUpdate:
        """The book before the first event: apply it, then every event in order."""
        return self._initial

    def snapshot(self) -> BookUpdate:
        """The whole current book as a snapshot (late joiners; O(band width), not per event)."""
        t0, lot = self._t0, self._lot
        bq, aq = self._bq, self._aq
        bids = tuple((t0 + i, bq[i] * lot) for i in range(self._bb, -1, -1) if bq[i])
        asks = tuple((t0 + i, aq[i] * lot) for i in range(self._ba, self._hi + 1) if aq[i])
        return BookUpdate(
            self.token,
            self.recv_base_ns + self._t,
            self.start_ns + self._t,
            bids,
            asks,
            snapshot=True,
            last_id=self._seq,
        )

    @property
    def clock_ns(self) -> int:
        """Simulated exchange time of the last generated event (ns since the epoch)."""
        return self.start_ns + self._t

    def next_event(self) -> SyntheticEvent:
        pending = self._pending
        if pending:
            return pending.popleft()
        step = self._step
        while True:
            ev = step()
            if ev is not None:
                return ev

    def events(self, n: int) -> Iterator[SyntheticEvent]:
        nxt = self.next_event
        for _ in range(n):
            yield nxt()

    def __iter__(self) -> Iterator[SyntheticEvent]:
        return self

    def __next__(self) -> SyntheticEvent:
        return self.next_event()

    # -- phases -------------------------------------------------------------------------------

    def _anchor(self) -> int:
        if self.phase is not Phase.MEAN_REVERTING:
            return 0
        return 2 * self._px0 + self._anchor2 * self._tick

    def _dwell_ns(self, phase: Phase) -> int:
        assert self._markov is not None
        return max(1, round(self._rng.expovariate(1.0 / self._markov.mean_dwell_s[phase]) * 1e9))

    def _enter(self, phase: Phase) -> None:
        """Load a phase's parameters into flat slots (the hot path reads no dataclass)."""
        pp = self._params[phase]
        weights = [pp.lam / i**pp.alpha for i in range(1, self.levels + 1)]
        cum, acc = [], 0.0
        for w in weights:
            acc += w
            cum.append(acc)
        self._cum = cum
        self._lam = acc
        self._mu = pp.mu
        self._ca_rate = pp.theta / pp.limit_lots
        self._churn = pp.churn
        self._rl = _size_rate(pp.limit_lots)
        self._rm = _size_rate(pp.market_lots)
        self._decay = pp.hawkes_decay
        self._beta = pp.hawkes_n * pp.hawkes_decay
        self._flow = pp.flow_bias
        self._limit_bias = pp.limit_bias
        self._revert = pp.revert_ticks * 2  # mid is kept in half ticks
        self._lean = 0.0
        self._direction = 0
        if phase is Phase.TRENDING:
            # Point the trend back towards the session's opening mid the further the price has
            # wandered (88 % once it is a tenth of the band's half-width away: 1 % of the price
            # for a ±10 % band), so a long session stays well inside the band.
            dev = (self._bb + self._ba - self._session_mid2) / (self._hi * 0.1)
            up = 0.5 * (1.0 - math.tanh(dev))
            self._direction = 1 if self._rng.random() < up else -1
            self._lean = float(self._direction)
        elif phase is Phase.MEAN_REVERTING:
            self._anchor2 = self._bb + self._ba

    def _fill_initial(self) -> None:
        """Start near the phase's stationary profile, E[q_i] = λ(i)·size/θ lots at distance i
        from the opposite best (CST's birth-death balance without market orders), so the first
        seconds are not a visible warm-up. At least one lot sits at each best quote."""
        pp = self._params[self.phase]
        per_lot = pp.theta if pp.theta > 0 else 1.0
        bb, ba = self._bb, self._ba
        for i in range(1, self.levels + 1):
            q = max(0, round(pp.lam / i**pp.alpha * pp.limit_lots / per_lot))
            self._bq[ba - i] = q
            self._aq[bb + i] = q
        self._bq[bb] = max(1, self._bq[bb])
        self._aq[ba] = max(1, self._aq[ba])

    def _control(self, due: int) -> SyntheticEvent:
        """The scheduled phase switch or injection due at `due`, the earlier of the two (the
        exponential clock is memoryless, so dropping the draw that overshot it is exact). One
        due inside a stale gap happens when the gap ends."""
        t = due if due > self._t else self._t
        dt = t - self._t
        if dt and (self._eb or self._es):
            dec = math.exp(-self._decay * dt * 1e-9)
            self._eb *= dec
            self._es *= dec
        self._t = t
        token, exch, recv = self.token, self.start_ns + t, self.recv_base_ns + t
        if self._t_phase_end <= self._t_inject:
            prev = self.phase
            if self._markov is not None:
                choices = self._markov.weights(prev)
                x = self._rng.random() * sum(w for _, w in choices)
                nxt = choices[-1][0]
                for p, w in choices:
                    if x < w:
                        nxt = p
                        break
                    x -= w
                self._t_phase_end = t + self._dwell_ns(nxt)
            else:
                self._schedule_i = (self._schedule_i + 1) % len(self._schedule)
                nxt, secs = self._schedule[self._schedule_i]
                self._t_phase_end = t + round(secs * 1e9)
            self.phase = nxt
            self._enter(nxt)
            return PhaseChange(token, recv, exch, nxt, prev, self._direction, self._anchor())
        _, kind = self._injections.pop()
        self._t_inject = self._injections[-1][0] if self._injections else _NEVER
        if kind is InjectionKind.STALE_GAP:
            gap = self._stale_ns
            dec = math.exp(-self._decay * gap * 1e-9)
            self._eb *= dec
            self._es *= dec
            self._t = t + gap
            return Injected(token, recv, exch, kind, gap)
        # a bid one tick above the best ask, then its deletion: one crossed book, then sane
        glitch = self._t0 + self._ba + 1
        self._seq += 1
        s = self._seq
        self._pending.append(BookUpdate(token, recv, exch, ((glitch, self._lot),), (), False, s, s))
        s += 1
        self._seq = s
        self._pending.append(BookUpdate(token, recv, exch, ((glitch, 0),), (), False, s, s))
        return Injected(token, recv, exch, kind)

    # -- the hot path -------------------------------------------------------------------------

    def _step(self) -> SyntheticEvent | None:
        """One draw of the Gillespie clock: returns an event, or None for a draw that changed
        nothing (a Hawkes thinning rejection, an order outside the band, an empty cancel)."""
        rng = self._rng
        lean = self._lean
        if self.phase is Phase.MEAN_REVERTING:
            lean = -math.tanh((self._bb + self._ba - self._anchor2) / self._revert)
        lam, mu, kl, kf = self._lam, self._mu, self._limit_bias, self._flow
        lb = lam * (1.0 + kl * lean)
        la = lam * (1.0 - kl * lean)
        mb = mu * (1.0 + kf * lean)
        ms = mu * (1.0 - kf * lean)
        cr = self._ca_rate
        cb = cr * self._bdep
        ca = cr * self._adep
        tb = self._churn
        eb, es = self._eb, self._es
        base = lb + la + mb + ms + cb + ca + tb + tb
        total = base + eb + es
        t_old = self._t
        dt = rng.expovariate(total)
        t = t_old + int(dt * 1e9)
        t_ctl = self._t_phase_end if self._t_phase_end < self._t_inject else self._t_inject
        if t >= t_ctl:
            return self._control(t_ctl)
        self._t = t
        u = rng.random() * total
        if eb or es:
            # Ogata thinning: the excitation only decays between events, so the rate at the
            # start of the interval bounds it; accept with probability rate(t)/bound.
            dec = math.exp(-self._decay * dt)
            eb *= dec
            es *= dec
            if eb < 1e-9:
                eb = 0.0
            if es < 1e-9:
                es = 0.0
            self._eb, self._es = eb, es
            if u >= base + eb + es:
                return None
        mb += eb
        ms += es
        t0, lot = self._t0, self._lot
        if u < lb:  # limit bid at distance i below the best ask
            i = bisect_right(self._cum, u / lb * lam) + 1
            at = self._ba - i
            if at < 0:
                return None
            q = self._bq[at] + 1 + (int(rng.expovariate(self._rl)) if self._rl else 0)
            self._bdep += q - self._bq[at]
            self._bq[at] = q
            if at > self._bb:
                self._bb = at
            self._seq += 1
            s = self._seq
            return BookUpdate(
                self.token,
                self.recv_base_ns + t,
                self.start_ns + t,
                ((t0 + at, q * lot),),
                (),
                False,
                s,
                s,
            )
        u -= lb
        if u < la:  # limit ask at distance i above the best bid
            i = bisect_right(self._cum, u / la * lam) + 1
            at = self._bb + i
            if at > self._hi:
                return None
            q = self._aq[at] + 1 + (int(rng.expovariate(self._rl)) if self._rl else 0)
            self._adep += q - self._aq[at]
            self._aq[at] = q
            if at < self._ba:
                self._ba = at
            self._seq += 1
            s = self._seq
            return BookUpdate(
                self.token,
                self.recv_base_ns + t,
                self.start_ns + t,
                (),
                ((t0 + at, q * lot),),
                False,
                s,
                s,
            )
        u -= la
        if u < mb:
            self._eb = eb + self._beta
            return self._market(True, t)
        u -= mb
        if u < ms:
            self._es = es + self._beta
            return self._market(False, t)
        u -= ms
        if u < cb:
            return self._cancel(True, int(u / cr), t)
        u -= cb
        if u < ca:
            return self._cancel(False, int(u / cr), t)
        # churn: r = 0 is the best quote's first lot
        return self._cancel(u - ca < tb, 0, t)

    def _cancel(self, bid: bool, r: int, t: int) -> BookUpdate | None:
        """Cancel a limit-sized chunk at the level holding resting lot number r (counted from
        the best quote), never the side's last lot: an empty side has no best quote for new
        orders to be placed against."""
        n = 1 + (int(self._rng.expovariate(self._rl)) if self._rl else 0)
        if bid:
            book, at, step, dep = self._bq, self._bb, -1, self._bdep
        else:
            book, at, step, dep = self._aq, self._ba, 1, self._adep
        if r >= dep:
            r = dep - 1
        q = book[at]
        while r >= q:
            r -= q
            at += step
            q = book[at]
        if n > q:
            n = q
        if n >= dep:
            n = dep - 1
        if n <= 0:
            return None
        q -= n
        book[at] = q
        if bid:
            self._bdep = dep - n
            if not q and at == self._bb:
                b = at - 1
                while not book[b]:
                    b -= 1
                self._bb = b
        else:
            self._adep = dep - n
            if not q and at == self._ba:
                a = at + 1
                while not book[a]:
                    a += 1
                self._ba = a
        self._seq += 1
        s = self._seq
        level = ((self._t0 + at, q * self._lot),)
        recv, exch = self.recv_base_ns + t, self.start_ns + t
        if bid:
            return BookUpdate(self.token, recv, exch, level, (), False, s, s)
        return BookUpdate(self.token, recv, exch, (), level, False, s, s)

    def _market(self, buy: bool, t: int) -> SyntheticEvent | None:
        """A market order sweeps the opposite side from its best quote: one Trade per level it
        fills (the aggressor's side), then one BookUpdate with every level it touched. It never
        takes the side's last lot (real orders from algos carry market protection, and the model
        needs a best quote to place limit orders against)."""
        n = 1 + (int(self._rng.expovariate(self._rm)) if self._rm else 0)
        if buy:
            book, at, step, dep, aggressor = self._aq, self._ba, 1, self._adep, _BID
        else:
            book, at, step, dep, aggressor = self._bq, self._bb, -1, self._bdep, _ASK
        if n >= dep:
            n = dep - 1
        if n <= 0:
            return None
        tick, px0, lot, token = self._tick, self._px0, self._lot, self.token
        recv, exch = self.recv_base_ns + t, self.start_ns + t
        pending = self._pending
        levels = []
        left = n
        first: Trade | None = None
        while True:
            q = book[at]
            if q:
                take = q if q < left else left
                q -= take
                left -= take
                book[at] = q
                px = px0 + at * tick
                self._trade_id += 1
                tr = Trade(token, recv, exch, px, take * lot, aggressor, self._trade_id)
                if first is None:
                    first = tr
                else:
                    pending.append(tr)
                levels.append((at + self._t0, q * lot))
                if not left:
                    break
            at += step
        while not book[at]:
            at += step
        self._seq += 1
        s = self._seq
        if buy:
            self._adep = dep - n
            self._ba = at
            # the levels a sweep took, best first and one per tick: an ordered update
            pending.append(
                BookUpdate(token, recv, exch, (), tuple(levels), False, s, s, ordered=True)
            )
        else:
            self._bdep = dep - n
            self._bb = at
            pending.append(
                BookUpdate(token, recv, exch, tuple(levels), (), False, s, s, ordered=True)
            )
        return first
