"""The order gateway: the only code that talks to a venue.

Every order write (place, modify, cancel) passes here, in this order:
1. the kill word, read from the control block just before the write: set -> no place or
   modify goes out (cancels still do: they only remove risk, and the kill path needs them);
2. Sentinel's pre-trade check (state, notional, position, open orders, daily loss) for places
   and modifies; cancels are always allowed;
3. the budgets: one rate limiter for all writes and the OTR ceiling (`Budgets`), which keep a
   reserve for cancels so a cancel of a resting order is never starved by new placements;
4. the order registry (`OrderTracker`), then the venue; and the journal, when attached.
A refusal is an answer (`WriteResult`), counted per reason, never a silent drop.

Answers come back through `poll(now_ns)`: each venue event is applied to the registry, and its
consequences fan out from here: RTT samples to Sentinel (measured on our clock, from the write
to the poll that saw the answer), fills to the OTR count and the portfolio, a rate-limit
answer to the limiter's cooldown. So Execution never touches the venue, the budgets or the
registry's bookkeeping itself, and a simulated venue and Kite look the same to it.

Owned by the Execution thread, like everything it holds.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from time import perf_counter_ns
from typing import Protocol

from vajra.market.events import Side
from vajra.market.instruments import Instrument
from vajra.modules.sentinel import RttKind as SentinelRtt
from vajra.modules.sentinel import Sentinel, Verdict
from vajra.trading.budgets import Budgets, OtrRules, WriteKind
from vajra.trading.orders import TERMINAL_STATES, Order, OrderState, OrderTracker, Outcome
from vajra.trading.orders import RttKind as OrderRtt
from vajra.trading.positions import Portfolio
from vajra.venues.base import (
    CancelRequest,
    ModifyRequest,
    PlaceRequest,
    Reject,
    RejectReason,
    TimeInForce,
    Venue,
    VenueEvent,
)


def _valid(inst: Instrument, price: int, qty: int) -> bool:
    """On the tick grid, a positive whole number of lots, at most the freeze quantity."""
    return (
        price > 0
        and not price % inst.tick
        and qty > 0
        and not qty % inst.lot
        and not (inst.freeze_qty and qty > inst.freeze_qty)
    )


class WriteResult(enum.IntEnum):
    SENT = 0
    KILLED = 1  # the kill word is set: no new exposure
    RISK = 2  # Sentinel refused (see `last_verdict`)
    BUDGET = 3  # rate limit, cooldown or OTR ceiling (see `budgets.last_refusal`)
    INVALID = 4  # unknown instrument, off the grid, not a lot multiple, above freeze quantity
    NOTHING = 5  # a cancel or modify of an order that is already finished or unknown


class Journal(Protocol):
    """What the gateway records (the journal writer implements it)."""

    def write(
        self, kind: WriteKind, req: PlaceRequest | ModifyRequest | CancelRequest, now_ns: int
    ) -> None: ...

    def refusal(self, client_id: int, result: int, reason: int, now_ns: int) -> None: ...

    def event(self, ev: VenueEvent, now_ns: int) -> None: ...

    def risk(self, state: int, previous: int, reason: str, now_ns: int) -> None: ...


class OrderGateway:
    """See the module docstring. `kill_word` returns the control block's kill word (0: clear);
    `ltp` the last traded price of a token in price units (0: unknown), for the OTR-exempt
    band; `cost` the paise a fill costs (the cost model's per-order charge), for positions."""

    def __init__(
        self,
        venue: Venue,
        budgets: Budgets,
        sentinel: Sentinel,
        instruments: Mapping[int, Instrument],
        *,
        kill_word: Callable[[], int],
        ltp: Callable[[int], int],
        otr_rules: OtrRules | None = None,
        tracker: OrderTracker | None = None,
        portfolio: Portfolio | None = None,
        cost: Callable[[int, Side, int, int], int] | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.venue = venue
        self.budgets = budgets
        self.sentinel = sentinel
        self.instruments = instruments
        self.tracker = tracker if tracker is not None else OrderTracker()
        self.portfolio = portfolio if portfolio is not None else Portfolio()
        #: the control block's kill word (0: clear): read before every write, and by loops
        #: that poll it between writes
        self.kill_word = kill_word
        self._ltp = ltp
        #: the exemption bands both the gateway and Execution's ladder judge prices by
        self.otr_rules = otr_rules if otr_rules is not None else budgets.otr.rules
        self._cost = cost
        self.journal = journal
        self.refused = dict.fromkeys(WriteResult, 0)
        #: working units per (token, side), and what each order contributes to it
        self._rest: dict[tuple[int, Side], int] = {}
        self._counted: dict[int, int] = {}
        self.sent = dict.fromkeys(WriteKind, 0)
        self.last_verdict = Verdict.OK
        #: perf_counter_ns() right after the last place reached the venue: where the
        #: decision-latency benchmark stops its clock
        self.last_write_ns = 0

    # -- writes ---------------------------------------------------------------------------------

    def place(self, req: PlaceRequest, now_ns: int) -> WriteResult:
        """Send a new limit order, or say why not. Cost: a kill-word load, Sentinel's check,
        the budgets (~2 µs together on 3.13t), the registry entry and the venue call."""
        inst = self.instruments.get(req.token)
        tracker = self.tracker
        if inst is None or not _valid(inst, req.price, req.qty) or not tracker.fresh(req.client_id):
            return self._refuse(req.client_id, WriteResult.INVALID, 0, now_ns)
        kill = self.kill_word()
        if kill:
            self.sentinel.on_kill_flag(now_ns, kill)
            return self._refuse(req.client_id, WriteResult.KILLED, 0, now_ns)
        sign, exposure = self._exposure(req.token, req.side)
        v = self.sentinel.check_order(
            req.token,
            sign,
            req.qty,
            req.price,
            req.price * req.qty,
            tracker.open_count,
            exposure,
        )  # positional: the kill word was read just above, so no `kill=`/`now_ns=` needed
        if v is not Verdict.OK:
            self.last_verdict = v
            return self._refuse(req.client_id, WriteResult.RISK, int(v), now_ns)
        exempt = self._exempt(inst, req.price)
        if not self.budgets.acquire_place(now_ns, exempt):
            return self._refuse(
                req.client_id, WriteResult.BUDGET, int(self.budgets.last_refusal), now_ns
            )
        # The write goes out first and the books are kept after it (~3 µs off the decision):
        # nothing can answer it before this thread polls, and `fresh` above guarantees the
        # registry takes it. If the venue call raises (a network error: the order may be out),
        # it is still registered as sent, so reconciliation finds it either way.
        try:
            self.venue.place(req, now_ns)
            self.last_write_ns = perf_counter_ns()  # the decision benchmark's end mark (~90 ns)
        finally:
            self._track(tracker.new(req, now_ns, sent=True))
        self.sent[WriteKind.PLACE] += 1
        if self.journal is not None:
            self.journal.write(WriteKind.PLACE, req, now_ns)
        return WriteResult.SENT

    def rehearse(self, token: int, side: Side, price: int, qty: int, now_ns: int) -> bool:
        """Everything `place` would check for this order, without sending or recording
        anything: whether it would go out now (for the dashboard's best candidate) and, the
        reason it runs on every signal that does not write, the write path kept in cache. A
        write after a quiet stretch was ~5x slower in every step than one in a burst; the
        objects a write allocates are built here too, and dropped. Cost: ~5 µs."""
        inst = self.instruments.get(token)
        if inst is None or not _valid(inst, price, qty) or self.kill_word():
            return False
        sign, exposure = self._exposure(token, side)
        v = self.sentinel.would_allow(
            sign, qty, price, price * qty, self.tracker.open_count, exposure
        )
        exempt = self._exempt(inst, price)
        budgets = self.budgets
        ok = (
            v is Verdict.OK
            and budgets.otr.allows(WriteKind.PLACE, exempt)
            and budgets.limiter.can_acquire(WriteKind.PLACE, now_ns)
        )
        _warm = (  # built for the cache, as a write would build them, then dropped
            PlaceRequest(0, token, side, price, qty, TimeInForce.DAY, ""),
            Order(0, token, side, price, qty, TimeInForce.DAY, "", now_ns),
        )
        return ok

    def modify(self, client_id: int, price: int, qty: int, now_ns: int) -> WriteResult:
        """Change an order's price or total quantity (Kite semantics), through the same checks
        as a place (with the new terms) and the per-order modification cap."""
        o = self.tracker.get(client_id)
        if o is None or o.terminal:
            return self._refuse(client_id, WriteResult.NOTHING, 0, now_ns)
        inst = self.instruments[o.token]
        if price <= 0 or price % inst.tick or qty <= 0 or qty % inst.lot:
            return self._refuse(client_id, WriteResult.INVALID, 0, now_ns)
        kill = self.kill_word()
        if kill:
            self.sentinel.on_kill_flag(now_ns, kill)
            return self._refuse(client_id, WriteResult.KILLED, 0, now_ns)
        if not self.tracker.can_modify(client_id, price, qty):
            return WriteResult.NOTHING  # in flight, unchanged or not resting: no slot taken
        sign, exposure = self._exposure(o.token, o.side)
        extra = qty - o.qty
        v = self.sentinel.check_order(
            o.token,
            sign,
            qty,
            price,
            price * qty,
            self.tracker.open_count - 1,
            exposure - sign * o.remaining,  # this order's own remainder is being replaced
        )
        if v is not Verdict.OK and not (v is Verdict.POSITION and extra <= 0):
            self.last_verdict = v
            return self._refuse(client_id, WriteResult.RISK, int(v), now_ns)
        if not self.budgets.try_acquire(
            WriteKind.MODIFY,
            now_ns,
            exempt=self._exempt(inst, price),
            order_modifications=o.modifications,
        ):
            return self._refuse(
                client_id, WriteResult.BUDGET, int(self.budgets.last_refusal), now_ns
            )
        if not self.tracker.modify_requested(client_id, price, qty, now_ns):
            return WriteResult.NOTHING  # a modify or cancel already in flight, or finished
        req = ModifyRequest(client_id, price, qty)
        self.venue.modify(req, now_ns)
        self.sent[WriteKind.MODIFY] += 1
        if self.journal is not None:
            self.journal.write(WriteKind.MODIFY, req, now_ns)
        return WriteResult.SENT

    def cancel(self, client_id: int, now_ns: int) -> WriteResult:
        """Cancel an order. Never refused by the kill word or by Sentinel; only the broker's
        own limits (a full window, a 429 cooldown) can hold it, and the budgets keep a reserve
        for cancels so new placements cannot use those up."""
        o = self.tracker.get(client_id)
        if o is None or o.terminal:
            return self._refuse(client_id, WriteResult.NOTHING, 0, now_ns)
        if not self.tracker.can_cancel(client_id):
            # a cancel already in flight, or an order never sent (ended here): no slot taken
            self.tracker.cancel_requested(client_id, now_ns)
            self._track(o)
            return WriteResult.NOTHING
        repeat = o.cancel_sent_ns != 0
        inst = self.instruments.get(o.token)  # None: an orphan adopted with no known terms
        exempt = self._exempt(inst, o.price) if inst is not None else False
        if not self.budgets.try_acquire(
            WriteKind.CANCEL, now_ns, exempt=exempt, repeat_cancel=repeat
        ):
            return self._refuse(
                client_id, WriteResult.BUDGET, int(self.budgets.last_refusal), now_ns
            )
        if not self.tracker.cancel_requested(client_id, now_ns):
            self._track(o)  # it may have ended locally (cancelled before it was sent)
            return WriteResult.NOTHING
        req = CancelRequest(client_id)
        self.venue.cancel(req, now_ns)
        self.sent[WriteKind.CANCEL] += 1
        if self.journal is not None:
            self.journal.write(WriteKind.CANCEL, req, now_ns)
        return WriteResult.SENT

    def cancel_all(self, now_ns: int) -> tuple[int, int]:
        """Cancel every working order not already being cancelled; returns (sent, held back by
        the broker's limits). Callers retry the held-back ones on their next loop."""
        sent = held = 0
        for o in self.tracker.open_orders():
            if o.cancel_sent_ns:
                continue
            r = self.cancel(o.client_id, now_ns)
            if r is WriteResult.SENT:
                sent += 1
            elif r is WriteResult.BUDGET:
                held += 1
        return sent, held

    def restore(
        self,
        open_orders: Mapping[int, tuple[int, Side, int, int, int]],
        venue_open: list[int],
        next_client_id: int,
        now_ns: int,
    ) -> tuple[int, int]:
        """Restart reconciliation: every order the venue lists open is an orphan (no strategy
        state survives a restart to manage it), so each is adopted into the registry and
        cancelled through the normal path (budgets included). `open_orders` is what the journal
        knows of them: client id -> (token, side, price, qty, filled); an order the venue lists
        that the journal does not know is adopted with no terms and cancelled all the same.
        Client ids restart at `next_client_id`. Returns (cancels sent, held back by the broker's
        limits; the caller's loop retries those with `cancel_all`)."""
        tracker = self.tracker
        tracker.advance_client_ids(next_client_id - 1)
        sent = held = 0
        for cid in venue_open:
            token, side, price, qty, filled = open_orders.get(cid, (0, Side.BID, 1, 1, 0))
            o = tracker.adopt(cid, token, side, price, qty, filled, now_ns)
            self._track(o)
            r = self.cancel(cid, now_ns)
            if r is WriteResult.SENT:
                sent += 1
            elif r is WriteResult.BUDGET:
                held += 1
        return sent, held

    # -- answers ------------------------------------------------------------------------------

    def poll(self, now_ns: int, out: list[Outcome]) -> int:
        """Apply every venue answer due at `now_ns`; appends their outcomes to `out` and
        returns how many."""
        events = self.venue.poll(now_ns)
        if not events:
            return 0  # the idle loop's common case
        tracker, sentinel, budgets = self.tracker, self.sentinel, self.budgets
        filled = False
        for ev in events:
            oc = tracker.apply(ev)
            out.append(oc)
            o = oc.order
            if o is not None and oc.applied:
                self._track(o)
            if oc.rtt_kind is OrderRtt.ORDER and o is not None:
                sentinel.on_rtt(SentinelRtt.ORDER, now_ns - o.sent_ns, now_ns)
            elif oc.rtt_kind is OrderRtt.CANCEL and o is not None:
                sentinel.on_rtt(SentinelRtt.CANCEL, now_ns - o.cancel_sent_ns, now_ns)
            if oc.fill_qty and o is not None:
                filled = True
                budgets.otr.on_fill(o.filled == oc.fill_qty)
                cost = self._cost(o.token, o.side, oc.fill_price, oc.fill_qty) if self._cost else 0
                portfolio = self.portfolio
                portfolio.fill(o.token, o.side, oc.fill_price, oc.fill_qty, cost)
                p = portfolio.get(o.token)
                sentinel.on_position(o.token, p.qty if p is not None else 0)
            if type(ev) is Reject and ev.reason is RejectReason.RATE_LIMITED:
                budgets.limiter.on_rate_limited(now_ns, ev.retry_after_ns)
            if (
                o is not None
                and oc.prev is not None
                and oc.prev not in TERMINAL_STATES
                and oc.state in TERMINAL_STATES
            ):
                # the order ended: release its reserved cancel; a venue expiry (IOC rest,
                # session end) counts as a cancellation we did not send
                inst = self.instruments.get(o.token)
                budgets.otr.on_order_done(
                    o.cancel_sent_ns != 0,
                    system_cancel=oc.state is OrderState.EXPIRED,
                    exempt=self._exempt(inst, o.price) if inst is not None else False,
                )
            if self.journal is not None:
                self.journal.event(ev, now_ns)
        if filled:  # the day's P&L moves with fills (positions are marked at their fills)
            sentinel.on_pnl(self.portfolio.net())
        return len(events)

    # -- helpers --------------------------------------------------------------------------------

    def _exposure(self, token: int, side: Side) -> tuple[int, int]:
        """(+1 buy / -1 sell, the position a new order on that side adds to): the filled
        position plus what already works on the same side, for Sentinel's position limit."""
        sign = 1 if side is Side.BID else -1
        pos = self.portfolio.get(token)
        return sign, (pos.qty if pos is not None else 0) + sign * self._rest.get((token, side), 0)

    def _resting(self, token: int, side: Side) -> int:
        """Units still working on one side of one instrument (for the position limit), kept
        incrementally (`_track`): O(1) on the write path."""
        return self._rest.get((token, side), 0)

    def _track(self, o: Order) -> None:
        """Re-count one order's working quantity after anything changed it (a place, a fill,
        a modify answer, its end): the difference goes into its side's total."""
        new = 0 if o.terminal else o.remaining
        old = self._counted.pop(o.client_id, 0)
        if new:
            self._counted[o.client_id] = new
        if new != old:
            key = (o.token, o.side)
            self._rest[key] = self._rest.get(key, 0) + new - old

    def _exempt(self, inst: Instrument, price: int) -> bool:
        ltp = self._ltp(inst.token)
        if ltp <= 0:
            return False
        return self.otr_rules.exempt(inst.segment, price, ltp, 10**inst.price_decimals)

    def _refuse(self, client_id: int, result: WriteResult, reason: int, now_ns: int) -> WriteResult:
        self.refused[result] += 1
        if self.journal is not None and result is not WriteResult.NOTHING:
            self.journal.refusal(client_id, result, reason, now_ns)
        return result
