"""The simulated NSE venue: latency and ordering, matching at arrival, queue position advanced
only by trades and cancels ahead, cancel-vs-fill races both ways, every reject reason, and a
long run against the synthetic market where no order overfills and every order ends."""

from __future__ import annotations

import random
import statistics
from dataclasses import replace

import pytest

from vajra.market.events import BookUpdate, Side, Trade
from vajra.market.feeds.synthetic import SyntheticFeed, default_instrument
from vajra.market.instruments import Instrument, Segment
from vajra.venues.base import (
    Ack,
    CancelAck,
    CancelReject,
    CancelRequest,
    Expired,
    Fill,
    ModifyAck,
    ModifyRequest,
    PlaceRequest,
    Reject,
    RejectReason,
    TimeInForce,
    Venue,
    VenueEvent,
)
from vajra.venues.sim import (
    MSG_DAILY_LIMIT,
    MSG_HTTP200_TOO_MANY,
    MSG_HTTP429,
    SECOND_NS,
    LatencyModel,
    OrderStatus,
    PriceProtection,
    QueueModel,
    SimVenue,
)

MS = 1_000_000
US = 1_000
INST = replace(default_instrument(), freeze_qty=2_500)  # tick 10 paise, lot 250, 10-lot freeze
TOKEN = INST.token
LOT = INST.lot
T0 = 24_500  # tick index of Rs 2,450.00
BUY, SELL = Side.BID, Side.ASK


def px(tick: int) -> int:
    return tick * INST.tick


def venue(latency_ns: int = MS, **kw: object) -> SimVenue:
    return SimVenue([INST], latency=LatencyModel.fixed(latency_ns), seed=1, **kw)  # type: ignore[arg-type]


def book(
    v: SimVenue,
    t: int,
    bids: tuple[tuple[int, int], ...] = (),
    asks: tuple[tuple[int, int], ...] = (),
    snapshot: bool = False,
) -> None:
    v.on_market(BookUpdate(TOKEN, t, t, bids, asks, snapshot), t)


def trade(v: SimVenue, t: int, tick: int, qty: int, aggressor: Side) -> None:
    v.on_market(Trade(TOKEN, t, t, px(tick), qty, aggressor), t)


def standard_book(v: SimVenue, t: int = 0) -> None:
    """Bids 24500 x 1000, 24499 x 500; asks 24501 x 500, 24502 x 500."""
    book(v, t, ((T0, 1000), (T0 - 1, 500)), ((T0 + 1, 500), (T0 + 2, 500)), snapshot=True)


def place(
    v: SimVenue,
    cid: int,
    side: Side,
    tick: int,
    qty: int,
    t: int,
    tif: TimeInForce = TimeInForce.DAY,
) -> None:
    v.place(PlaceRequest(cid, TOKEN, side, px(tick), qty, tif), t)


def fills(evs: list[VenueEvent], cid: int | None = None) -> list[Fill]:
    return [e for e in evs if isinstance(e, Fill) and (cid is None or e.client_id == cid)]


# -- the protocol, latency and delivery ------------------------------------------------------------


def test_sim_venue_is_a_venue() -> None:
    v: Venue = venue()
    assert v.name == "sim"


def test_answers_come_back_after_two_one_way_latencies_stamped_with_the_arrival_time() -> None:
    v = venue(MS)
    standard_book(v)
    place(v, 1, BUY, T0 - 5, LOT, 10 * MS)
    assert v.poll(11 * MS) == []  # arrived at 11 ms, answer still on the wire
    assert v.pending_requests == 0 and v.pending_events == 1
    assert v.poll(12 * MS - 1) == []
    (ack,) = v.poll(12 * MS)
    assert isinstance(ack, Ack) and ack.client_id == 1 and ack.t_ns == 11 * MS
    assert ack.venue_id


def test_latency_model_median_and_tail() -> None:
    rng = random.Random(5)
    m = LatencyModel(median_ns=4 * MS, sigma=0.3, tail_prob=0.01, tail_scale_ns=8 * MS)
    xs = [m.draw(rng, 0) for _ in range(40_000)]
    assert statistics.median(xs) == pytest.approx(4 * MS, rel=0.03)
    # beyond 3 sigma of the body: 0.13 % from the body alone, ~0.5 % more from the tail
    far = 4 * MS * 2.4596  # exp(3 * 0.3)
    share = sum(x > far for x in xs) / len(xs)
    assert 0.003 < share < 0.012
    body = LatencyModel(median_ns=4 * MS, sigma=0.3, tail_prob=0.0)
    ys = [body.draw(rng, 0) for _ in range(40_000)]
    assert sum(y > far for y in ys) / len(ys) < 0.003
    assert max(xs) > 20 * MS > max(ys)  # the tail reaches the 20 ms lockdown; the body does not
    assert LatencyModel.fixed(7).draw(rng, 0) == 7
    with pytest.raises(ValueError):
        LatencyModel(tail_prob=1.5)
    with pytest.raises(ValueError):
        m.spike(10, 5, 1)


def test_an_injected_spike_shows_in_ack_timing_and_trips_a_20ms_rtt() -> None:
    v = venue(MS)
    standard_book(v)
    v.latency.spike(10 * MS, 10 * MS + 2 * SECOND_NS, 30 * MS)
    sent = {1: 0, 2: 20 * MS, 3: 3 * SECOND_NS}
    acked: dict[int, int] = {}
    for cid, t in sent.items():
        place(v, cid, BUY, T0 - 5 - cid, LOT, t)
        now = t
        while cid not in acked:
            now += 100 * US
            for e in v.poll(now):
                assert isinstance(e, Ack)
                acked[e.client_id] = now
    rtt = {cid: acked[cid] - sent[cid] for cid in sent}
    assert rtt[1] == 2 * MS
    assert rtt[2] == 62 * MS  # both legs inside the spike: +30 ms each way
    assert rtt[2] > 20 * MS
    assert rtt[3] == 2 * MS  # the spike is over
    v.latency.clear_spikes()
    assert v.latency.extra_at(20 * MS) == 0


def test_in_order_connection_keeps_answers_in_exchange_order() -> None:
    v = SimVenue([INST], latency=LatencyModel(4 * MS, sigma=0.8), seed=3)
    standard_book(v)
    for i in range(8):
        place(v, i + 1, BUY, T0 - 3 - i, LOT, i * 200 * MS)  # within 10/s
    evs = v.poll(10 * SECOND_NS)
    assert [e.client_id for e in evs] == list(range(1, 9))
    assert [e.t_ns for e in evs] == sorted(e.t_ns for e in evs)


def test_out_of_order_links_can_overtake_a_cancel_past_its_place() -> None:
    v = SimVenue([INST], latency=LatencyModel(4 * MS, sigma=1.0), seed=11, in_order=False)
    standard_book(v)
    unknown = 0
    for i in range(60):
        t = i * 300 * MS
        place(v, i + 1, BUY, T0 - 5, LOT, t)
        v.cancel(CancelRequest(i + 1), t + 10 * US)
        for e in v.poll(t + 299 * MS):
            if isinstance(e, CancelReject) and e.reason is RejectReason.UNKNOWN_ORDER:
                unknown += 1
    assert unknown > 0


def test_determinism_for_a_seed() -> None:
    def run(seed: int) -> list[str]:
        return [repr(e) for e in synthetic_run(seed, 3_000, venue_seed=seed)[0]]

    assert run(4) == run(4)
    assert run(4) != run(5)


# -- matching at arrival ---------------------------------------------------------------------------


def test_a_crossing_order_fills_at_once_level_by_level_at_their_prices() -> None:
    v = venue()
    standard_book(v)
    place(v, 1, BUY, T0 + 2, 750, 0)
    evs = v.poll(2 * MS)
    assert isinstance(evs[0], Ack)
    f = fills(evs)
    assert [(x.price, x.qty, x.t_ns) for x in f] == [(px(T0 + 1), 500, MS), (px(T0 + 2), 250, MS)]
    assert len({x.fill_id for x in f}) == 2
    o = v.order(1)
    assert o is not None and o.status is OrderStatus.FILLED and o.filled == 750


def test_the_rest_of_a_crossing_order_rests_or_expires_and_taken_liquidity_is_gone() -> None:
    v = venue()
    standard_book(v)
    place(v, 1, BUY, T0 + 2, 1250, 0)  # DAY: 1000 fill, 250 rest at 24502
    place(v, 2, BUY, T0 + 2, 500, 0)  # the same levels, already taken by order 1
    place(v, 3, SELL, T0 - 1, 2000, 0, TimeInForce.IOC)  # 1500 visible bids, the rest expires
    evs = v.poll(5 * MS)
    assert sum(f.qty for f in fills(evs, 1)) == 1000
    assert fills(evs, 2) == []
    assert [(f.price, f.qty) for f in fills(evs, 3)] == [(px(T0), 1000), (px(T0 - 1), 500)]
    assert [e for e in evs if isinstance(e, Expired)] == [Expired(3, MS)]
    o1, o2, o3 = v.order(1), v.order(2), v.order(3)
    assert o1 is not None and o1.status is OrderStatus.OPEN and o1.filled == 1000
    assert o2 is not None and o2.status is OrderStatus.OPEN and o2.queue_ahead == 0
    assert o3 is not None and o3.status is OrderStatus.EXPIRED
    # 1000 fresh at 24502 (the replay still shows the 500 we took there): sellers at our price
    book(v, 10 * MS, asks=((T0 + 2, 1500),))
    evs = v.poll(20 * MS)
    assert [(f.client_id, f.price, f.qty) for f in fills(evs)] == [
        (1, px(T0 + 2), 250),
        (2, px(T0 + 2), 500),
    ]


# -- queue position --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "after_cancel"), [(QueueModel.PRO_RATA, 500), (QueueModel.AHEAD_FIRST, 0)]
)
def test_queue_position_moves_only_on_trades_and_cancels_ahead(
    model: QueueModel, after_cancel: int
) -> None:
    v = venue(queue_model=model)
    standard_book(v)
    place(v, 1, BUY, T0, 2 * LOT, 0)
    v.poll(2 * MS)
    o = v.order(1)
    assert o is not None and o.queue_ahead == 1000  # the back of the 24500 queue
    book(v, 3 * MS, bids=((T0, 3000),))  # 2000 join behind us
    book(v, 4 * MS, asks=((T0 + 1, 250),))  # the other side moves
    book(v, 5 * MS, bids=((T0 - 1, 100),))  # another price
    trade(v, 6 * MS, T0 + 1, LOT, BUY)  # a buyer lifts the ask: not our queue
    o = v.order(1)
    assert o is not None and o.queue_ahead == 1000
    book(v, 7 * MS, bids=((T0, 1500),))  # 1500 cancelled at our price, no trade
    o = v.order(1)
    # pro rata: 1500 * 1000/3000 = 500 of them were ahead; ahead-first: all 1000 ahead went
    assert o is not None and o.queue_ahead == after_cancel
    if model is QueueModel.AHEAD_FIRST:
        return
    trade(v, 8 * MS, T0, LOT, SELL)  # a seller hits 24500: 250 of the 500 ahead
    book(v, 8 * MS, bids=((T0, 1250),))  # the trade's own book update is not a cancel
    o = v.order(1)
    assert o is not None and o.queue_ahead == 250 and o.filled == 0
    trade(v, 9 * MS, T0, 2 * LOT, SELL)  # 250 ahead, then 250 of ours: a partial fill
    o = v.order(1)
    assert o is not None and o.queue_ahead == 0 and o.filled == LOT
    trade(v, 10 * MS, T0, 2 * LOT, SELL)  # the rest of ours; the volume beyond is not ours
    evs = v.poll(20 * MS)
    f = fills(evs, 1)
    assert [(x.price, x.qty, x.t_ns) for x in f] == [(px(T0), LOT, 9 * MS), (px(T0), LOT, 10 * MS)]
    assert len({x.fill_id for x in f}) == 2
    o = v.order(1)
    assert o is not None and o.status is OrderStatus.FILLED


def test_a_snapshot_that_shrinks_our_level_counts_as_cancels() -> None:
    v = venue(queue_model=QueueModel.AHEAD_FIRST)
    standard_book(v)
    place(v, 1, BUY, T0, LOT, 0)
    v.poll(2 * MS)
    book(v, 3 * MS, ((T0, 750), (T0 - 1, 500)), ((T0 + 1, 500),), snapshot=True)
    o = v.order(1)
    assert o is not None and o.queue_ahead == 750  # 250 of the 1000 ahead cancelled


def test_our_own_earlier_order_at_the_same_price_is_ahead() -> None:
    v = venue()
    standard_book(v)
    place(v, 1, BUY, T0, LOT, 0)
    place(v, 2, BUY, T0, LOT, 0)
    v.poll(2 * MS)
    trade(v, 3 * MS, T0, 1250, SELL)  # 1000 market ahead, then order 1
    a, b = v.order(1), v.order(2)
    assert a is not None and a.status is OrderStatus.FILLED
    assert b is not None and b.filled == 0 and b.queue_ahead == 0


def test_trading_through_our_price_fills_us_at_our_price() -> None:
    v = venue()
    standard_book(v)
    place(v, 1, BUY, T0, 2 * LOT, 0)  # 1000 ahead at 24500
    v.poll(2 * MS)
    trade(v, 3 * MS, T0 - 1, LOT, SELL)  # a seller got 24499 while we bid 24500
    evs = v.poll(10 * MS)
    assert [(f.price, f.qty) for f in fills(evs, 1)] == [(px(T0), LOT)]
    o = v.order(1)
    assert o is not None and o.queue_ahead == 0 and o.filled == LOT


def test_the_opposite_side_reaching_our_price_fills_us() -> None:
    v = venue()
    standard_book(v)
    place(v, 1, SELL, T0 + 1, 3 * LOT, 0)  # joins 500 at 24501
    v.poll(2 * MS)
    book(v, 3 * MS, bids=((T0, 0), (T0 + 1, 0)))  # nothing changes at bids >= our price
    book(v, 4 * MS, asks=((T0 + 1, 0),))  # the market's 24501 asks go: we are alone there
    o = v.order(1)
    assert o is not None and o.queue_ahead == 0 and o.filled == 0
    book(v, 5 * MS, bids=((T0 + 1, 500),))  # a buyer bids our price: it meets our ask
    evs = v.poll(10 * MS)
    assert [(f.price, f.qty) for f in fills(evs, 1)] == [(px(T0 + 1), 500)]
    book(v, 6 * MS, bids=((T0 - 2, 250),))  # an unrelated update: no second fill from 24501
    assert fills(v.poll(20 * MS)) == []


def test_a_crossed_view_is_a_feed_glitch_and_fills_nothing() -> None:
    v = venue()
    standard_book(v)
    place(v, 1, SELL, T0 + 2, LOT, 0)
    v.poll(2 * MS)
    book(v, 3 * MS, bids=((T0 + 3, LOT),))  # crosses the market's own 24501 ask
    book(v, 4 * MS, bids=((T0 + 3, 0),))  # repaired
    assert fills(v.poll(10 * MS)) == []


# -- modifications ---------------------------------------------------------------------------------


def test_a_smaller_quantity_keeps_priority_a_new_price_or_larger_quantity_loses_it() -> None:
    v = venue()
    standard_book(v)
    place(v, 1, BUY, T0, 4 * LOT, 0)
    place(v, 2, BUY, T0, LOT, 0)
    v.poll(2 * MS)
    trade(v, 3 * MS, T0, 500, SELL)  # ahead 1000 -> 500
    book(v, 3 * MS, bids=((T0, 500),))
    v.modify(ModifyRequest(1, px(T0), 2 * LOT), 4 * MS)
    evs = v.poll(6 * MS)
    assert evs == [ModifyAck(1, px(T0), 2 * LOT, 5 * MS)]
    a = v.order(1)
    assert a is not None and a.queue_ahead == 500 and a.qty == 2 * LOT
    v.modify(ModifyRequest(2, px(T0), 2 * LOT), 7 * MS)  # larger: back of the queue
    v.poll(9 * MS)
    b = v.order(2)
    assert b is not None and b.queue_ahead == 500  # the market's 500 (ours is not visible)
    trade(v, 10 * MS, T0, 1000, SELL)  # 500 market, then order 1's 500; order 2 waits
    a, b = v.order(1), v.order(2)
    assert a is not None and a.status is OrderStatus.FILLED
    assert b is not None and b.filled == 0
    v.modify(ModifyRequest(2, px(T0 - 1), 2 * LOT), 11 * MS)  # new price: back of 24499
    v.poll(13 * MS)
    b = v.order(2)
    assert b is not None and b.price == px(T0 - 1) and b.queue_ahead == 500
    assert b.modifications == 2


def test_a_modify_to_a_crossing_price_fills_at_once() -> None:
    v = venue()
    standard_book(v)
    place(v, 1, BUY, T0, LOT, 0)
    v.modify(ModifyRequest(1, px(T0 + 1), LOT), 1 * MS)
    evs = v.poll(5 * MS)
    assert [type(e) for e in evs] == [Ack, ModifyAck, Fill]
    assert fills(evs)[0].price == px(T0 + 1)


# -- cancel-vs-fill races ---------------------------------------------------------------------------


def resting_alone(v: SimVenue, qty: int = LOT) -> None:
    """Order 1: a bid at 24500 above the market's best bid (24499), so nothing is ahead."""
    book(v, 0, ((T0 - 1, 500),), ((T0 + 1, 500),), snapshot=True)
    place(v, 1, BUY, T0, qty, 0)  # arrives at 1 ms


def test_a_fill_before_the_cancel_arrives_wins() -> None:
    v = venue()
    resting_alone(v)
    v.cancel(CancelRequest(1), int(1.5 * MS))  # arrives at 2.5 ms
    trade(v, 2 * MS, T0 - 1, 500, SELL)  # fills us at 2 ms, before the cancel lands
    evs = v.poll(10 * MS)
    assert [type(e) for e in evs] == [Ack, Fill, CancelReject]
    rej = evs[2]
    assert isinstance(rej, CancelReject) and rej.reason is RejectReason.ALREADY_DONE
    assert rej.t_ns == int(2.5 * MS)
    assert v.stats.cancel_rejects[RejectReason.ALREADY_DONE] == 1


def test_a_partial_fill_before_the_cancel_then_the_rest_is_cancelled() -> None:
    v = venue()
    resting_alone(v, 3 * LOT)
    v.cancel(CancelRequest(1), int(1.5 * MS))
    trade(v, 2 * MS, T0 - 1, LOT, SELL)
    trade(v, 3 * MS, T0 - 1, 5 * LOT, SELL)  # after the cancel: no more fills
    evs = v.poll(10 * MS)
    assert [type(e) for e in evs] == [Ack, Fill, CancelAck]
    assert fills(evs)[0].qty == LOT
    o = v.order(1)
    assert o is not None and o.status is OrderStatus.CANCELLED and o.filled == LOT


def test_a_cancel_that_arrives_first_wins_and_no_fill_follows() -> None:
    v = venue()
    resting_alone(v)
    v.cancel(CancelRequest(1), int(1.5 * MS))  # arrives at 2.5 ms
    trade(v, int(2.5 * MS), T0 - 1, 500, SELL)  # the same ns: the cancel was there first
    trade(v, 3 * MS, T0 - 1, 500, SELL)
    book(v, 4 * MS, asks=((T0, 500),))
    evs = v.poll(10 * MS)
    assert [type(e) for e in evs] == [Ack, CancelAck]
    assert evs[1] == CancelAck(1, int(2.5 * MS))
    assert v.poll(SECOND_NS) == []


def test_a_modify_after_the_fill_is_refused_as_already_done() -> None:
    v = venue()
    resting_alone(v)
    v.modify(ModifyRequest(1, px(T0 - 1), LOT), int(1.5 * MS))
    trade(v, 2 * MS, T0 - 1, 500, SELL)
    evs = v.poll(10 * MS)
    assert [type(e) for e in evs] == [Ack, Fill, Reject]
    assert isinstance(evs[2], Reject) and evs[2].reason is RejectReason.ALREADY_DONE


# -- rejects ---------------------------------------------------------------------------------------


def first_answer(v: SimVenue, cid: int, until: int = 100 * SECOND_NS) -> VenueEvent:
    return next(e for e in v.poll(until) if e.client_id == cid)


@pytest.mark.parametrize(
    ("price", "qty", "reason"),
    [
        (px(T0) + 5, LOT, RejectReason.OFF_TICK),
        (px(T0), 0, RejectReason.BAD_QTY),
        (px(T0), -LOT, RejectReason.BAD_QTY),
        (px(T0), 100, RejectReason.BAD_QTY),
        (px(T0), 11 * LOT, RejectReason.FREEZE_QTY),
        (0, LOT, RejectReason.INPUT),
        (px(T0) * 2, LOT, RejectReason.PRICE_BAND),  # beyond the circuit band
    ],
)
def test_place_checks(price: int, qty: int, reason: RejectReason) -> None:
    v = venue()
    standard_book(v)
    v.place(PlaceRequest(1, TOKEN, BUY, price, qty), 0)
    rej = first_answer(v, 1)
    assert isinstance(rej, Reject) and rej.reason is reason and rej.t_ns == MS
    assert v.stats.rejects[reason] == 1
    v.cancel(CancelRequest(1), 200 * SECOND_NS)  # a rejected order exists, and is done
    cr = first_answer(v, 1, 300 * SECOND_NS)
    assert isinstance(cr, CancelReject) and cr.reason is RejectReason.ALREADY_DONE


def test_freeze_quantity_is_inclusive() -> None:
    v = venue()
    standard_book(v)
    place(v, 1, BUY, T0 - 5, 10 * LOT, 0)
    assert isinstance(first_answer(v, 1), Ack)


def test_input_rejects_unknown_instrument_long_tag_duplicate_id() -> None:
    v = venue()
    standard_book(v)
    v.place(PlaceRequest(1, 12345, BUY, px(T0), LOT), 0)
    v.place(PlaceRequest(2, TOKEN, BUY, px(T0 - 5), LOT, tag="x" * 21), 0)
    v.place(PlaceRequest(3, TOKEN, BUY, px(T0 - 5), LOT, tag="x" * 20), 0)
    v.place(PlaceRequest(3, TOKEN, BUY, px(T0 - 6), LOT), 0)
    evs = v.poll(1 << 62)
    assert [(type(e).__name__, e.client_id) for e in evs] == [
        ("Reject", 1),
        ("Reject", 2),
        ("Ack", 3),
        ("Reject", 3),
    ]
    assert all(e.reason is RejectReason.INPUT for e in evs if isinstance(e, Reject))
    o = v.order(3)
    assert o is not None and o.price == px(T0 - 5)  # the duplicate did not touch it


def test_limit_price_protection_around_the_30s_average_trade_price_else_the_mid() -> None:
    v = venue()
    book(v, 0, ((T0, 5000),), ((T0 + 20, 5000),), snapshot=True)
    assert v.reference_price(TOKEN, 0) == px(T0 + 10)  # no trades yet: the mid
    trade(v, 0, T0, 500, SELL)
    trade(v, 1 * SECOND_NS, T0, 500, SELL)
    trade(v, 2 * SECOND_NS, T0 + 20, 1000, BUY)
    ref = (2 * 245_000 * 500 + 245_200 * 1000) // 2000  # volume weighted: 245,100
    assert v.reference_price(TOKEN, 2 * SECOND_NS) == ref
    hi = ref + ref * 300 // 10_000
    lo = ref - ref * 300 // 10_000
    t = 3 * SECOND_NS
    v.place(PlaceRequest(1, TOKEN, SELL, hi // 10 * 10, LOT), t)
    v.place(PlaceRequest(2, TOKEN, SELL, hi // 10 * 10 + 10, LOT), t)
    v.place(PlaceRequest(3, TOKEN, BUY, -(-lo // 10) * 10, LOT), t)
    v.place(PlaceRequest(4, TOKEN, BUY, -(-lo // 10) * 10 - 10, LOT), t)
    evs = v.poll(t + SECOND_NS)
    kinds = {e.client_id: e for e in evs}
    assert isinstance(kinds[1], Ack) and isinstance(kinds[3], Ack)
    for cid in (2, 4):
        r = kinds[cid]
        assert isinstance(r, Reject) and r.reason is RejectReason.PRICE_BAND
        assert "Limit Price Protection" in r.message
    # 30 s after the last trade the window is empty: back to the mid
    assert v.reference_price(TOKEN, 33 * SECOND_NS) == px(T0 + 10)


def test_lpp_band_is_configurable_and_options_use_their_own_rule() -> None:
    v = venue(price_protection=PriceProtection(futures_bp=100))
    standard_book(v)  # mid 245,005: +-1 % = 2,450
    v.place(PlaceRequest(1, TOKEN, BUY, 242_560, LOT), 0)
    v.place(PlaceRequest(2, TOKEN, BUY, 242_550, LOT), 0)
    evs = {e.client_id: e for e in v.poll(1 << 62)}
    assert isinstance(evs[1], Ack)
    r2 = evs[2]
    assert isinstance(r2, Reject) and r2.reason is RejectReason.PRICE_BAND
    opt = Instrument(7, "SYNTH26DEC2450CE", "NFO", Segment.NFO_OPT, 2, 5, lot=250)
    pp = PriceProtection()
    assert pp.width(opt, 4_000) == 2_000  # premium Rs 40: +-Rs 20
    assert pp.width(opt, 10_000) == 4_000  # premium Rs 100: +-40 %
    eq = Instrument(8, "X", "NSE", Segment.NSE_EQ, 2, 5)
    assert pp.width(eq, 10_000) == -1  # cash: no LPP unless other_bp is set


def test_rate_limit_429_or_http200_then_a_cooldown() -> None:
    v = venue()
    standard_book(v)
    for i in range(10):
        place(v, i + 1, BUY, T0 - 10 - i, LOT, i * US)
    place(v, 11, BUY, T0 - 30, LOT, 20 * US)  # the 11th within one second
    v.cancel(CancelRequest(1), 5 * SECOND_NS)  # inside the cooldown
    place(v, 12, BUY, T0 - 31, LOT, 10 * SECOND_NS + 20 * US + MS)  # the cooldown is over
    evs = v.poll(1 << 62)
    by = {e.client_id: e for e in evs if not isinstance(e, (CancelReject, CancelAck))}
    assert all(isinstance(by[i], Ack) for i in range(1, 11))
    r = by[11]
    assert isinstance(r, Reject) and r.reason is RejectReason.RATE_LIMITED
    assert r.retry_after_ns == 10 * SECOND_NS
    assert r.message in (MSG_HTTP200_TOO_MANY, MSG_HTTP429)
    (cr,) = [e for e in evs if isinstance(e, CancelReject)]
    assert cr.reason is RejectReason.RATE_LIMITED
    assert isinstance(by[12], Ack)
    assert v.stats.rejects[RejectReason.RATE_LIMITED] == 1
    assert v.stats.cancel_rejects[RejectReason.RATE_LIMITED] == 1


def test_rate_limit_answers_with_both_kite_messages_and_a_shrinking_retry_after() -> None:
    v = venue()
    standard_book(v)
    for i in range(11):
        place(v, i + 1, BUY, T0 - 10, LOT, i * US)
    for i in range(40):
        place(v, 100 + i, BUY, T0 - 10, LOT, SECOND_NS + i * 100 * MS)
    rejects = [e for e in v.poll(1 << 62) if isinstance(e, Reject)]
    assert len(rejects) == 41
    assert {r.message for r in rejects} == {MSG_HTTP200_TOO_MANY, MSG_HTTP429}
    retry = [r.retry_after_ns for r in rejects]
    assert retry == sorted(retry, reverse=True) and retry[-1] > 0


def test_per_minute_and_daily_limits() -> None:
    v = venue(rate_limit_per_min=5)
    standard_book(v)
    for i in range(6):
        place(v, i + 1, BUY, T0 - 10, LOT, i * 200 * MS)
    last = first_answer(v, 6)
    assert isinstance(last, Reject) and last.reason is RejectReason.RATE_LIMITED
    d = venue(daily_order_limit=3)
    standard_book(d)
    for i in range(4):
        place(d, i + 1, BUY, T0 - 10, LOT, i * 200 * MS)
    d.cancel(CancelRequest(1), SECOND_NS)  # cancels do not count toward the daily cap
    evs = d.poll(1 << 62)
    r4 = next(e for e in evs if e.client_id == 4)
    assert isinstance(r4, Reject) and r4.reason is RejectReason.RATE_LIMITED
    assert r4.message == MSG_DAILY_LIMIT and r4.retry_after_ns == 0
    assert any(isinstance(e, CancelAck) for e in evs)


def test_at_most_25_modifications() -> None:
    v = venue()
    standard_book(v)
    place(v, 1, BUY, T0 - 10, LOT, 0)
    for i in range(26):
        v.modify(ModifyRequest(1, px(T0 - 10 - (i + 1) % 2), LOT), (i + 1) * 150 * MS)
    evs = v.poll(1 << 62)
    acks = [e for e in evs if isinstance(e, ModifyAck)]
    assert len(acks) == 25
    r = evs[-1]
    assert isinstance(r, Reject) and r.reason is RejectReason.TOO_MANY_MODIFICATIONS
    o = v.order(1)
    assert o is not None and o.modifications == 25 and o.status is OrderStatus.OPEN


def test_unknown_and_finished_orders() -> None:
    v = venue()
    standard_book(v)
    v.cancel(CancelRequest(99), 0)
    v.modify(ModifyRequest(98, px(T0), LOT), 0)
    place(v, 1, BUY, T0 - 10, 2 * LOT, 0)
    v.cancel(CancelRequest(1), 200 * MS)
    v.cancel(CancelRequest(1), 400 * MS)
    v.modify(ModifyRequest(1, px(T0 - 10), LOT), 600 * MS)
    evs = v.poll(1 << 62)
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in evs] == [
        ("CancelReject", RejectReason.UNKNOWN_ORDER),
        ("Reject", RejectReason.UNKNOWN_ORDER),
        ("Ack", None),
        ("CancelAck", None),
        ("CancelReject", RejectReason.ALREADY_DONE),
        ("Reject", RejectReason.ALREADY_DONE),
    ]


def test_modify_checks_terms_and_the_filled_quantity() -> None:
    v = venue()
    resting_alone(v, 2 * LOT)
    trade(v, 2 * MS, T0 - 1, LOT, SELL)  # 250 filled
    v.modify(ModifyRequest(1, px(T0), LOT), 3 * MS)  # not above the filled quantity
    v.modify(ModifyRequest(1, px(T0) + 3, 2 * LOT), 3 * MS)
    v.modify(ModifyRequest(1, px(T0), 20 * LOT), 3 * MS)
    v.modify(ModifyRequest(1, px(T0), 3 * LOT), 3 * MS)  # fine: 500 left to fill
    evs = [e for e in v.poll(1 << 62) if isinstance(e, (Reject, ModifyAck))]
    assert [getattr(e, "reason", "ack") for e in evs] == [
        RejectReason.ORDER,
        RejectReason.OFF_TICK,
        RejectReason.FREEZE_QTY,
        "ack",
    ]


def test_end_of_session_expires_what_rests_and_stats_add_up() -> None:
    v = venue()
    standard_book(v)
    place(v, 1, BUY, T0 - 10, LOT, 0)
    place(v, 2, BUY, T0 + 1, LOT, 0)
    place(v, 3, BUY, T0, 3, 0)
    v.end_session(10 * MS)
    evs = v.poll(1 << 62)
    assert Expired(1, 10 * MS) in evs
    s = v.stats.as_dict()
    assert s["orders"] == 3 and s["acks"] == 2 and s["fills"] == 1 and s["expired"] == 1
    assert s["rejects.BAD_QTY"] == 1 and s["requests"] == 3
    assert v.open_orders() == []


# -- a long run against the synthetic market -------------------------------------------------------


def synthetic_run(
    seed: int, n: int, venue_seed: int = 1
) -> tuple[list[VenueEvent], SimVenue, dict[int, int]]:
    """Random passive orders (and a few aggressive ones) on the synthetic market, cancelled after
    200 ms like the engine does, some modified; at the end everything left is cancelled."""
    feed = SyntheticFeed(seed)
    inst = feed.instrument
    v = SimVenue([inst], latency=LatencyModel(), seed=venue_seed)
    rng = random.Random(seed * 7 + 1)
    snap = feed.initial_snapshot()
    v.on_market(snap, snap.recv_ns)
    events: list[VenueEvent] = []
    qty: dict[int, int] = {}
    sent_at: dict[int, int] = {}
    cid = 0
    now = snap.recv_ns
    last_send = -SECOND_NS
    for ev in feed.events(n):
        now = getattr(ev, "recv_ns", now)
        v.on_market(ev, now)
        events.extend(v.poll(now))
        if now - last_send < 120 * MS:  # stay under 10 requests/s
            continue
        old = [c for c, t in sent_at.items() if now - t > 200 * MS]
        if old:
            c = old[0]
            del sent_at[c]
            if rng.random() < 0.3:
                side_px = v.order(c)
                if side_px is not None and side_px.status is OrderStatus.OPEN:
                    v.modify(ModifyRequest(c, side_px.price, side_px.qty + inst.lot), now)
                    qty[c] = max(qty[c], side_px.qty + inst.lot)
                    sent_at[c] = now
                    last_send = now
                    continue
            v.cancel(CancelRequest(c), now)
            last_send = now
        elif rng.random() < 0.2:
            cid += 1
            side = BUY if rng.random() < 0.5 else SELL
            depth = rng.choice((-1, 0, 0, 1, 2))  # -1: aggressive
            b = v.book(inst.token)
            bb, ba = b.best_bid(), b.best_ask()
            tick = bb - depth if side is BUY else ba + depth
            q = inst.lot * rng.randint(1, 3)
            v.place(PlaceRequest(cid, inst.token, side, tick * inst.tick, q), now)
            qty[cid] = q
            sent_at[cid] = now
            last_send = now
    for c in list(sent_at):
        v.cancel(CancelRequest(c), now + (c % 7) * SECOND_NS)
    v.end_session(now + 20 * SECOND_NS)
    events.extend(v.poll(now + 60 * SECOND_NS))
    return events, v, qty


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_synthetic_run_never_overfills_and_every_order_ends(seed: int) -> None:
    events, v, qty = synthetic_run(seed, 6_000)
    filled: dict[int, int] = {}
    ended: dict[int, str] = {}
    fill_ids: set[str] = set()
    for e in events:
        c = e.client_id
        if isinstance(e, Fill):
            assert c not in ended, f"fill after the end of order {c}"
            assert e.fill_id not in fill_ids
            fill_ids.add(e.fill_id)
            filled[c] = filled.get(c, 0) + e.qty
            assert filled[c] <= qty[c]
            o = v.order(c)
            assert o is not None
            if filled[c] == o.qty and o.status is OrderStatus.FILLED:
                ended[c] = "filled"
        elif isinstance(e, (CancelAck, Expired)):
            assert c not in ended
            ended[c] = type(e).__name__
        elif isinstance(e, Reject):  # a refused place ends the order; a refused modify does not
            o = v.order(c)
            if o is None or o.status is OrderStatus.REJECTED:
                assert c not in ended
                ended[c] = "rejected"
        elif isinstance(e, (Ack, ModifyAck)):
            assert c not in ended
    assert set(ended) == set(qty), "every order ends in a terminal event"
    assert v.open_orders() == [] and v.pending_events == 0 and v.pending_requests == 0
    for c in qty:
        o = v.order(c)
        if o is not None:
            assert o.filled == filled.get(c, 0) <= o.qty
    st = v.stats
    assert st.fills > 0 and st.cancels > 0 and st.modifies > 0
    assert st.filled_qty == sum(filled.values())
