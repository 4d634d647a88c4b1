"""The engine's own orders: the order state machine as one table, and the registry that feeds
venue events through it without ever raising on them.

Why one table (h11 `_state.py`): every rule about which event may move an order where lives
in `TRANSITIONS` below, as data; `OrderTracker` only classifies an event into an `OrderInput`,
looks the pair (state, input) up, and applies what the entry says. A reviewer checks the
protocol by reading the table, and the tests check the table itself (terminal rows never
leave their state; no fill is ever dropped).

Why venue input never raises, unlike h11's remote protocol errors: a venue that contradicts
itself (a fill for a cancelled order, an ack after the fill) is a fact about the market, not a
bug to crash on. Execution must keep running to cancel what still rests, and Sentinel must see
the contradiction. So `apply` returns an `Outcome` (what happened, and why not when nothing
did) and counts every `Anomaly` per kind. Local misuse (an unknown client id in `sent`, a
reused client id) is the engine's own bug and raises `OrderError`, like h11's
`LocalProtocolError`.

Decisions, each where it is implemented:
- The working states (NEW … PENDING_CANCEL) are derived from the order's facts (`_working`):
  a table entry says "to the working state" (`_W`), and one function says which that is. Only
  the terminal states are latched. So a fill, an ack and a modify answer, arriving in any
  order, land on the same state: the state is never "behind" what the order has seen.
- Terminal is final: FILLED, CANCELLED, REJECTED and EXPIRED never change again. A fill that
  arrives after the order ended is still applied to `filled` (the shares were traded: the
  position must match the venue), and counted (LATE_FILL, OVERFILL), but the state stays.
- Over-fills are applied, not clamped: the venue is the source of truth for what traded, and
  clamping would hide a real position. They are counted (OVERFILL) for Sentinel to halt on.
- One modify and one cancel in flight per order: the venue's answers carry no request id, so
  a second request of the same kind would make its answer ambiguous. Exact repeats of an
  answer are recognised (fill_id, the ack flag, a Reject, ModifyAck or CancelReject equal to
  one already applied), and a ModifyAck answers the modify only if it carries the requested
  terms, so a re-delivered answer to an earlier request is not taken for the answer to the
  current one. A ModifyAck nobody asked for is ignored (UNSOLICITED_MODIFY): applying it would
  let a stale duplicate roll the terms back.
- A CancelReject ALREADY_DONE keeps PENDING_CANCEL: the order ended at the venue, but how
  (filled, expired) is told by the event still on its way, which then closes it.
- An order is FILLED only once no modify in flight could raise its quantity: a fill reaching
  the old quantity while a modify to a larger one is unanswered leaves PENDING_MODIFY, because
  the venue may have applied the modify first.

Ownership: an `OrderTracker` and its `Order`s are owned by the Execution thread; no locks.
Other threads see orders through what Execution publishes (journal, shared memory).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from vajra.market.events import Side
from vajra.venues.base import (
    Ack,
    CancelAck,
    CancelReject,
    Expired,
    Fill,
    ModifyAck,
    PlaceRequest,
    Reject,
    RejectReason,
    TimeInForce,
    VenueEvent,
)


class OrderState(enum.IntEnum):
    NEW = 0  # created, not yet handed to the venue
    PENDING = 1  # sent, no answer yet
    OPEN = 2  # acknowledged, nothing filled
    PARTIALLY_FILLED = 3
    FILLED = 4  # terminal
    PENDING_CANCEL = 5  # a cancel is in flight (may be unacknowledged or partly filled)
    CANCELLED = 6  # terminal
    REJECTED = 7  # terminal: the place was refused
    EXPIRED = 8  # terminal: the venue ended it (IOC rest, end of session)
    PENDING_MODIFY = 9  # a modify is in flight; the order keeps its terms until ModifyAck


TERMINAL_STATES = frozenset(
    {OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.EXPIRED}
)
WORKING_STATES = tuple(s for s in OrderState if s not in TERMINAL_STATES)


class OrderInput(enum.IntEnum):
    """What an event means for an order, once classified against the order's facts.

    The classification (`OrderTracker._classify`) only reads the event and the order's flags;
    what the input does in each state is the table's business.
    """

    # local requests: an applied entry means "send it"
    SEND = 0
    CANCEL = 1
    MODIFY = 2
    # venue events
    ACK = 3  # the first Ack, nothing filled yet
    ACK_LATE = 4  # the first Ack, after a fill overtook it
    ACK_DUP = 5
    REJECT_PLACE = 6  # a Reject of an order the venue never accepted
    REJECT_MODIFY = 7  # a Reject while a modify is in flight
    REJECT_STRAY = 8  # a Reject with no request it could answer
    REJECT_DUP = 9  # an exact repeat of a Reject or CancelReject already seen
    MODIFY_ACK = 10  # the answer to the modify in flight (its terms are the requested ones)
    MODIFY_ACK_DUP = 11  # an exact repeat, or the terms the order already has
    MODIFY_ACK_UNSOLICITED = 12  # terms nobody asked for
    FILL = 13
    FILL_DUP = 14  # fill_id seen before
    CANCEL_ACK = 15
    CANCEL_ACK_UNSOLICITED = 16  # no cancel requested: the venue (or a human) cancelled it
    CANCEL_REJECT_DONE = 17  # ALREADY_DONE: the cancel lost the race
    CANCEL_REJECT_FAILED = 18  # any other reason: the order still works
    CANCEL_REJECT_STRAY = 19  # no cancel was ever requested
    EXPIRE = 20
    BAD = 21  # malformed: wrong types, a non-positive quantity or price


class Anomaly(enum.IntEnum):
    """Why an event was not plain sailing; counted per kind by the tracker.

    Benign races, expected in normal operation (Sentinel watches their rates): LATE_ACK,
    CANCEL_TOO_LATE, CANCEL_FAILED (retry the cancel), AFTER_TERMINAL, the DUPLICATE_* kinds,
    LATE_FILL (a fill overtaken by the cancel ack or expiry: applied).
    Contradictions, where the engine's view may be wrong and a reconciliation is due:
    UNKNOWN_ORDER (a fill here is a trade the engine cannot attribute), OVERFILL,
    UNSOLICITED_CANCEL, UNSOLICITED_MODIFY, UNEXPECTED, BAD_EVENT.
    """

    NONE = 0
    UNKNOWN_ORDER = 1  # client id never issued by this tracker: ignored
    BAD_EVENT = 2  # malformed event: ignored
    DUPLICATE_FILL = 3  # ignored
    DUPLICATE_ACK = 4  # ignored
    DUPLICATE_REJECT = 5  # an exact repeat of a Reject or CancelReject: ignored
    DUPLICATE_MODIFY_ACK = 6  # ignored
    LATE_ACK = 7  # first Ack after a fill: venue id and RTT recorded, state kept
    LATE_FILL = 8  # fill for a cancelled/expired/rejected order: applied, state kept
    OVERFILL = 9  # filled now exceeds the quantity: applied
    AFTER_TERMINAL = 10  # ack/modify/cancel/expiry answer for an order already ended: ignored
    CANCEL_TOO_LATE = 11  # CancelReject ALREADY_DONE: the order ends by its own event
    CANCEL_FAILED = 12  # CancelReject for another reason: the order works again
    UNSOLICITED_CANCEL = 13  # CancelAck without a cancel request: applied (the order is gone)
    UNSOLICITED_MODIFY = 14  # ModifyAck with terms nobody requested: ignored, reconcile
    UNEXPECTED = 15  # an event with no meaning in the order's state: ignored


class RttKind(enum.IntEnum):
    """Which request an `Outcome.rtt_ns` sample measures (one sample per request, taken from
    the first answer to it, whatever the order's state by then)."""

    NONE = 0
    ORDER = 1  # place -> Ack or Reject
    CANCEL = 2  # cancel -> CancelAck or CancelReject
    MODIFY = 3  # modify -> ModifyAck or Reject


class OrderError(Exception):
    """A local misuse of the tracker (the engine's own bug), never raised for venue input."""


# -- the transition table ------------------------------------------------------------------

#: Pseudo-targets: to the working state the order's facts imply (`_working`); stay put.
_W = -1
_S = -2

#: (target state or _W/_S, anomaly, applied). For a local input "applied" means "send the
#: request"; for a venue event it means the event's effects are applied to the order
#: (`Outcome.applied`); an entry with _S and not applied ignores the event.
Entry = tuple[int, Anomaly, bool]

_St = OrderState
_A = Anomaly
_I = OrderInput


def _go(target: int, anomaly: Anomaly = Anomaly.NONE) -> Entry:
    return (target, anomaly, True)


def _ignore(anomaly: Anomaly) -> Entry:
    return (_S, anomaly, False)


def _each(
    states: tuple[OrderState, ...] | frozenset[OrderState], e: Entry
) -> dict[OrderState, Entry]:
    return dict.fromkeys(states, e)


_ENDED_UNFILLED = (_St.CANCELLED, _St.REJECTED, _St.EXPIRED)
_ALL = tuple(OrderState)

#: Everything that affects the order state machine. A (state, input) pair not listed is
#: ignored: UNEXPECTED in a working state, AFTER_TERMINAL in a terminal one, and "nothing
#: to send" for a local request.
TRANSITIONS: dict[OrderInput, dict[OrderState, Entry]] = {
    # -- local requests
    _I.SEND: {_St.NEW: _go(_W)},
    _I.CANCEL: {
        _St.NEW: (_St.CANCELLED, _A.NONE, False),  # never sent: cancelled here, nothing to send
        **_each((_St.PENDING, _St.OPEN, _St.PARTIALLY_FILLED, _St.PENDING_MODIFY), _go(_W)),
        # PENDING_CANCEL: one cancel in flight at a time; terminal: nothing left to cancel
    },
    _I.MODIFY: _each((_St.OPEN, _St.PARTIALLY_FILLED), _go(_W)),
    # -- venue: the place
    _I.ACK: _each(WORKING_STATES, _go(_W)),
    _I.ACK_LATE: _each(WORKING_STATES, _go(_W, _A.LATE_ACK)),
    _I.ACK_DUP: _each(_ALL, _ignore(_A.DUPLICATE_ACK)),
    _I.REJECT_PLACE: _each((_St.NEW, _St.PENDING, _St.PENDING_CANCEL), _go(_St.REJECTED)),
    _I.REJECT_STRAY: {},
    _I.REJECT_DUP: _each(_ALL, _ignore(_A.DUPLICATE_REJECT)),
    # -- venue: the modify (the order keeps its previous terms on a Reject)
    _I.REJECT_MODIFY: _each((_St.PENDING_MODIFY, _St.PENDING_CANCEL), _go(_W)),
    _I.MODIFY_ACK: _each((_St.PENDING_MODIFY, _St.PENDING_CANCEL), _go(_W)),
    _I.MODIFY_ACK_DUP: _each(_ALL, _ignore(_A.DUPLICATE_MODIFY_ACK)),
    _I.MODIFY_ACK_UNSOLICITED: _each(_ALL, _ignore(_A.UNSOLICITED_MODIFY)),
    # -- venue: fills (every distinct fill is applied, whatever the state)
    _I.FILL: {
        **_each(WORKING_STATES, _go(_W)),
        **_each(_ENDED_UNFILLED, (_S, _A.LATE_FILL, True)),
        _St.FILLED: (_S, _A.OVERFILL, True),
    },
    _I.FILL_DUP: _each(_ALL, _ignore(_A.DUPLICATE_FILL)),
    # -- venue: the cancel
    _I.CANCEL_ACK: {_St.PENDING_CANCEL: _go(_St.CANCELLED)},
    _I.CANCEL_ACK_UNSOLICITED: _each(WORKING_STATES, _go(_St.CANCELLED, _A.UNSOLICITED_CANCEL)),
    _I.CANCEL_REJECT_DONE: {
        _St.PENDING_CANCEL: _go(_S, _A.CANCEL_TOO_LATE),
        **_each(TERMINAL_STATES, _ignore(_A.CANCEL_TOO_LATE)),
    },
    _I.CANCEL_REJECT_FAILED: {_St.PENDING_CANCEL: _go(_W, _A.CANCEL_FAILED)},
    _I.CANCEL_REJECT_STRAY: {},
    # -- venue: the venue ends it
    _I.EXPIRE: _each(WORKING_STATES, _go(_St.EXPIRED)),
    _I.BAD: _each(_ALL, _ignore(_A.BAD_EVENT)),
}

_LOCAL = (_I.SEND, _I.CANCEL, _I.MODIFY)
_N_INPUTS = len(OrderInput)


def _default(state: OrderState, inp: OrderInput) -> Entry:
    if inp in _LOCAL:
        return (_S, _A.NONE, False)
    return _ignore(_A.AFTER_TERMINAL if state in TERMINAL_STATES else _A.UNEXPECTED)


def _flatten() -> tuple[Entry, ...]:
    """The table indexed by `state * _N_INPUTS + input`, checked once at import: the two
    properties every later reasoning rests on are that a terminal state never changes and
    that no distinct, well-formed fill is ever dropped."""
    flat: list[Entry] = []
    for s in OrderState:
        for i in OrderInput:
            e = TRANSITIONS[i].get(s) or _default(s, i)
            if s in TERMINAL_STATES and e[0] != _S:
                raise RuntimeError(f"table: terminal {s.name} leaves on {i.name}")
            if i == _I.FILL and not e[2]:
                raise RuntimeError(f"table: a fill is dropped in {s.name}")
            flat.append(e)
    return tuple(flat)


_FLAT = _flatten()
_STATES = tuple(OrderState)
_IS_TERMINAL = tuple(s in TERMINAL_STATES for s in OrderState)

# Plain ints for the per-event path (enum attribute lookups run Python-level code).
(
    _SEND,
    _CANCEL,
    _MODIFY,
    _ACK,
    _ACK_LATE,
    _ACK_DUP,
    _REJECT_PLACE,
    _REJECT_MODIFY,
    _REJECT_STRAY,
    _REJECT_DUP,
    _MODIFY_ACK,
    _MODIFY_ACK_DUP,
    _MODIFY_ACK_UNSOLICITED,
    _FILL,
    _FILL_DUP,
    _CANCEL_ACK,
    _CANCEL_ACK_UNSOLICITED,
    _CANCEL_REJECT_DONE,
    _CANCEL_REJECT_FAILED,
    _CANCEL_REJECT_STRAY,
    _EXPIRE,
    _BAD,
) = (int(i) for i in OrderInput)
_ALREADY_DONE = RejectReason.ALREADY_DONE

# Order.flags bits: the facts the working state and the classification are derived from.
_SENT = 1  # handed to the venue
_ACKED = 2  # an Ack arrived
_ACCEPTED = 4  # the venue has the order: an Ack or a fill arrived
_MODIFYING = 8  # a modify is in flight (req_price/req_qty)
_CANCELLING = 16  # a cancel is in flight or answered ALREADY_DONE
_CANCEL_ASKED = 32  # a cancel was ever sent
_RTT_ORDER = 64  # waiting for the first answer to the place
_RTT_CANCEL = 128  # waiting for the first answer to the cancel
_RTT_MODIFY = 256  # waiting for the first answer to the modify

#: Per input, what `apply` does beside the table (data too, so its loop has no branches on
#: sets of inputs): the request whose first answer it may be (an _RTT_* flag, or 0) ...
_ANSWER_TO = tuple(
    {
        _I.ACK: _RTT_ORDER,
        _I.ACK_LATE: _RTT_ORDER,
        _I.REJECT_PLACE: _RTT_ORDER,
        _I.REJECT_MODIFY: _RTT_MODIFY,
        _I.MODIFY_ACK: _RTT_MODIFY,
        _I.CANCEL_ACK: _RTT_CANCEL,
        _I.CANCEL_REJECT_DONE: _RTT_CANCEL,
        _I.CANCEL_REJECT_FAILED: _RTT_CANCEL,
    }.get(i, 0)
    for i in OrderInput
)
#: ... whether applying it may leave `filled` above the quantity (checked for OVERFILL) ...
_MOVES_QTY = tuple(i in (_I.FILL, _I.MODIFY_ACK, _I.REJECT_MODIFY) for i in OrderInput)
#: ... and whether it is kept to recognise an exact repeat (answers with no other identity).
_REMEMBERED = tuple(
    i
    in (
        _I.REJECT_PLACE,
        _I.REJECT_MODIFY,
        _I.MODIFY_ACK,
        _I.CANCEL_REJECT_DONE,
        _I.CANCEL_REJECT_FAILED,
    )
    for i in OrderInput
)


@dataclass(slots=True, eq=False)
class Order:
    """One order as the engine knows it. Mutable, owned by the Execution thread.

    Prices in price units (paise), quantities in units. `filled_notional` is the exact sum of
    price * qty over the fills applied, so the average fill price is a ratio of ints (no
    float drifts into positions or the journal). Timestamps are in the engine's clock
    (`now_ns` of the local calls, the events' `t_ns`); 0 means "not yet".
    """

    client_id: int
    token: int
    side: Side
    price: int
    qty: int  # total quantity (Kite semantics); changed only by a ModifyAck
    tif: TimeInForce
    tag: str
    created_ns: int
    state: OrderState = OrderState.NEW
    filled: int = 0
    filled_notional: int = 0
    venue_id: str = ""
    sent_ns: int = 0
    ack_ns: int = 0
    cancel_sent_ns: int = 0
    cancel_ack_ns: int = 0  # the first answer to the cancel (CancelAck or CancelReject)
    modify_sent_ns: int = 0
    last_event_ns: int = 0
    modifications: int = 0  # modify requests sent (what Kite's 25-per-order cap counts)
    reject_reason: RejectReason | None = None  # the last Reject (place or modify)
    req_price: int = 0  # the terms of the last modify requested
    req_qty: int = 0
    flags: int = 0
    #: The Rejects, ModifyAcks and CancelRejects applied, to recognise an exact repeat of one
    #: (answers with no id of their own; rare, so the set is allocated on the first).
    answers: set[Reject | CancelReject | ModifyAck] | None = None

    @property
    def remaining(self) -> int:
        return self.qty - self.filled if self.filled < self.qty else 0

    @property
    def avg_fill_price(self) -> float:
        """For display only: exact values are `filled_notional` and `filled`."""
        return self.filled_notional / self.filled if self.filled else 0.0

    @property
    def terminal(self) -> bool:
        return _IS_TERMINAL[self.state]

    @property
    def acked(self) -> bool:
        return bool(self.flags & _ACKED)

    @property
    def modify_in_flight(self) -> bool:
        return bool(self.flags & _MODIFYING)


def _cap(o: Order) -> int:
    """The quantity the order may still reach: a modify in flight may raise it."""
    if o.flags & _MODIFYING and o.req_qty > o.qty:
        return o.req_qty
    return o.qty


def _working(o: Order) -> OrderState:
    """The working state the order's facts imply: the one place that says what PENDING, OPEN,
    PARTIALLY_FILLED, PENDING_MODIFY, PENDING_CANCEL and FILLED-by-quantity mean. A cancel in
    flight outranks a modify in flight (the order is on its way out)."""
    f = o.flags
    if o.filled >= _cap(o):
        return OrderState.FILLED
    if f & _CANCELLING:
        return OrderState.PENDING_CANCEL
    if f & _MODIFYING:
        return OrderState.PENDING_MODIFY
    if o.filled:
        return OrderState.PARTIALLY_FILLED
    if f & _ACCEPTED:
        return OrderState.OPEN
    if f & _SENT:
        return OrderState.PENDING
    return OrderState.NEW


class Outcome(NamedTuple):
    """What one venue event did; immutable, since the journal and Sentinel keep it.

    A NamedTuple rather than the frozen dataclass events are (style: h11 `_events.py`): one is
    built per venue event, and on 3.13t a frozen dataclass costs ~1 µs to build (a Python-level
    `object.__setattr__` per field), a NamedTuple ~0.2 µs.

    `fill_qty`/`fill_price` are what positions must apply (0 when nothing was); `rtt_ns` is a
    round-trip sample of kind `rtt_kind` (NONE: no sample), on the events' clock. `prev` and
    `state` are None only for an unknown order. `applied`: the event was taken into account
    (False: ignored, and `anomaly` says why).
    """

    client_id: int
    order: Order | None
    prev: OrderState | None
    state: OrderState | None
    applied: bool
    anomaly: Anomaly = Anomaly.NONE
    fill_qty: int = 0
    fill_price: int = 0
    rtt_kind: RttKind = RttKind.NONE
    rtt_ns: int = 0


class OrderTracker:
    """The engine's registry of its own orders: local requests and venue events in, states,
    fills and round-trip samples out.

    The caller's protocol: `cid = next_client_id()`; `new(PlaceRequest(cid, ...), now)`;
    `if sent(cid, now): venue.place(...)`; every event from `venue.poll` goes to `apply`,
    whose `Outcome` the caller hands on (fills to the portfolio, RTTs and anomalies to
    Sentinel). `cancel_requested`/`modify_requested` return whether there is a request to
    send. The gateway closes an order it refused to send (kill flag, rate limiter) either by
    `cancel_requested` on the NEW order, or by applying its own `Reject`.
    """

    __slots__ = ("_anomalies", "_by_state", "_fill_ids", "_next_id", "_open", "_orders")

    def __init__(self, first_client_id: int = 1) -> None:
        """`first_client_id`: where the counter starts (after a restart, one past the last id
        the journal saw)."""
        if first_client_id < 1:
            raise OrderError("client ids are positive")
        self._next_id = first_client_id
        self._orders: dict[int, Order] = {}
        self._open: dict[int, Order] = {}  # the non-terminal orders, in creation order
        self._fill_ids: set[str] = set()  # unique per venue (base.Fill), so one set
        self._by_state = [0] * len(OrderState)
        self._anomalies = [0] * len(Anomaly)

    # -- client ids --------------------------------------------------------------------------

    def next_client_id(self) -> int:
        cid = self._next_id
        self._next_id = cid + 1
        return cid

    def fresh(self, client_id: int) -> bool:
        """Would `new` accept this client id (a positive int not used before)? For writers
        that send before they register (`OrderGateway.place`)."""
        return type(client_id) is int and client_id > 0 and client_id not in self._orders

    def advance_client_ids(self, past: int) -> None:
        """Make every later `next_client_id()` larger than `past` (a journal restore)."""
        if past >= self._next_id:
            self._next_id = past + 1

    # -- local requests ----------------------------------------------------------------------

    def new(self, req: PlaceRequest, now_ns: int, sent: bool = False) -> Order:
        """Register an order before it is sent. A client id not from `next_client_id` is
        accepted if unused, and the counter moves past it so the two never collide."""
        cid = req.client_id
        if type(cid) is not int or cid < 1 or cid in self._orders:
            raise OrderError(f"client id {cid!r} is not a fresh positive int")
        if req.price <= 0 or req.qty <= 0:
            raise OrderError(f"order {cid}: price {req.price}, qty {req.qty}")
        o = Order(cid, req.token, req.side, req.price, req.qty, req.tif, req.tag, now_ns)
        self._orders[cid] = o
        self._open[cid] = o
        if sent:  # the same as `sent(cid, now_ns)` right after, without a second lookup
            o.flags = _SENT | _RTT_ORDER
            o.sent_ns = now_ns
            o.state = OrderState.PENDING
            self._by_state[OrderState.PENDING] += 1
        else:
            self._by_state[OrderState.NEW] += 1
        if cid >= self._next_id:
            self._next_id = cid + 1
        return o

    def adopt(
        self,
        client_id: int,
        token: int,
        side: Side,
        price: int,
        qty: int,
        filled: int,
        now_ns: int,
        venue_id: str = "",
    ) -> Order:
        """Take over an order already at the venue from an earlier run (restart reconciliation:
        the journal and the venue list it open). It is registered as sent and accepted, with
        what the journal knows filled, so a cancel of it goes through the normal path and its
        answers apply as any order's. Its fill notional is unknown (0): positions come from
        the journal's fills, not from here."""
        if type(client_id) is not int or client_id < 1 or client_id in self._orders:
            raise OrderError(f"client id {client_id!r} is not a fresh positive int")
        o = Order(client_id, token, side, price, qty, TimeInForce.DAY, "", now_ns)
        o.filled = filled
        o.venue_id = venue_id
        o.sent_ns = o.ack_ns = now_ns
        o.flags = _SENT | _ACKED | _ACCEPTED
        self._orders[client_id] = o
        self._by_state[OrderState.NEW] += 1
        self._open[client_id] = o
        self._move(o, _W)  # OPEN, or PARTIALLY_FILLED / FILLED by what already filled
        if client_id >= self._next_id:
            self._next_id = client_id + 1
        return o

    def sent(self, client_id: int, now_ns: int) -> bool:
        """Record that the place goes out now; the order RTT runs from here. False: the order
        is no longer NEW (cancelled locally meanwhile, or sent already): do not send it."""
        o = self._get(client_id)
        target, _, send = _FLAT[o.state * _N_INPUTS + _SEND]
        if send:
            o.flags |= _SENT | _RTT_ORDER
            o.sent_ns = now_ns
            self._move(o, target)
        return send

    def can_cancel(self, client_id: int) -> bool:
        """Would `cancel_requested` send a cancel now? (Records nothing: the gateway asks before
        it takes a rate-limit slot, so a repeated cancel of an order already being cancelled
        costs no slot.)"""
        o = self._get(client_id)
        return bool(_FLAT[o.state * _N_INPUTS + _CANCEL][2])

    def can_modify(self, client_id: int, price: int, qty: int) -> bool:
        """Would `modify_requested` send this modify now? (Records nothing; see `can_cancel`.)"""
        o = self._get(client_id)
        if qty <= o.filled or (price == o.price and qty == o.qty):
            return False
        return bool(_FLAT[o.state * _N_INPUTS + _MODIFY][2])

    def cancel_requested(self, client_id: int, now_ns: int) -> bool:
        """Record a cancel going out now. False: nothing to send, because the order already
        ended, a cancel is already in flight, or it was never sent (it is cancelled here)."""
        o = self._get(client_id)
        target, _, send = _FLAT[o.state * _N_INPUTS + _CANCEL]
        if send:
            o.flags |= _CANCELLING | _CANCEL_ASKED | _RTT_CANCEL
            o.cancel_sent_ns = now_ns
            o.cancel_ack_ns = 0
        self._move(o, target)
        return send

    def modify_requested(self, client_id: int, price: int, qty: int, now_ns: int) -> bool:
        """Record a modify (new price, new total quantity) going out now. False: nothing to
        send, because the order is not resting on its acknowledged terms (pending, a modify or
        cancel in flight, ended), or the terms are unchanged, or `qty` is not above what has
        filled (cancel instead)."""
        o = self._get(client_id)
        if type(price) is not int or type(qty) is not int or price <= 0 or qty <= 0:
            raise OrderError(f"order {client_id}: modify to price {price!r}, qty {qty!r}")
        if qty <= o.filled or (price == o.price and qty == o.qty):
            return False
        target, _, send = _FLAT[o.state * _N_INPUTS + _MODIFY]
        if send:
            o.flags |= _MODIFYING | _RTT_MODIFY
            o.req_price = price
            o.req_qty = qty
            o.modify_sent_ns = now_ns
            o.modifications += 1
            self._move(o, target)
        return send

    # -- venue events ------------------------------------------------------------------------

    def apply(self, ev: VenueEvent) -> Outcome:
        """Take one venue event. Never raises: an event the order cannot take is ignored, and
        the outcome says why (`anomaly`), counted per kind.

        Steps: classify the event against the order's facts; look (state, input) up in the
        table; take the RTT sample (one per request, from its first answer, in any state);
        apply the event's effects if the entry says so; move to the entry's target. OVERFILL
        is data, not state: it is reported for any fill or modify answer that leaves `filled`
        above the quantity the order may reach, over the entry's own anomaly.
        """
        try:
            cid = ev.client_id
        except AttributeError:  # not a venue event at all
            cid = 0
        o = self._orders.get(cid) if type(cid) is int else None
        if o is None:
            self._anomalies[Anomaly.UNKNOWN_ORDER] += 1
            return Outcome(
                cid if type(cid) is int else 0, None, None, None, False, Anomaly.UNKNOWN_ORDER
            )
        cid = o.client_id
        inp = self._classify(o, ev)
        prev = o.state
        target, anomaly, act = _FLAT[prev * _N_INPUTS + inp]
        if inp == _BAD:
            self._anomalies[anomaly] += 1
            return Outcome(cid, o, prev, prev, False, anomaly)
        t: int = ev.t_ns
        o.last_event_ns = t
        f = o.flags
        rtt_kind = RttKind.NONE
        rtt = fill_qty = fill_price = 0
        # Measurements: facts about the request, whatever the state has become meanwhile.
        if _ACK <= inp <= _ACK_LATE:
            assert type(ev) is Ack
            o.flags = f = f | _ACKED | _ACCEPTED
            o.venue_id = ev.venue_id
            o.ack_ns = t
        waiting = _ANSWER_TO[inp] & f
        if waiting:
            o.flags = f = f & ~waiting
            if waiting == _RTT_ORDER:
                rtt_kind, rtt = RttKind.ORDER, t - o.sent_ns
            elif waiting == _RTT_CANCEL:
                o.cancel_ack_ns = t
                rtt_kind, rtt = RttKind.CANCEL, t - o.cancel_sent_ns
            else:
                rtt_kind, rtt = RttKind.MODIFY, t - o.modify_sent_ns
        if act:
            if inp == _FILL:
                assert type(ev) is Fill
                self._fill_ids.add(ev.fill_id)
                fill_qty, fill_price = ev.qty, ev.price
                o.filled += fill_qty
                o.filled_notional += fill_price * fill_qty
                o.flags = f | _ACCEPTED
            elif inp == _MODIFY_ACK:
                assert type(ev) is ModifyAck
                o.price, o.qty = ev.price, ev.qty
                o.flags = f & ~_MODIFYING
            elif inp == _REJECT_MODIFY:
                assert type(ev) is Reject
                o.reject_reason = ev.reason
                o.flags = f & ~_MODIFYING
            elif inp == _REJECT_PLACE:
                assert type(ev) is Reject
                o.reject_reason = ev.reason
            elif inp == _CANCEL_REJECT_FAILED:
                o.flags = f & ~_CANCELLING
            if _MOVES_QTY[inp] and o.filled > _cap(o):
                anomaly = Anomaly.OVERFILL
            if _REMEMBERED[inp]:
                assert type(ev) is Reject or type(ev) is CancelReject or type(ev) is ModifyAck
                if o.answers is None:
                    o.answers = set()
                o.answers.add(ev)
        self._move(o, target)
        if anomaly:
            self._anomalies[anomaly] += 1
        return Outcome(cid, o, prev, o.state, act, anomaly, fill_qty, fill_price, rtt_kind, rtt)

    # -- views -------------------------------------------------------------------------------

    def get(self, client_id: int) -> Order | None:
        return self._orders.get(client_id)

    def __len__(self) -> int:
        return len(self._orders)

    @property
    def open_count(self) -> int:
        """How many orders are not terminal (O(1), for the pre-trade check)."""
        return len(self._open)

    def open_orders(self) -> list[Order]:
        """The non-terminal orders (NEW through PENDING_CANCEL), oldest first, as a snapshot:
        the caller may cancel while iterating (cancel-all)."""
        return list(self._open.values())

    def count(self, state: OrderState) -> int:
        return self._by_state[state]

    def counts(self) -> dict[OrderState, int]:
        return {s: self._by_state[s] for s in OrderState}

    def anomaly_count(self, kind: Anomaly) -> int:
        return self._anomalies[kind]

    def anomalies(self) -> dict[Anomaly, int]:
        """Every kind but NONE, with its count (zeros included, so a dashboard has fixed rows)."""
        return {a: self._anomalies[a] for a in Anomaly if a}

    # -- internals ---------------------------------------------------------------------------

    def _get(self, client_id: int) -> Order:
        o = self._orders.get(client_id)
        if o is None:
            raise OrderError(f"unknown client id {client_id!r}")
        return o

    def _move(self, o: Order, target: int) -> None:
        if target == _S:
            return
        new = _working(o) if target == _W else _STATES[target]
        prev = o.state
        if new != prev:
            o.state = new
            self._by_state[prev] -= 1
            self._by_state[new] += 1
            if _IS_TERMINAL[new]:
                del self._open[o.client_id]

    def _classify(self, o: Order, ev: object) -> int:
        """The input an event is for this order, from the event and the order's flags only.

        Dispatch is on the exact event type (the event classes are final by convention), and
        the fields are type-checked, because venue input must never raise, even when an
        adapter hands over a malformed event: those are BAD and ignored."""
        f = o.flags
        cls = type(ev)
        if cls is Fill:
            assert type(ev) is Fill
            q, p, fid = ev.qty, ev.price, ev.fill_id
            if type(q) is not int or type(p) is not int or type(fid) is not str:
                return _BAD
            if q <= 0 or p <= 0 or type(ev.t_ns) is not int:
                return _BAD
            return _FILL_DUP if fid in self._fill_ids else _FILL
        if type(getattr(ev, "t_ns", None)) is not int:
            return _BAD
        if cls is Ack:
            if f & _ACKED:
                return _ACK_DUP
            return _ACK_LATE if o.filled else _ACK
        if cls is CancelAck:
            return _CANCEL_ACK if f & _CANCELLING else _CANCEL_ACK_UNSOLICITED
        if cls is Expired:
            return _EXPIRE
        if cls is not Reject and cls is not CancelReject and cls is not ModifyAck:
            return _BAD
        # the answers with no identity of their own: an exact repeat is a duplicate
        try:
            hash(ev)  # kept once applied
            repeat = o.answers is not None and ev in o.answers
        except TypeError:  # an unhashable field smuggled in: not a venue event
            return _BAD
        if cls is ModifyAck:
            assert type(ev) is ModifyAck
            p, q = ev.price, ev.qty
            if type(p) is not int or type(q) is not int or p <= 0 or q <= 0:
                return _BAD
            if repeat or (p == o.price and q == o.qty):
                return _MODIFY_ACK_DUP
            if f & _MODIFYING and p == o.req_price and q == o.req_qty:
                return _MODIFY_ACK
            return _MODIFY_ACK_UNSOLICITED
        if repeat:
            return _REJECT_DUP
        if cls is Reject:
            if f & _MODIFYING:
                return _REJECT_MODIFY
            return _REJECT_STRAY if f & _ACCEPTED else _REJECT_PLACE
        assert type(ev) is CancelReject
        if not f & _CANCEL_ASKED:
            return _CANCEL_REJECT_STRAY
        return _CANCEL_REJECT_DONE if ev.reason == _ALREADY_DONE else _CANCEL_REJECT_FAILED
