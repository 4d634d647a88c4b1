"""The L2 book against a naive model (hypothesis), its invariants as events, lazy updates read
through before they are applied, and the instrument master."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.market.book import L2Book, Violation, tick_levels
from vajra.market.events import BookUpdate
from vajra.market.instruments import (
    Instrument,
    InstrumentError,
    InstrumentMaster,
    Segment,
    format_scaled,
    nse_equity_tick,
    parse_scaled,
)

INST = Instrument(1, "X", "NSE", Segment.NSE_EQ, 2, 5)

_OFF_OR_BAD = Violation.OFF_TICK | Violation.BAD_PRICE
# Prices in paise: half drawn on the grid (5..300), half anywhere in -10..300, so off-grid,
# zero and negative prices reach `tick_levels` often while most levels still convert.
price = st.one_of(st.integers(1, 60).map(lambda t: t * 5), st.integers(-10, 300))
level = st.tuples(price, st.integers(-1, 9))
update = st.tuples(st.lists(level, max_size=8), st.lists(level, max_size=8), st.booleans())


def _reject_bits(side: list[tuple[int, int]]) -> int:
    """The bits `tick_levels` must report, computed independently of it."""
    bits = 0
    for px, _ in side:
        if px <= 0:
            bits |= Violation.BAD_PRICE
        elif px % 5:
            bits |= Violation.OFF_TICK
    return bits


@settings(max_examples=400, deadline=None)
@given(st.lists(update, max_size=25), st.booleans(), st.booleans())
def test_book_matches_a_naive_model(
    script: list[tuple[list[tuple[int, int]], list[tuple[int, int]], bool]],
    lazy: bool,
    ordered: bool,
) -> None:
    """Prices go through `tick_levels` (as a producer would) into bids and asks on ticks 1..60
    of the same range, so crossing and locking happen often; the levels it drops are reported
    by the book and never applied. In lazy mode an ordered update is only recorded: the top
    read must already show the book as the update leaves it (the merge walk, or its fallback
    on these sparse books), and `flush()` applies it."""
    book = L2Book(INST)
    book.lazy = lazy
    mb: dict[int, int] = {}
    ma: dict[int, int] = {}
    off_tick = bad_price = 0  # updates that carried each reject bit
    n = 3
    px, q, apx, aq = [0] * n, [0] * n, [0] * n, [0] * n
    for bids, asks, snap in script:
        tb, rb = tick_levels(bids, INST.tick)
        ta, ra = tick_levels(asks, INST.tick)
        good_b = [(px // 5, q) for px, q in bids if px > 0 and px % 5 == 0]
        good_a = [(px // 5, q) for px, q in asks if px > 0 and px % 5 == 0]
        assert (list(tb), list(ta)) == (good_b, good_a)  # converted, in order, bad ones dropped
        assert (rb, ra) == (_reject_bits(bids), _reject_bits(asks))
        if ordered:  # best first, one level per tick (the last one wins), as Binance's parser
            tb = tuple(sorted(dict(tb).items(), reverse=True))
            ta = tuple(sorted(dict(ta).items()))
        u = BookUpdate(1, 0, 0, tb, ta, snapshot=snap, rejects=rb | ra, ordered=ordered)
        flags = book.apply(u)
        recorded = book.pending
        assert recorded == (
            lazy and not snap and not (rb | ra) and (ordered or (len(tb) < 2 and len(ta) < 2))
        )
        off_tick += bool((rb | ra) & Violation.OFF_TICK)
        bad_price += bool((rb | ra) & Violation.BAD_PRICE)
        if snap:
            mb.clear()
            ma.clear()
        bad_qty = False
        for m, side in ((mb, tb), (ma, ta)):
            for t, qty in side:
                if qty > 0:
                    m[t] = qty
                elif qty == 0 and not snap:
                    m.pop(t, None)
                else:  # negative, or zero inside a snapshot: refused
                    bad_qty = True
        # the top as the update leaves it: read through the recorded update, or after it
        fallbacks = book.merge_fallbacks
        nb, na = book.top(n, px, q, apx, aq)
        assert list(zip(px[:nb], q[:nb], strict=True)) == sorted(mb.items(), reverse=True)[:n]
        assert list(zip(apx[:na], aq[:na], strict=True)) == sorted(ma.items())[:n]
        if recorded:
            if book.merge_fallbacks == fallbacks:  # served by the merge: still not applied
                assert book.pending
                flags = book.flush()
            assert not book.pending
        assert book.levels() == (sorted(mb.items(), reverse=True), sorted(ma.items()))
        book.check_consistency()
        bb, ba = (max(mb) if mb else 0), (min(ma) if ma else 0)
        assert (book.best_bid(), book.best_ask()) == (bb, ba)
        crossed = bool(mb and ma and bb >= ba)
        assert bool(book.state & (Violation.CROSSED | Violation.LOCKED)) == crossed
        if not recorded or book.merge_fallbacks == fallbacks:  # flags not lost to a fallback
            want = rb | ra | (Violation.BAD_QTY if bad_qty else 0)
            if crossed:
                want |= Violation.LOCKED if bb == ba else Violation.CROSSED
            assert flags == want
        v = book.violations()
        assert (v["OFF_TICK"], v["BAD_PRICE"]) == (off_tick, bad_price)  # each counted once


def test_tick_levels_converts_and_reports_what_it_drops() -> None:
    levels, flags = tick_levels(
        ((100, 5), (103, 1), (0, 2), (95, 0), (-5, 3), (90, -1), (7, 4), (85, 7)), 5
    )
    # good levels kept in their order, quantities untouched (their rules are the book's)
    assert levels == ((20, 5), (19, 0), (18, -1), (17, 7))
    assert flags == Violation.OFF_TICK | Violation.BAD_PRICE
    assert tick_levels(((100, 5), (95, 1)), 5) == (((20, 5), (19, 1)), 0)
    assert tick_levels(((95, 1), (100, 5)), 5) == (((19, 1), (20, 5)), 0)  # order kept
    assert tick_levels((), 5) == ((), 0)
    assert tick_levels(((102, 7),), 5) == ((), Violation.OFF_TICK)  # not rounded onto the grid
    assert tick_levels(((0, 5),), 5) == ((), Violation.BAD_PRICE)
    assert tick_levels(((-5, 5),), 5) == ((), Violation.BAD_PRICE)
    assert tick_levels(((-3, 5),), 5) == ((), Violation.BAD_PRICE)  # non-positive wins
    assert tick_levels(((1, 1), (12_345, 2)), 1) == (((1, 1), (12_345, 2)), 0)


def test_each_invariant_is_an_event_never_a_crash_or_a_fix() -> None:
    b = L2Book(INST)
    assert b.apply(BookUpdate(1, 0, 0, ((20, 5),), ((22, 5),), snapshot=True)) == 0
    assert b.sane
    # locked, then crossed: reported, kept in state, and cleared once the book is sane again
    assert b.apply(BookUpdate(1, 0, 0, ((22, 1),), ())) == Violation.LOCKED
    assert b.state == Violation.LOCKED and not b.sane
    assert b.apply(BookUpdate(1, 0, 0, ((23, 1),), ())) == Violation.CROSSED
    assert b.apply(BookUpdate(1, 0, 0, ((23, 0), (22, 0)), ())) == 0
    assert b.sane
    # off the tick grid, negative quantity, zero-size level in a snapshot, bad price: refused
    # (prices are checked by the producer's `tick_levels`, which drops the level and reports
    # it in `rejects`; the book returns and counts those bits as its own)
    levels, rejects = tick_levels(((102, 7),), INST.tick)
    assert (levels, rejects) == ((), Violation.OFF_TICK)
    assert b.apply(BookUpdate(1, 0, 0, levels, (), rejects=rejects)) == Violation.OFF_TICK
    assert b.apply(BookUpdate(1, 0, 0, ((19, -1),), ())) == Violation.BAD_QTY
    levels, rejects = tick_levels(((0, 5),), INST.tick)
    assert (levels, rejects) == ((), Violation.BAD_PRICE)
    assert b.apply(BookUpdate(1, 0, 0, levels, (), rejects=rejects)) == Violation.BAD_PRICE
    assert b.bids == {20: 5}  # nothing was applied, nothing rounded onto the grid
    assert b.sane  # refused levels are events, not a persistent state
    # good and bad levels in one update: the good ones are applied, the bad ones reported
    bids, rb = tick_levels(((95, 4), (93, 1), (-5, 2)), INST.tick)
    asks, ra = tick_levels(((115, 3), (0, 1)), INST.tick)
    assert (bids, rb) == (((19, 4),), Violation.OFF_TICK | Violation.BAD_PRICE)
    assert (asks, ra) == (((23, 3),), Violation.BAD_PRICE)
    flags = b.apply(BookUpdate(1, 0, 0, bids, asks, rejects=rb | ra))
    assert flags == Violation.OFF_TICK | Violation.BAD_PRICE
    assert b.bids == {20: 5, 19: 4} and b.asks == {22: 5, 23: 3} and b.sane
    flags = b.apply(BookUpdate(1, 0, 0, ((20, 5), (19, 0)), ((22, 5),), snapshot=True))
    assert flags == Violation.BAD_QTY and 19 not in b.bids
    # a sequence gap holds until resync
    b.mark_gap()
    assert b.state & Violation.SEQUENCE_GAP
    b.apply(BookUpdate(1, 0, 0, ((20, 6),), ()))
    assert b.state & Violation.SEQUENCE_GAP
    b.mark_resync()
    assert b.sane
    v = b.violations()
    assert (
        v["LOCKED"],
        v["CROSSED"],
        v["OFF_TICK"],
        v["BAD_QTY"],
        v["BAD_PRICE"],
        v["SEQUENCE_GAP"],
    ) == (1, 1, 2, 2, 2, 1)


def test_lazy_book_reads_the_top_through_a_recorded_update() -> None:
    b = L2Book(INST)
    b.lazy = True
    b.apply(
        BookUpdate(1, 0, 0, ((20, 1), (19, 1), (18, 1), (17, 1)), ((21, 1), (26, 1)), snapshot=True)
    )
    assert not b.pending and len(b.bids) == 4  # snapshots are applied at once
    px, q, apx, aq = [0] * 3, [0] * 3, [0] * 3, [0] * 3
    # the best bid goes, a new best arrives above it, one level changes, the asks move
    up = BookUpdate(1, 0, 0, ((22, 5), (20, 0), (18, 9)), ((21, 0), (23, 2), (24, 1)), ordered=True)
    assert b.apply(up) == 0 and b.pending and b.bids[20] == 1  # recorded, not applied
    assert b.top(3, px, q, apx, aq) == (3, 3)
    assert (px, q, apx, aq) == ([22, 19, 18], [5, 1, 9], [23, 24, 26], [2, 1, 1])
    assert b.pending and b.merged_reads == 2 and b.merge_fallbacks == 0
    assert b.flush() == 0 and not b.pending  # now applied: the same top, from the dicts
    assert b.levels(3) == ([(22, 5), (19, 1), (18, 9)], [(23, 2), (24, 1), (26, 1)])
    # a refused level (negative quantity) leaves the old one in the merged read too
    b.apply(BookUpdate(1, 0, 0, ((22, -3),), ()))
    assert b.pending and b.top(1, px, q, apx, aq) == (1, 1) and (px[0], q[0]) == (22, 5)
    assert b.flush() == Violation.BAD_QTY and b.bids[22] == 5
    # every other read applies a recorded update first
    b.apply(BookUpdate(1, 0, 0, ((25, 1),), ()))
    assert b.pending and b.best_bid() == 25 and not b.pending
    b.apply(BookUpdate(1, 0, 0, (), ((21, 1),)))
    b.apply(BookUpdate(1, 0, 0, (), ((30, 1),)))  # the next apply applies the previous first
    assert b.asks[21] == 1 and b.state == Violation.CROSSED and b.pending  # bid 25 >= ask 21
    assert not b.sane and not b.pending and b.asks[30] == 1  # `sane` applied the pending one
    # unordered updates are applied at once: a merge would need them best first
    b.apply(BookUpdate(1, 0, 0, ((10, 1), (26, 1)), ()))
    assert not b.pending and b.bids[26] == 1
    # a side thinner than the read: the walk saw every book and update level, no fallback
    b.apply(BookUpdate(1, 0, 0, tuple((t, 0) for t in (26, 25, 22, 19, 18, 17)), (), ordered=True))
    assert b.top(3, px, q, apx, aq)[0] == 1 and (px[0], q[0]) == (10, 1)
    assert b.pending and b.merge_fallbacks == 0
    b.check_consistency()
    # an update that empties the top beyond the walk's reach: read after applying it
    c = L2Book(INST)
    c.lazy = True
    c.apply(BookUpdate(1, 0, 0, ((500, 1), (499, 1), (100, 2)), ((501, 1),), snapshot=True))
    c.apply(BookUpdate(1, 0, 0, ((500, 0), (499, 0)), (), ordered=True))
    assert c.top(1, px, q, apx, aq) == (1, 1) and (px[0], q[0]) == (100, 2)
    assert c.merge_fallbacks == 1 and not c.pending
    c.check_consistency()


def test_sparse_book_top_falls_back_to_a_heap_scan() -> None:
    b = L2Book(INST)
    b.apply(
        BookUpdate(
            1,
            0,
            0,
            tuple((10_000 - 500 * i, 1) for i in range(10)),
            tuple((10_001 + 700 * i, 1) for i in range(10)),
            snapshot=True,
        )
    )
    px, q, apx, aq = [0] * 4, [0] * 4, [0] * 4, [0] * 4
    assert b.top(4, px, q, apx, aq) == (4, 4)
    assert px == [10_000, 9_500, 9_000, 8_500] and apx == [10_001, 10_701, 11_401, 12_101]
    assert b.bid_at(3) == (8_500, 1)
    with pytest.raises(IndexError):
        b.ask_at(10)
    b.apply(BookUpdate(1, 0, 0, ((10_000, 0),), ()))  # best bid removed: next is 500 ticks away
    assert b.best_bid() == 9_500
    b.check_consistency()


def test_parse_scaled_is_exact_and_strict() -> None:
    assert parse_scaled("123.45", 2) == 12345
    assert parse_scaled("-0.5", 2) == -50
    assert parse_scaled("7", 3) == 7000
    assert parse_scaled("1.2300", 2) == 123  # trailing zeros are fine
    for bad in ("1.234", "abc", "", ".", "1e5", "٣", "1.2.3"):
        with pytest.raises(ValueError):
            parse_scaled(bad, 2)
    assert format_scaled(-12345, 2) == "-123.45" and format_scaled(7, 0) == "7"
    assert [nse_equity_tick(p * 100) for p in (100, 500, 2_450, 7_000, 15_000, 30_000)] == [
        1,
        5,
        10,
        50,
        100,
        500,
    ]


KITE_CSV = """instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange
408065,1594,INFY,INFOSYS,0,,0,0.05,1,EQ,NSE,NSE
13238786,51714,NIFTY26DECFUT,NIFTY,0,2026-12-29,0,0.1,65,FUT,NFO-FUT,NFO
13239810,51718,NIFTY26DEC24000CE,NIFTY,0,2026-12-29,24000,0.05,65,CE,NFO-OPT,NFO
256265,1001,NIFTY 50,NIFTY 50,0,,0,0,0,EQ,INDICES,NSE
1234,99,USDINR26DECFUT,USDINR,0,2026-12-29,0,0.0025,1,FUT,CDS-FUT,CDS
"""


def test_instrument_master_from_kite_csv_and_config() -> None:
    m = InstrumentMaster.from_kite_csv(KITE_CSV, freeze={"NIFTY": 1800})
    infy = m.by_symbol("NSE", "INFY")
    assert (infy.segment, infy.tick, infy.lot, infy.price_decimals) == (Segment.NSE_EQ, 5, 1, 2)
    fut = m.by_token(13238786)
    assert (fut.segment, fut.tick, fut.lot, fut.freeze_qty) == (Segment.NFO_FUT, 10, 65, 1800)
    opt = m.by_symbol("NFO", "NIFTY26DEC24000CE")
    assert (opt.segment, opt.strike, opt.option_type) == (Segment.NFO_OPT, 2_400_000, "CE")
    assert m.by_token(256265).segment is Segment.INDEX
    assert m.by_token(1234).tick == 25 and m.by_token(1234).price_decimals == 4
    with pytest.raises(KeyError, match="unknown instrument"):
        m.by_token(1)
    with pytest.raises(InstrumentError, match="lacks columns"):
        InstrumentMaster.from_kite_csv("a,b\n1,2\n")
    with pytest.raises(InstrumentError, match="line 2"):
        InstrumentMaster.from_kite_csv(KITE_CSV.replace("0.05,1,EQ,NSE,NSE", "x,1,EQ,NSE,NSE"))
    cfg = InstrumentMaster.from_config(
        [
            {
                "token": 5,
                "symbol": "RELIANCE",
                "tick": "0.10",
                "lot": "1",
                "band_low": "2200",
                "band_high": "2700",
            }
        ]
    )
    rel = cfg.by_token(5)
    assert (rel.tick, rel.band_low, rel.band_high) == (10, 220_000, 270_000)
    with pytest.raises(InstrumentError, match="missing key"):
        InstrumentMaster.from_config([{"symbol": "X", "tick": "0.05"}])
    with pytest.raises(InstrumentError, match="tick must be > 0"):
        InstrumentMaster.from_config([{"token": 1, "symbol": "X", "tick": "0"}])
    with pytest.raises(InstrumentError, match="freeze quantity"):
        Instrument(1, "X", "NFO", Segment.NFO_FUT, 2, 5, lot=65, freeze_qty=10)


def test_lazy_walk_merges_an_update_that_rebuilds_the_top() -> None:
    """A sweep: the update deletes the whole top and lists replacements below, the walk meets
    update ticks and book ticks interleaved; the result equals applying it first."""
    eager, lazy = L2Book(INST), L2Book(INST)
    lazy.lazy = True
    snap = BookUpdate(
        1,
        0,
        0,
        tuple((100 - i, 10 + i) for i in range(0, 40, 2)),
        tuple((101 + i, 10 + i) for i in range(0, 40, 3)),
        snapshot=True,
    )
    sweep = BookUpdate(
        1,
        0,
        0,
        tuple((t, 0 if t % 2 == 0 else 7) for t in range(100, 60, -1)),
        ((101, 0), (102, 4), (104, 0), (105, 5)),
        ordered=True,
    )
    px, q, apx, aq = ([0] * 10 for _ in range(4))
    for b in (eager, lazy):
        b.apply(snap)
        b.apply(sweep)
    assert lazy.pending and not eager.pending
    got = lazy.top(10, px, q, apx, aq), list(px), list(q), list(apx), list(aq)
    assert lazy.pending and lazy.merge_fallbacks == 0
    assert got == (eager.top(10, px, q, apx, aq), px, q, apx, aq)
    lazy.flush()
    assert lazy.levels() == eager.levels()
    lazy.check_consistency()
