"""The order state machine: its table, each named venue race by example, and hypothesis runs
over random interleavings of venue events (late, duplicated, reordered, malformed, for unknown
orders) checking the invariants after every event. A second property test drives a truthful
model venue through a network that reorders and duplicates its answers, and checks that once
everything is delivered the tracker agrees with the venue."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from vajra.market.events import Side
from vajra.trading.orders import (
    TERMINAL_STATES,
    TRANSITIONS,
    Anomaly,
    Order,
    OrderError,
    OrderInput,
    OrderState,
    OrderTracker,
    Outcome,
    RttKind,
)
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

S = OrderState
A = Anomaly
TOKEN = 256265
PX = 100_00
DONE = RejectReason.ALREADY_DONE


def placed(
    tr: OrderTracker | None = None, qty: int = 10, t: int = 1_000, send: bool = True
) -> tuple[OrderTracker, Order]:
    tr = tr if tr is not None else OrderTracker()
    cid = tr.next_client_id()
    o = tr.new(PlaceRequest(cid, TOKEN, Side.BID, PX, qty, TimeInForce.DAY, "t"), t)
    if send:
        assert tr.sent(cid, t + 100)
    return tr, o


def acked(qty: int = 10) -> tuple[OrderTracker, Order]:
    tr, o = placed(qty=qty)
    out = tr.apply(Ack(o.client_id, "V1", 1_500))
    assert out.state == S.OPEN
    return tr, o


# -- the table -------------------------------------------------------------------------------


def test_terminal_states_never_leave_and_fills_are_never_dropped() -> None:
    for inp, row in TRANSITIONS.items():
        for state, (target, _anomaly, applied) in row.items():
            if state in TERMINAL_STATES:
                assert target < 0, (state, inp)  # _S: stay
            if inp == OrderInput.FILL:
                assert applied, state
    assert set(TRANSITIONS) == set(OrderInput)


# -- the happy paths -------------------------------------------------------------------------


def test_place_ack_partial_full_with_order_rtt() -> None:
    tr, o = placed()
    assert o.state == S.PENDING and tr.count(S.PENDING) == 1
    out = tr.apply(Ack(o.client_id, "V1", 1_600))
    assert (out.prev, out.state, out.applied) == (S.PENDING, S.OPEN, True)
    assert (out.rtt_kind, out.rtt_ns) == (RttKind.ORDER, 1_600 - 1_100)
    assert o.venue_id == "V1" and o.ack_ns == 1_600
    out = tr.apply(Fill(o.client_id, "F1", PX, 4, 1_700))
    assert (out.state, out.fill_qty, out.fill_price) == (S.PARTIALLY_FILLED, 4, PX)
    out = tr.apply(Fill(o.client_id, "F2", PX + 5, 6, 1_800))
    assert out.state == S.FILLED and out.rtt_kind == RttKind.NONE
    assert o.filled == 10 and o.filled_notional == 4 * PX + 6 * (PX + 5)
    assert o.avg_fill_price == pytest.approx(PX + 3)
    assert tr.open_orders() == [] and tr.count(S.FILLED) == 1
    assert sum(tr.anomalies().values()) == 0


def test_cancel_with_cancel_rtt() -> None:
    tr, o = acked()
    assert tr.cancel_requested(o.client_id, 2_000)
    assert o.state == S.PENDING_CANCEL and o.cancel_sent_ns == 2_000
    assert not tr.cancel_requested(o.client_id, 2_001)  # one cancel in flight
    out = tr.apply(CancelAck(o.client_id, 2_300))
    assert (out.state, out.rtt_kind, out.rtt_ns) == (S.CANCELLED, RttKind.CANCEL, 300)
    assert o.cancel_ack_ns == 2_300
    assert not tr.cancel_requested(o.client_id, 2_400)  # terminal: nothing to send


def test_cancel_of_a_never_sent_order_sends_nothing() -> None:
    tr, o = placed(send=False)
    assert tr.count(S.NEW) == 1 and tr.open_orders() == [o]
    assert not tr.cancel_requested(o.client_id, 1_050)
    assert o.state == S.CANCELLED and tr.open_orders() == []
    assert not tr.sent(o.client_id, 1_060)  # the gateway must not send it now


def test_cancel_before_ack_then_reject_of_the_place() -> None:
    tr, o = placed()
    assert tr.cancel_requested(o.client_id, 1_200)
    out = tr.apply(Reject(o.client_id, RejectReason.PRICE_BAND, "LPP", 1_300))
    assert out.state == S.REJECTED and o.reject_reason == RejectReason.PRICE_BAND
    assert (out.rtt_kind, out.rtt_ns) == (RttKind.ORDER, 200)
    out = tr.apply(CancelReject(o.client_id, RejectReason.UNKNOWN_ORDER, "?", 1_400))
    assert out.state == S.REJECTED and out.anomaly == A.AFTER_TERMINAL
    assert out.rtt_kind == RttKind.CANCEL  # still a round trip of the cancel


def test_cancel_failed_puts_the_order_back_to_work_and_may_be_retried() -> None:
    tr, o = acked()
    tr.apply(Fill(o.client_id, "F1", PX, 3, 1_700))
    assert tr.cancel_requested(o.client_id, 2_000)
    out = tr.apply(CancelReject(o.client_id, RejectReason.RATE_LIMITED, "429", 2_100))
    assert (out.state, out.anomaly) == (S.PARTIALLY_FILLED, A.CANCEL_FAILED)
    assert tr.cancel_requested(o.client_id, 2_200)
    assert tr.apply(CancelAck(o.client_id, 2_250)).rtt_ns == 50
    assert o.state == S.CANCELLED and o.filled == 3


def test_ioc_partial_then_expired() -> None:
    tr, o = placed()
    tr.apply(Ack(o.client_id, "V1", 1_200))
    tr.apply(Fill(o.client_id, "F1", PX, 3, 1_201))
    out = tr.apply(Expired(o.client_id, 1_202))
    assert (out.state, out.anomaly) == (S.EXPIRED, A.NONE) and o.filled == 3


# -- the named races -------------------------------------------------------------------------


def test_fill_after_cancel_request_then_cancel_ack_closes_the_rest() -> None:
    tr, o = acked()
    assert tr.cancel_requested(o.client_id, 2_000)
    out = tr.apply(Fill(o.client_id, "F1", PX, 4, 2_050))
    assert (out.state, out.fill_qty, out.anomaly) == (S.PENDING_CANCEL, 4, A.NONE)
    out = tr.apply(CancelAck(o.client_id, 2_100))
    assert out.state == S.CANCELLED and o.filled == 4 and o.remaining == 6


def test_full_fill_after_cancel_request_then_cancel_reject_already_done() -> None:
    tr, o = acked()
    assert tr.cancel_requested(o.client_id, 2_000)
    assert tr.apply(Fill(o.client_id, "F1", PX, 10, 2_050)).state == S.FILLED
    out = tr.apply(CancelReject(o.client_id, DONE, "order complete", 2_100))
    assert (out.state, out.applied, out.anomaly) == (S.FILLED, False, A.CANCEL_TOO_LATE)
    assert (out.rtt_kind, out.rtt_ns) == (RttKind.CANCEL, 100)
    assert tr.anomaly_count(A.CANCEL_TOO_LATE) == 1


def test_cancel_reject_already_done_before_the_fill_that_explains_it() -> None:
    tr, o = acked()
    assert tr.cancel_requested(o.client_id, 2_000)
    out = tr.apply(CancelReject(o.client_id, DONE, "order complete", 2_100))
    assert (out.state, out.applied, out.anomaly) == (S.PENDING_CANCEL, True, A.CANCEL_TOO_LATE)
    assert not tr.cancel_requested(o.client_id, 2_150)  # nothing more to send
    assert tr.apply(Fill(o.client_id, "F1", PX, 10, 2_200)).state == S.FILLED


def test_ack_after_fill_keeps_the_furthest_state() -> None:
    tr, o = placed()
    assert tr.apply(Fill(o.client_id, "F1", PX, 4, 1_300)).state == S.PARTIALLY_FILLED
    out = tr.apply(Ack(o.client_id, "V9", 1_400))
    assert (out.state, out.anomaly) == (S.PARTIALLY_FILLED, A.LATE_ACK)
    assert (out.rtt_kind, out.rtt_ns) == (RttKind.ORDER, 300) and o.venue_id == "V9"


def test_ack_after_full_fill_is_ignored_but_measured() -> None:
    tr, o = placed()
    tr.apply(Fill(o.client_id, "F1", PX, 10, 1_300))
    out = tr.apply(Ack(o.client_id, "V9", 1_400))
    assert (out.state, out.applied, out.anomaly) == (S.FILLED, False, A.AFTER_TERMINAL)
    assert out.rtt_kind == RttKind.ORDER and o.venue_id == "V9"


def test_cancel_ack_after_full_fill_is_ignored() -> None:
    tr, o = acked()
    tr.apply(Fill(o.client_id, "F1", PX, 10, 1_700))
    out = tr.apply(CancelAck(o.client_id, 1_800))
    assert (out.state, out.applied, out.anomaly) == (S.FILLED, False, A.AFTER_TERMINAL)


def test_unknown_order_id_never_raises() -> None:
    tr, _ = acked()
    for ev in (
        Fill(999, "F1", PX, 1, 1),
        Ack(999, "V", 1),
        CancelAck(-3, 1),
        Expired("x", 1),  # type: ignore[arg-type]
    ):
        out = tr.apply(ev)
        assert (out.order, out.state, out.applied, out.anomaly) == (
            None,
            None,
            False,
            A.UNKNOWN_ORDER,
        )
    assert tr.anomaly_count(A.UNKNOWN_ORDER) == 4


def test_duplicate_fill_is_applied_once() -> None:
    tr, o = acked()
    f = Fill(o.client_id, "F1", PX, 4, 1_700)
    assert tr.apply(f).fill_qty == 4
    out = tr.apply(f)
    assert (out.fill_qty, out.applied, out.anomaly) == (0, False, A.DUPLICATE_FILL)
    assert o.filled == 4


def test_duplicate_ack_is_ignored() -> None:
    tr, o = acked()
    out = tr.apply(Ack(o.client_id, "V1", 1_900))
    assert (out.applied, out.anomaly, out.rtt_kind) == (False, A.DUPLICATE_ACK, RttKind.NONE)


def test_late_fill_after_cancel_ack_is_applied_and_the_state_stays() -> None:
    tr, o = acked()
    assert tr.cancel_requested(o.client_id, 2_000)
    tr.apply(CancelAck(o.client_id, 2_100))
    out = tr.apply(Fill(o.client_id, "F1", PX, 3, 2_050))
    assert (out.state, out.fill_qty, out.anomaly) == (S.CANCELLED, 3, A.LATE_FILL)
    assert o.filled == 3


def test_overfill_is_applied_and_counted() -> None:
    tr, o = acked(qty=5)
    tr.apply(Fill(o.client_id, "F1", PX, 4, 1_700))
    out = tr.apply(Fill(o.client_id, "F2", PX, 3, 1_800))
    assert (out.state, out.fill_qty, out.anomaly) == (S.FILLED, 3, A.OVERFILL)
    assert o.filled == 7
    out = tr.apply(Fill(o.client_id, "F3", PX, 1, 1_900))
    assert (out.fill_qty, out.anomaly) == (1, A.OVERFILL)
    assert tr.anomaly_count(A.OVERFILL) == 2


def test_unsolicited_cancel_ack_ends_the_order() -> None:
    tr, o = acked()
    out = tr.apply(CancelAck(o.client_id, 1_800))
    assert (out.state, out.anomaly) == (S.CANCELLED, A.UNSOLICITED_CANCEL)


def test_malformed_events_are_ignored() -> None:
    tr, o = acked()
    for ev in (
        Fill(o.client_id, "F1", PX, 0, 1),
        Fill(o.client_id, "F2", -1, 1, 1),
        Fill(o.client_id, ["x"], PX, 1, 1),  # type: ignore[arg-type]
        ModifyAck(o.client_id, PX, 0, 1),
        Reject(o.client_id, RejectReason.INPUT, [], 1),  # type: ignore[arg-type]
        CancelAck(o.client_id, None),  # type: ignore[arg-type]
        "garbage",
    ):
        out = tr.apply(ev)  # type: ignore[arg-type]
        assert out.anomaly in (A.BAD_EVENT, A.UNKNOWN_ORDER) and not out.applied
    assert o.state == S.OPEN and o.filled == 0


# -- modifies --------------------------------------------------------------------------------


def test_modify_ack_applies_the_new_terms() -> None:
    tr, o = acked()
    assert tr.modify_requested(o.client_id, PX + 5, 12, 2_000)
    assert o.state == S.PENDING_MODIFY and o.modifications == 1
    assert not tr.modify_requested(o.client_id, PX + 10, 12, 2_001)  # one at a time
    out = tr.apply(ModifyAck(o.client_id, PX + 5, 12, 2_200))
    assert (out.state, out.rtt_kind, out.rtt_ns) == (S.OPEN, RttKind.MODIFY, 200)
    assert (o.price, o.qty) == (PX + 5, 12)
    out = tr.apply(ModifyAck(o.client_id, PX + 5, 12, 2_200))
    assert (out.applied, out.anomaly) == (False, A.DUPLICATE_MODIFY_ACK)


def test_modify_reject_leaves_the_previous_terms() -> None:
    tr, o = acked()
    tr.apply(Fill(o.client_id, "F1", PX, 2, 1_700))
    assert tr.modify_requested(o.client_id, PX + 5, 12, 2_000)
    out = tr.apply(Reject(o.client_id, RejectReason.TOO_MANY_MODIFICATIONS, "25", 2_100))
    assert (out.state, out.rtt_kind) == (S.PARTIALLY_FILLED, RttKind.MODIFY)
    assert (o.price, o.qty) == (PX, 10)
    # an exact repeat of that reject must not answer the next modify
    assert tr.modify_requested(o.client_id, PX + 1, 12, 2_200)
    again = tr.apply(Reject(o.client_id, RejectReason.TOO_MANY_MODIFICATIONS, "25", 2_100))
    assert (again.anomaly, o.state) == (A.DUPLICATE_REJECT, S.PENDING_MODIFY)


def test_modify_refused_when_pointless_or_not_resting() -> None:
    tr, o = placed()
    assert not tr.modify_requested(o.client_id, PX + 1, 10, 1_200)  # not acknowledged yet
    tr.apply(Ack(o.client_id, "V1", 1_300))
    tr.apply(Fill(o.client_id, "F1", PX, 4, 1_400))
    assert not tr.modify_requested(o.client_id, PX, 10, 1_500)  # same terms
    assert not tr.modify_requested(o.client_id, PX, 4, 1_500)  # not above what filled
    with pytest.raises(OrderError):
        tr.modify_requested(o.client_id, 0, 8, 1_500)
    assert o.state == S.PARTIALLY_FILLED and o.modifications == 0


def test_fill_reaching_the_old_quantity_waits_for_a_modify_raising_it() -> None:
    tr, o = acked(qty=10)
    assert tr.modify_requested(o.client_id, PX, 15, 2_000)
    out = tr.apply(Fill(o.client_id, "F1", PX, 10, 2_050))
    assert (out.state, out.anomaly) == (S.PENDING_MODIFY, A.NONE)
    assert tr.apply(ModifyAck(o.client_id, PX, 15, 2_100)).state == S.PARTIALLY_FILLED


def test_modify_raise_rejected_after_the_old_quantity_filled() -> None:
    tr, o = acked(qty=10)
    assert tr.modify_requested(o.client_id, PX, 15, 2_000)
    tr.apply(Fill(o.client_id, "F1", PX, 10, 2_050))
    assert tr.apply(Reject(o.client_id, DONE, "complete", 2_100)).state == S.FILLED


def test_modify_down_to_what_filled_completes_the_order() -> None:
    tr, o = acked(qty=10)
    assert tr.modify_requested(o.client_id, PX, 6, 2_000)
    assert tr.apply(Fill(o.client_id, "F1", PX, 6, 2_050)).state == S.PENDING_MODIFY
    assert tr.apply(ModifyAck(o.client_id, PX, 6, 2_100)).state == S.FILLED


def test_modify_then_cancel_both_answered() -> None:
    tr, o = acked()
    assert tr.modify_requested(o.client_id, PX + 5, 10, 2_000)
    assert tr.cancel_requested(o.client_id, 2_010)
    assert o.state == S.PENDING_CANCEL
    out = tr.apply(ModifyAck(o.client_id, PX + 5, 10, 2_100))
    assert (out.state, out.rtt_kind) == (S.PENDING_CANCEL, RttKind.MODIFY) and o.price == PX + 5
    assert tr.apply(CancelAck(o.client_id, 2_200)).state == S.CANCELLED


def test_unsolicited_modify_ack_is_ignored() -> None:
    tr, o = acked()
    out = tr.apply(ModifyAck(o.client_id, PX + 1, 3, 1_800))
    assert (out.applied, out.anomaly) == (False, A.UNSOLICITED_MODIFY) and o.qty == 10
    # with a modify in flight, only its own terms answer it
    assert tr.modify_requested(o.client_id, PX + 5, 8, 1_900)
    out = tr.apply(ModifyAck(o.client_id, PX + 1, 3, 2_000))
    assert (out.anomaly, out.rtt_kind, o.state) == (
        A.UNSOLICITED_MODIFY,
        RttKind.NONE,
        S.PENDING_MODIFY,
    )
    assert (o.price, o.qty) == (PX, 10)


# -- client ids and views --------------------------------------------------------------------


def test_client_ids_are_monotonic_settable_and_unique() -> None:
    tr = OrderTracker(first_client_id=500)
    assert [tr.next_client_id() for _ in range(3)] == [500, 501, 502]
    tr.new(PlaceRequest(900, TOKEN, Side.ASK, PX, 1), 0)  # an id from elsewhere
    assert tr.next_client_id() == 901
    tr.advance_client_ids(2_000)
    assert tr.next_client_id() == 2_001
    with pytest.raises(OrderError):
        tr.new(PlaceRequest(900, TOKEN, Side.ASK, PX, 1), 0)
    with pytest.raises(OrderError):
        tr.new(PlaceRequest(3_000, TOKEN, Side.ASK, PX, 0), 0)
    with pytest.raises(OrderError):
        tr.sent(12345, 0)
    with pytest.raises(OrderError):
        OrderTracker(first_client_id=0)


def test_open_orders_and_counts() -> None:
    tr = OrderTracker()
    orders = [placed(tr, qty=5)[1] for _ in range(4)]
    a, b, c, d = (o.client_id for o in orders)
    tr.apply(Ack(a, "V", 2_000))
    tr.apply(Fill(b, "F1", PX, 5, 2_000))
    tr.apply(Reject(c, RejectReason.FREEZE_QTY, "freeze", 2_000))
    assert {o.client_id for o in tr.open_orders()} == {a, d}
    counts = tr.counts()
    assert (counts[S.OPEN], counts[S.FILLED], counts[S.REJECTED], counts[S.PENDING]) == (
        1,
        1,
        1,
        1,
    )
    assert sum(counts.values()) == len(tr) == 4
    for o in tr.open_orders():  # cancel-all while iterating
        tr.cancel_requested(o.client_id, 3_000)
    assert tr.count(S.PENDING_CANCEL) == 2


# -- invariants over random interleavings ----------------------------------------------------

picks = st.integers(0, 1_000)
#: Venue event kinds, weighted toward those that keep an order working (so each order sees
#: many events before one ends it).
VENUE_KINDS = (
    ["fill"] * 5
    + ["ack", "modify_ack", "cancel_reject"] * 2
    + ["reject", "cancel_ack", "expire", "malformed"]
)


class Watch:
    """An independent account of what the tracker must show, fed with every call and outcome."""

    def __init__(self, tr: OrderTracker) -> None:
        self.tr = tr
        self.orders: dict[int, Order] = {}
        self.fill_ids: set[str] = set()
        self.filled: Counter[int] = Counter()
        self.ended: dict[int, OrderState] = {}
        self.overfilled: set[int] = set()
        self.accepted: set[int] = set()
        self.anomalies: Counter[Anomaly] = Counter()
        self.rtts: Counter[tuple[int, RttKind]] = Counter()
        self.requests: Counter[tuple[int, RttKind]] = Counter()
        self.outcomes: list[Outcome] = []

    def add(self, o: Order) -> None:
        self.orders[o.client_id] = o

    def request(self, cid: int, kind: RttKind, sent: bool) -> None:
        if sent:
            self.requests[cid, kind] += 1

    def apply(self, ev: VenueEvent) -> Outcome:
        cid = getattr(ev, "client_id", None)
        o = self.orders.get(cid) if type(cid) is int else None
        before = o.state if o is not None else None
        terms = (o.price, o.qty, o.req_price, o.req_qty, o.modify_in_flight) if o else None
        out = self.tr.apply(ev)  # must never raise
        self.outcomes.append(out)
        if out.anomaly:
            self.anomalies[out.anomaly] += 1
        if o is None:
            assert (out.order, out.anomaly, out.applied) == (None, A.UNKNOWN_ORDER, False)
            return out
        assert out.order is o and out.prev == before and out.state == o.state
        if out.state == S.REJECTED and before != S.REJECTED:  # only a place the venue refused
            assert o.client_id not in self.accepted
        assert terms is not None
        if (o.price, o.qty) != terms[:2]:  # only the answer to the modify in flight changes terms
            assert isinstance(ev, ModifyAck) and terms[4] and (ev.price, ev.qty) == terms[2:4]
        if (
            isinstance(ev, Fill)
            and type(ev.qty) is int
            and type(ev.price) is int
            and type(ev.t_ns) is int
            and ev.qty > 0
            and ev.price > 0
            and type(ev.fill_id) is str
            and ev.fill_id not in self.fill_ids
        ):
            self.fill_ids.add(ev.fill_id)
            self.filled[o.client_id] += ev.qty
            self.accepted.add(o.client_id)
            assert (out.fill_qty, out.fill_price, out.applied) == (ev.qty, ev.price, True)
        else:
            assert out.fill_qty == 0
        if isinstance(ev, Ack) and type(ev.t_ns) is int:
            self.accepted.add(o.client_id)
        if out.anomaly == A.OVERFILL:
            self.overfilled.add(o.client_id)
        if out.rtt_kind:
            self.rtts[o.client_id, out.rtt_kind] += 1
            sent_at = {
                RttKind.ORDER: o.sent_ns,
                RttKind.CANCEL: o.cancel_sent_ns,
                RttKind.MODIFY: o.modify_sent_ns,
            }[out.rtt_kind]
            assert out.rtt_ns == ev.t_ns - sent_at
        return out

    def check(self) -> None:
        tr = self.tr
        for cid, o in self.orders.items():
            # cumulative filled is the sum of the distinct fills applied, and never beyond the
            # quantity the order may reach unless the overfill was reported
            assert o.filled == self.filled[cid]
            assert o.filled_notional >= o.filled
            cap = max(o.qty, o.req_qty) if o.modify_in_flight else o.qty
            assert o.filled <= cap or cid in self.overfilled
            # a terminal state is stable
            if cid in self.ended:
                assert o.state == self.ended[cid]
            elif o.state in TERMINAL_STATES:
                self.ended[cid] = o.state
            # the working states mean what they say
            if o.state in (S.NEW, S.PENDING, S.OPEN):
                assert o.filled == 0
            if o.state == S.PARTIALLY_FILLED:
                assert 0 < o.filled < o.qty
            if o.state == S.PENDING_MODIFY:
                assert o.modify_in_flight
            if o.state not in TERMINAL_STATES:
                assert o.filled < cap
            if o.state == S.FILLED:
                assert o.filled >= o.qty
            # an order the venue accepted never goes back to NEW or PENDING
            if cid in self.accepted:
                assert o.state not in (S.NEW, S.PENDING)
            # one RTT sample per request at most
            for kind in (RttKind.ORDER, RttKind.CANCEL, RttKind.MODIFY):
                assert self.rtts[cid, kind] <= self.requests[cid, kind]
        open_ids = [o.client_id for o in tr.open_orders()]
        assert sorted(open_ids) == sorted(
            cid for cid, o in self.orders.items() if o.state not in TERMINAL_STATES
        )
        states = Counter(o.state for o in self.orders.values())
        assert tr.counts() == {s: states[s] for s in OrderState}
        # every anomaly reported is counted, per kind
        assert tr.anomalies() == {a: self.anomalies[a] for a in Anomaly if a}


class AnyVenue(RuleBasedStateMachine):
    """Anything a venue could send, in any order, for known and unknown orders, repeated at
    will, malformed now and then, mixed with the engine's own requests: `apply` never raises
    and the invariants hold after every step. Events mostly target the working orders (a few
    at a time), so each order sees many events before it ends."""

    def __init__(self) -> None:
        super().__init__()
        self.tr = OrderTracker()
        self.w = Watch(self.tr)
        self.delivered: list[VenueEvent] = []
        self.now = 1_000

    def t(self, back: int) -> int:
        """Event times mostly move forward; some step back (a clock the engine does not own)."""
        self.now += 5
        return self.now - back

    def cid(self, pick: int) -> int:
        working = [o.client_id for o in self.tr.open_orders()]
        every = list(self.w.orders)
        k, i = pick % 10, pick // 10
        if k < 7 and working:
            return working[i % len(working)]
        if k < 9 and every:
            return every[i % len(every)]
        return (0, -1, 10_000)[i % 3]  # never issued

    def send(self, ev: VenueEvent) -> None:
        self.w.apply(ev)
        self.delivered.append(ev)

    @initialize(qtys=st.lists(st.integers(1, 8), min_size=2, max_size=3), sends=st.integers(0, 7))
    def first_orders(self, qtys: list[int], sends: int) -> None:
        """Orders exist from the start: hypothesis turns rules off at random (swarm testing),
        and a run without `place` would otherwise only ever see unknown orders."""
        for k, q in enumerate(qtys):
            self.place(q, sends >> k & 1)

    @rule(qty=st.integers(1, 8), send=st.integers(0, 3))
    def place(self, qty: int, send: int) -> None:
        if len(self.tr.open_orders()) < 3:
            _, o = placed(self.tr, qty=qty, t=self.t(0), send=False)
            self.w.add(o)
            if send:
                assert self.tr.sent(o.client_id, self.t(0))
                self.w.request(o.client_id, RttKind.ORDER, True)

    # -- the engine's requests

    @rule(pick=picks)
    def sent(self, pick: int) -> None:
        cid = self.cid(pick)
        if cid in self.w.orders:
            before = self.w.orders[cid].state
            ok = self.tr.sent(cid, self.t(0))
            assert ok == (before == S.NEW)
            self.w.request(cid, RttKind.ORDER, ok)

    @rule(pick=picks)
    def cancel(self, pick: int) -> None:
        cid = self.cid(pick)
        if cid in self.w.orders:
            o = self.w.orders[cid]
            before = o.state
            ok = self.tr.cancel_requested(cid, self.t(0))
            assert ok == (before in (S.PENDING, S.OPEN, S.PARTIALLY_FILLED, S.PENDING_MODIFY))
            assert o.state == (
                S.PENDING_CANCEL if ok else S.CANCELLED if before == S.NEW else before
            )
            self.w.request(cid, RttKind.CANCEL, ok)

    @rule(pick=picks, dp=st.sampled_from([0, 5]), qty=st.integers(1, 12))
    def modify(self, pick: int, dp: int, qty: int) -> None:
        cid = self.cid(pick)
        if cid in self.w.orders:
            o = self.w.orders[cid]
            before = o.state
            ok = self.tr.modify_requested(cid, PX + dp, qty, self.t(0))
            if ok:
                assert before in (S.OPEN, S.PARTIALLY_FILLED) and o.state == S.PENDING_MODIFY
            else:
                assert o.state == before
            self.w.request(cid, RttKind.MODIFY, ok)

    # -- the venue's events, true or not

    @rule(
        kind=st.sampled_from(VENUE_KINDS),
        pick=picks,
        back=st.sampled_from([0, 0, 0, 3, 50]),
        n=st.integers(0, 40),
        qty=st.sampled_from([1, 1, 2, 3, 4, 5, 8, 0, -1]),
        flag=st.booleans(),
    )
    def venue(self, kind: str, pick: int, back: int, n: int, qty: int, flag: bool) -> None:
        """`n` picks a fill id (reused ids are duplicates), `flag` a variant of the event."""
        cid = self.cid(pick)
        o = self.w.orders.get(cid)
        t = self.t(back)
        price = PX + 5 if flag else PX
        ev: VenueEvent
        if kind == "ack":
            ev = Ack(cid, "V2" if flag else "V1", t)
        elif kind == "reject":
            ev = Reject(cid, RejectReason(1 + n % len(RejectReason)), "r", t)
        elif kind == "modify_ack":
            if not flag and o is not None and o.req_qty:  # the answer to the modify asked
                price, qty = o.req_price, o.req_qty
            ev = ModifyAck(cid, price, qty, t)
        elif kind == "fill":
            ev = Fill(cid, f"F{n}", 0 if n == 40 else price, qty, t)
        elif kind == "cancel_ack":
            ev = CancelAck(cid, t)
        elif kind == "cancel_reject":
            ev = CancelReject(cid, DONE if flag else RejectReason.RATE_LIMITED, "c", t)
        elif kind == "expire":
            ev = Expired(cid, t)
        else:
            bad = (
                Fill(cid, None, PX, 1, t),  # type: ignore[arg-type]
                Reject(cid, RejectReason.INPUT, [], t),  # type: ignore[arg-type]
                Ack(cid, "V", None),  # type: ignore[arg-type]
            )[n % 3]
            out = self.w.apply(bad)
            assert out.anomaly in (A.BAD_EVENT, A.UNKNOWN_ORDER) and not out.applied
            return
        self.send(ev)

    @rule(i=st.integers(0, 1_000))
    def replay(self, i: int) -> None:
        if self.delivered:
            self.w.apply(self.delivered[i % len(self.delivered)])

    @invariant()
    def invariants(self) -> None:
        self.w.check()


AnyVenue.TestCase.settings = settings(max_examples=400, stateful_step_count=80, deadline=None)
test_invariants_under_random_venue_events = AnyVenue.TestCase


# -- a truthful venue behind a reordering, duplicating network --------------------------------


@dataclass
class VenueOrder:
    qty: int
    price: int
    filled: int = 0
    state: str = "rest"  # or an OrderState name once it ended


BENIGN = {
    A.LATE_ACK,
    A.LATE_FILL,
    A.AFTER_TERMINAL,
    A.CANCEL_TOO_LATE,
    A.CANCEL_FAILED,
    A.DUPLICATE_ACK,
    A.DUPLICATE_FILL,
    A.DUPLICATE_REJECT,
    A.DUPLICATE_MODIFY_ACK,
}


class ReorderingVenue(RuleBasedStateMachine):
    """The venue processes each request the moment it is sent and answers truthfully; its
    answers wait on a wire, from which any one may be delivered next, any delivered one may be
    delivered again, and strangers' events arrive too. The engine decides from what it has
    seen so far, as Execution does."""

    def __init__(self) -> None:
        super().__init__()
        self.tr = OrderTracker()
        self.w = Watch(self.tr)
        self.venue: dict[int, VenueOrder] = {}
        self.accept: dict[int, bool] = {}
        self.wire: list[VenueEvent] = []
        self.delivered: list[VenueEvent] = []
        self.now = 1_000
        self.fills = 0

    def tick(self) -> int:
        self.now += 7
        return self.now

    def _send(self, cid: int) -> None:
        ok = self.tr.sent(cid, self.tick())
        self.w.request(cid, RttKind.ORDER, ok)
        if not ok:
            return
        o = self.w.orders[cid]
        if self.accept[cid]:
            self.venue[cid] = VenueOrder(o.qty, o.price)
            self.wire.append(Ack(cid, f"V{cid}", self.tick()))
        else:
            self.venue[cid] = VenueOrder(o.qty, o.price, state="REJECTED")
            self.wire.append(Reject(cid, RejectReason.PRICE_BAND, "LPP", self.tick()))

    def _pick(self, ids: list[int], i: int) -> int | None:
        return sorted(ids)[i % len(ids)] if ids else None

    @initialize(qtys=st.lists(st.integers(1, 10), min_size=2, max_size=3))
    def first_orders(self, qtys: list[int]) -> None:
        """Orders exist from the start, sent and accepted (see `AnyVenue.first_orders`)."""
        for q in qtys:
            self.place(q, True, 1)

    @rule(qty=st.integers(1, 10), send=st.booleans(), accept=st.integers(0, 4))
    def place(self, qty: int, send: bool, accept: int) -> None:
        if len(self.tr.open_orders()) >= 3:  # a few orders, so races on each are dense
            return
        _, o = placed(self.tr, qty=qty, t=self.tick(), send=False)
        self.w.add(o)
        self.accept[o.client_id] = accept > 0
        if send:
            self._send(o.client_id)

    @rule(i=st.integers(0, 50))
    def send_later(self, i: int) -> None:
        cid = self._pick([o.client_id for o in self.tr.open_orders() if o.state == S.NEW], i)
        if cid is not None:
            self._send(cid)

    @rule(i=st.integers(0, 50), q=st.integers(1, 15))
    def venue_trade(self, i: int, q: int) -> None:
        cid = self._pick([c for c, v in self.venue.items() if v.state == "rest"], i)
        if cid is None:
            return
        v = self.venue[cid]
        q = min(q, v.qty - v.filled)
        v.filled += q
        self.fills += 1
        self.wire.append(Fill(cid, f"F{self.fills}", v.price, q, self.tick()))
        if v.filled == v.qty:
            v.state = "FILLED"

    @rule(i=st.integers(0, 50))
    def venue_expire(self, i: int) -> None:
        cid = self._pick([c for c, v in self.venue.items() if v.state == "rest"], i)
        if cid is not None:
            self.venue[cid].state = "EXPIRED"
            self.wire.append(Expired(cid, self.tick()))

    @rule(i=st.integers(0, 50), fail=st.integers(0, 3), unknown=st.booleans())
    def cancel(self, i: int, fail: int, unknown: bool) -> None:
        cid = self._pick([o.client_id for o in self.tr.open_orders()], i)
        if cid is None:
            return
        ok = self.tr.cancel_requested(cid, self.tick())
        self.w.request(cid, RttKind.CANCEL, ok)
        if not ok:
            return
        v = self.venue[cid]
        t = self.tick()
        if v.state == "rest" and fail == 0:
            self.wire.append(CancelReject(cid, RejectReason.RATE_LIMITED, "429", t))
        elif v.state == "rest":
            v.state = "CANCELLED"
            self.wire.append(CancelAck(cid, t))
        elif v.state == "REJECTED" and unknown:
            self.wire.append(CancelReject(cid, RejectReason.UNKNOWN_ORDER, "no such order", t))
        else:
            self.wire.append(CancelReject(cid, DONE, "order complete", t))

    @rule(i=st.integers(0, 50), qty=st.integers(1, 15), dp=st.sampled_from([-5, 5]))
    def modify(self, i: int, qty: int, dp: int) -> None:
        cid = self._pick([o.client_id for o in self.tr.open_orders()], i)
        if cid is None:
            return
        o = self.w.orders[cid]
        ok = self.tr.modify_requested(cid, o.price + dp, qty, self.tick())
        self.w.request(cid, RttKind.MODIFY, ok)
        if not ok:
            return
        v = self.venue[cid]
        t = self.tick()
        if v.state == "rest" and qty > v.filled:
            v.price, v.qty = o.req_price, qty
            self.wire.append(ModifyAck(cid, v.price, v.qty, t))
        else:
            self.wire.append(Reject(cid, RejectReason.ORDER, "cannot modify", t))

    @rule(i=st.integers(0, 50))
    def deliver(self, i: int) -> None:
        if self.wire:
            ev = self.wire.pop(i % len(self.wire))
            self.w.apply(ev)
            self.delivered.append(ev)

    @rule(i=st.integers(0, 50))
    def duplicate(self, i: int) -> None:
        if self.delivered:
            self.w.apply(self.delivered[i % len(self.delivered)])

    @rule(cid=st.integers(10_000, 10_003))
    def stranger(self, cid: int) -> None:
        assert self.w.apply(Fill(cid, f"X{cid}", PX, 1, self.tick())).anomaly == A.UNKNOWN_ORDER

    @invariant()
    def invariants(self) -> None:
        self.w.check()

    def teardown(self) -> None:
        while self.wire:
            self.w.apply(self.wire.pop())
        self.w.check()
        for cid, o in self.w.orders.items():
            v = self.venue.get(cid)
            if v is None:  # never sent
                assert o.state in (S.NEW, S.CANCELLED)
                continue
            assert o.filled == v.filled
            if v.state == "rest":  # every request answered: working on the venue's terms
                assert o.state == (S.PARTIALLY_FILLED if v.filled else S.OPEN)
                assert (o.price, o.qty) == (v.price, v.qty)
            else:
                assert o.state == OrderState[v.state]
            # every request was answered exactly once, so each gave one RTT sample
            for kind in (RttKind.ORDER, RttKind.CANCEL, RttKind.MODIFY):
                assert self.w.rtts[cid, kind] == self.w.requests[cid, kind]
        assert set(self.w.anomalies) <= BENIGN | {A.UNKNOWN_ORDER}


ReorderingVenue.TestCase.settings = settings(
    max_examples=400, stateful_step_count=80, deadline=None
)
test_reordering_venue = ReorderingVenue.TestCase


def test_new_and_sent_in_one_call_equals_the_two_calls() -> None:
    a, b = OrderTracker(), OrderTracker()
    req = PlaceRequest(1, 7, Side.BID, 10_000, 5)
    oa = a.new(req, 100)
    a.sent(1, 100)
    ob = b.new(req, 100, sent=True)
    assert (oa.state, oa.flags, oa.sent_ns) == (ob.state, ob.flags, ob.sent_ns)
    assert a.counts() == b.counts()
    assert [o.client_id for o in a.open_orders()] == [o.client_id for o in b.open_orders()]
    assert not b.sent(1, 200)  # already sent: nothing to send again
    ack = Ack(1, "v1", 150)
    assert a.apply(ack)[2:] == b.apply(ack)[2:]  # all but the order objects themselves
