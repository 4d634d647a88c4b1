"""Execution: signals in, passive limit orders out, each cancelled 200 ms after its ack.

Policy, per Signal (the hot path, `on_signal`):
1. Trade only when allowed: Sentinel not in LOCKDOWN/KILLED, the zero-trust gate open, the
   signal strong enough (|strength| >= `min_strength`). The side is the signal's.
2. Candidates on the tick grid, passive first: join the touch, then up to `ladder_levels - 1`
   levels behind it (`level_step_ticks` apart); improve the touch by one tick only when the
   spread leaves room and |strength| >= `improve_strength`; cross the spread only when
   `allow_cross` is set. Every candidate must sit inside Limit Price Protection and (unless
   `otr_band` is off) inside the OTR-exempt band around the last traded price; size is
   `order_lots` lots, never above the freeze quantity; never a MARKET order.
3. NEV for each (`vajra.trading.nev`): P(fill) from the queue ahead at that price and the
   recent trade rate over the order's life, times edge minus round-trip costs minus adverse
   selection. Up to `ladder_orders` working orders per side, best NEV first, each only if NEV
   clears the threshold. OTR pressure above `otr_pause` pauses new entries (the ladder
   widens and thins before the ceiling is near, instead of being refused at it).
4. Everything goes through the `OrderGateway` (kill word, Sentinel, rate limit, OTR).

Housekeeping, on every loop iteration (`on_tick`): apply venue answers; start each acked
passive order's cancel timer (`cancel_after_ns` from the moment we saw the ack); send the
cancels that are due (the timing wheel; their lateness against the deadline is recorded);
cancel orders the signal has turned against; on Sentinel's cancel-all edge (LOCKDOWN, KILLED)
cancel everything and keep retrying what the broker's limits held back.

States (NautilusTrader's, explicit): ACTIVE (quoting), REDUCING (gate closed or signal weak:
no new entries, working orders run out), HALTED (Sentinel says no: everything cancelled).

Owned by one thread; the caller passes `now_ns` (`perf_counter_ns` live, simulated in tests).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from vajra.market.events import Side
from vajra.market.instruments import Instrument
from vajra.modules.sentinel import EmergencyState
from vajra.trading.budgets import WriteKind
from vajra.trading.gateway import OrderGateway, WriteResult
from vajra.trading.nev import NevConfig, NevParts, RoundTripCost, evaluate_fast
from vajra.trading.orders import Outcome
from vajra.trading.orders import RttKind as OrderRtt
from vajra.trading.timers import TimerWheel
from vajra.venues.base import PlaceRequest, TimeInForce


class ExecState(enum.IntEnum):
    ACTIVE = 0
    REDUCING = 1
    HALTED = 2


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    cancel_after_ns: int = 200_000_000  # every unfilled passive order, after its ack
    ladder_orders: int = 2  # K: working orders per side at most
    ladder_levels: int = 3  # M: price levels considered, from the touch back
    level_step_ticks: int = 1
    order_lots: int = 1
    min_strength: float = 0.3
    improve_strength: float = 0.7
    allow_cross: bool = False
    otr_band: bool = True  # stay inside the OTR-exempt band (the gateway's `OtrRules.band`)
    lpp_bp: int = 300  # Limit Price Protection band around the reference price (futures ~3%)
    otr_pause: float = 0.9  # OTR pressure (0..1) at which new entries pause
    trade_rate_halflife_ns: int = 2_000_000_000  # the trade-rate estimate's memory
    tag: str = "vajra"
    nev: NevConfig = field(default_factory=NevConfig)

    def __post_init__(self) -> None:
        if self.cancel_after_ns <= 0 or self.ladder_orders < 1 or self.ladder_levels < 1:
            raise ValueError("execution: cancel_after_ns > 0, ladder_orders and levels >= 1")
        if self.order_lots < 1 or self.level_step_ticks < 1 or not 0 < self.otr_pause <= 1:
            raise ValueError("execution: order_lots, level_step_ticks >= 1; 0 < otr_pause <= 1")
        if not 0 <= self.min_strength <= self.improve_strength <= 1:
            raise ValueError("execution: 0 <= min_strength <= improve_strength <= 1")


class Execution:
    """One instrument's execution. See the module docstring."""

    def __init__(
        self,
        cfg: ExecutionConfig,
        gateway: OrderGateway,
        instrument: Instrument,
        cost: RoundTripCost,
        now_ns: int,
    ) -> None:
        self.cfg = cfg
        self.gw = gateway
        self.inst = instrument
        self.cost = cost
        self.tick = instrument.tick
        self.qty = cfg.order_lots * instrument.lot
        if instrument.freeze_qty and self.qty > instrument.freeze_qty:
            raise ValueError(
                f"order size {self.qty} is above the freeze quantity {instrument.freeze_qty}"
            )
        self.state = ExecState.REDUCING
        self.wheel = TimerWheel(now_ns)
        self.nev = NevParts()  # the best candidate's NEV parts, for the dashboard
        #: whether that candidate would pass every check now (rehearsed when not written)
        self.would_place = False
        #: working orders of ours per side: tick -> client id
        self.working: dict[Side, dict[int, int]] = {Side.BID: {}, Side.ASK: {}}
        #: the last sane Signal's (bid, ask, bid_qty, ask_qty, strength, edge_ticks), for `warm`
        self._last: tuple[int, int, int, int, float, float] | None = None
        self._outcomes: list[Outcome] = []
        self._due: list[tuple[int, int]] = []
        self._rate = 0.0  # traded units per second, decayed
        self._rate_t = now_ns
        self.ltp = 0  # last traded price, price units
        self._cancel_all = False
        self._place_after_ns = 0  # no placement attempt before this (broker limits)
        self._risk_state = EmergencyState.NORMAL  # the last state journaled
        #: round-trip cost (total, STT) at `qty` by touch price: ~4 µs to compute on 3.13t
        self._costs: dict[int, tuple[float, float]] = {}
        #: the reference price the bands are for, and the widest |price - ref| allowed (the
        #: tighter of Limit Price Protection and, with `otr_band`, the OTR-exempt band)
        self._band_ref = -1
        self._band = 0
        # counters and measurements
        self.signals = 0
        self.placed = 0
        self.cancels_sent = 0
        self.timer_cancels = 0
        self.cancel_lateness_ns: list[int] = []  # each timer cancel: sent - deadline

    @property
    def outcomes(self) -> list[Outcome]:
        """The venue answers the last `on_tick` applied (the engine's latency histograms read
        them); valid until the next `on_tick`."""
        return self._outcomes

    # -- market inputs --------------------------------------------------------------------------

    def on_trade(self, price: int, qty: int, now_ns: int) -> None:
        """A market trade: the last traded price and the trade-rate estimate (an exponentially
        decayed count: rate = decayed units / decay time constant)."""
        self.ltp = price
        dt = now_ns - self._rate_t
        if dt > 0:
            self._rate *= 0.5 ** (dt / self.cfg.trade_rate_halflife_ns)
            self._rate_t = now_ns
        self._rate += qty / (self.cfg.trade_rate_halflife_ns * 1.4426950408889634e-9)

    def _set_bands(self, ref: int) -> None:
        cfg = self.cfg
        lpp = ref * cfg.lpp_bp // 10_000
        band = lpp
        if cfg.otr_band:  # the exemption rules the OTR budget counts by
            inst = self.inst
            b = self.gw.otr_rules.band(inst.segment, ref, 10**inst.price_decimals)
            if 0 <= b < lpp:  # -1: the rules do not cover this segment (no OTR regime)
                band = b
        self._band_ref = ref
        self._band = band

    def trade_rate(self, now_ns: int) -> float:
        dt = now_ns - self._rate_t
        return self._rate * 0.5 ** (dt / self.cfg.trade_rate_halflife_ns) if dt > 0 else self._rate

    # -- the hot path ---------------------------------------------------------------------------

    def on_signal(
        self,
        now_ns: int,
        bid: int,
        ask: int,
        bid_qty: int,
        ask_qty: int,
        strength: float,
        edge_ticks: float,
        gate_open: bool,
    ) -> int:
        """Decide on one Signal (`bid`/`ask` in ticks); returns the orders placed. Cost on 3.13t:
        ~6 µs of NEV over the candidates (M + 1 at most) on every signal, ~7 µs more up to the
        venue call for an order written, ~5 µs of rehearsal for a signal that writes nothing."""
        self.signals += 1
        if ask <= bid or bid <= 0:
            return 0  # a crossed or empty top: nothing sane to quote against
        self._last = (bid, ask, bid_qty, ask_qty, strength, edge_ticks)
        buy = strength > 0
        mine = self.working[Side.BID if buy else Side.ASK]
        theirs = self.working[Side.ASK if buy else Side.BID]
        placed = self._decide(
            now_ns, buy, mine, bid, ask, bid_qty, ask_qty, strength, edge_ticks, gate_open
        )
        if not placed:
            # rehearse a write at the touch: whether it would pass every check now (for the
            # dashboard), and the write path kept in cache for the signal that does write
            self.would_place = self.gw.rehearse(
                self.inst.token,
                Side.BID if buy else Side.ASK,
                (bid if buy else ask) * self.tick,
                self.qty,
                now_ns,
            )
        if theirs:  # the signal turned: the other side's orders are against it now (their
            # cancels follow the new order: they do not cross it, and it is the urgent write);
            # one already being cancelled is not asked again on every later signal
            can_cancel = self.gw.tracker.can_cancel
            for cid in list(theirs.values()):
                if can_cancel(cid):
                    self._cancel(cid, now_ns)
        return placed

    def warm(self, now_ns: int) -> None:
        """The decision on the last Signal again, writing nothing: NEV over the candidates and
        a rehearsed write. For an idle loop, every few hundred µs: after 20 ms of nothing but
        the idle loop the next decision took 34 µs instead of 15 (the interpreter's branch
        history and the caches had been retrained on the idle loop); on the Binance replay,
        with ~50 ms between Signals, 60-90 µs. The parts for the dashboard are recomputed
        (NEV now, with the trade rate decayed); nothing else changes."""
        last = self._last
        if last is None:
            return
        bid, ask, bid_qty, ask_qty, strength, edge_ticks = last
        buy = strength > 0
        mine = self.working[Side.BID if buy else Side.ASK]
        self._decide(
            now_ns, buy, mine, bid, ask, bid_qty, ask_qty, strength, edge_ticks, False, True
        )
        self.gw.rehearse(
            self.inst.token,
            Side.BID if buy else Side.ASK,
            (bid if buy else ask) * self.tick,
            self.qty,
            now_ns,
        )

    def _decide(
        self,
        now_ns: int,
        buy: bool,
        mine: dict[int, int],
        bid: int,
        ask: int,
        bid_qty: int,
        ask_qty: int,
        strength: float,
        edge_ticks: float,
        gate_open: bool,
        dry: bool = False,
    ) -> int:
        cfg = self.cfg
        a = strength if buy else -strength
        # NEV is evaluated on every signal, whether it may write or not: the dashboard shows it
        # live, and the decision code stays in cache for the rare signal that writes. A write
        # after thousands of signals that skipped this (a closed gate, a weak signal) took
        # 35-70 µs instead of 13-17: every step of it missed the caches.
        tick = self.tick
        spread = ask - bid
        mid2 = bid + ask
        touch, touch_qty = (bid, bid_qty) if buy else (ask, ask_qty)
        step = -cfg.level_step_ticks if buy else cfg.level_step_ticks
        rate = self.trade_rate(now_ns)
        ref = self.ltp if self.ltp > 0 else mid2 * tick // 2
        if ref != self._band_ref:  # the price bands move only with the reference price
            self._set_bands(ref)
        band = self._band
        best_v = cfg.nev.threshold_paise
        best_t = 0
        # candidates: one tick better than the touch (empty queue ahead), the touch (its
        # queue), then levels behind it; the far touch only when crossing is allowed
        # per decision, not per candidate: the round trip's cost at the touch, the fair price,
        # the volume expected to trade over an order's life
        qty = self.qty
        px = touch * tick
        c = self._costs.get(px)  # the touch moves among a few prices: cost once per price
        if c is None:
            if len(self._costs) >= 256:
                self._costs.clear()
            c = self._costs[px] = self.cost(px, qty)
        total, stt = c
        fair = (mid2 * 0.5 + edge_ticks) * tick
        nev = cfg.nev
        adverse = nev.adverse_spread_frac
        m = rate * nev.horizon_ns * 1e-9
        if m < nev.min_rate:
            m = nev.min_rate
        # the parts of nev.evaluate_fast that do not depend on the price, hoisted: the loop
        # computes each candidate's value with the same expression, and evaluate_fast fills
        # the dashboard's parts once, for the best
        adv = adverse * spread * tick * qty * (1.0 - (a if a > 0.0 else 0.0))
        exp = math.exp
        best_ahead = 0
        best_mkt = False
        improve = spread > 1 and a >= cfg.improve_strength
        first = touch - step if improve else touch
        n = cfg.ladder_levels + (1 if improve else 0) + (1 if cfg.allow_cross else 0)
        for i in range(n):
            if cfg.allow_cross and i == n - 1:
                t = ask if buy else bid
            else:
                t = first + i * step
            if t in mine or t <= 0:
                continue
            price = t * tick
            d = price - ref if price >= ref else ref - price
            if d > band:
                continue
            marketable = t >= ask if buy else t <= bid
            if t == touch:
                ahead = touch_qty
            elif marketable or (t > touch if buy else t < touch):
                ahead = 0
            else:  # behind the touch: assume the touch's queue again at each level
                ahead = touch_qty * (1 + (touch - t) // -step)
            p = 1.0 if marketable or ahead <= 0 else exp(-ahead / m)
            v = p * (((fair - price) if buy else (price - fair)) * qty - total - adv)
            if v > best_v:
                best_v, best_t, best_ahead, best_mkt = v, t, ahead, marketable
        # whether this signal may write at all: Sentinel, the gate, strength, OTR pressure
        if dry:
            pass  # warming (`warm`): the state stays what the last real Signal made it
        elif not self.gw.sentinel.ok:
            self.state = ExecState.HALTED
        elif (
            not gate_open or a < cfg.min_strength or self.gw.budgets.otr.pressure() >= cfg.otr_pause
        ):
            self.state = ExecState.REDUCING
        else:
            self.state = ExecState.ACTIVE
        if not best_t:
            return 0
        placed = 0
        # ladder full, or the broker's limits say no placement before `_place_after_ns`
        if (
            not dry
            and self.state is ExecState.ACTIVE
            and len(mine) < cfg.ladder_orders
            and now_ns >= self._place_after_ns
        ):
            cid = self.gw.tracker.next_client_id()
            req = PlaceRequest(
                cid,
                self.inst.token,
                Side.BID if buy else Side.ASK,
                best_t * tick,
                qty,
                TimeInForce.DAY,
                cfg.tag,
            )
            r = self.gw.place(req, now_ns)
            if r is WriteResult.SENT:
                mine[best_t] = cid
                self.placed += 1
                placed = 1
            elif r is WriteResult.BUDGET:  # wait for the window instead of asking every signal
                nxt = self.gw.budgets.limiter.next_allowed_ns(WriteKind.PLACE, now_ns)
                self._place_after_ns = now_ns + 60_000_000_000 if nxt is None else nxt
        # the best candidate's NEV parts for the dashboard, filled after the write: off its path
        evaluate_fast(
            self.nev,
            adverse,
            m,
            buy,
            best_t * tick,
            qty,
            fair,
            tick,
            strength,
            spread,
            best_ahead,
            best_mkt,
            total,
            stt,
        )
        return placed

    # -- housekeeping ---------------------------------------------------------------------------

    def on_tick(self, now_ns: int) -> None:
        """Venue answers, due cancel timers, and Sentinel's verdict; call every loop."""
        gw = self.gw
        kill = gw.kill_word()  # every iteration, not only before writes: the kill beats all
        if kill:
            gw.sentinel.on_kill_flag(now_ns, kill)
        out = self._outcomes
        out.clear()
        gw.poll(now_ns, out)
        for oc in out:
            o = oc.order
            if o is None or not oc.applied:
                continue
            if oc.rtt_kind is OrderRtt.ORDER and o.acked and not o.terminal:
                # its first ack (even one arriving after a fill): the cancel clock starts
                self.wheel.schedule(o.client_id, now_ns + self.cfg.cancel_after_ns)
            elif o.terminal:
                self.wheel.cancel(o.client_id)
                side = self.working[o.side]
                t = o.price // self.tick
                if side.get(t) == o.client_id:
                    del side[t]
        due = self._due
        due.clear()
        if self.wheel.expire(now_ns, due):
            for cid, deadline in due:
                if self._cancel(cid, now_ns):
                    self.timer_cancels += 1
                    self.cancel_lateness_ns.append(now_ns - deadline)
        state, cancel_all = gw.sentinel.evaluate(now_ns)
        if state != self._risk_state:
            if gw.journal is not None:
                gw.journal.risk(int(state), int(self._risk_state), gw.sentinel.reason.name, now_ns)
            self._risk_state = state
        if cancel_all:
            self._cancel_all = True
        if state >= EmergencyState.LOCKDOWN:
            self.state = ExecState.HALTED
        if self._cancel_all:
            _, held = gw.cancel_all(now_ns)
            self._cancel_all = held > 0  # retry what the broker's limits held back

    def _cancel(self, cid: int, now_ns: int) -> bool:
        r = self.gw.cancel(cid, now_ns)
        if r is WriteResult.SENT:
            self.cancels_sent += 1
            return True
        if r is WriteResult.BUDGET:  # held back by the broker: try again shortly
            self.wheel.schedule(cid, now_ns + 1_000_000)
        return False
