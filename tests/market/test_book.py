"""The L2 book against a naive model (hypothesis), its invariants as events, deferred deep
levels, and the instrument master."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.market.book import L2Book, Violation
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

level = st.tuples(st.integers(1, 60).map(lambda t: t * 5), st.integers(0, 9))
update = st.tuples(st.lists(level, max_size=8), st.lists(level, max_size=8), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(update, max_size=25), st.sampled_from([0, 1, 3]))
def test_book_matches_a_naive_model(
    script: list[tuple[list[tuple[int, int]], list[tuple[int, int]], bool]], defer: int
) -> None:
    """Bids 5..300 paise and asks from the same range, so crossing and locking happen often."""
    book = L2Book(INST)
    book.defer_beyond = defer
    mb: dict[int, int] = {}
    ma: dict[int, int] = {}
    for bids, asks, snap in script:
        u = BookUpdate(1, 0, 0, tuple(bids), tuple(asks), snapshot=snap)
        book.apply(u)
        book.flush()
        if snap:
            mb.clear()
            ma.clear()
        for m, side in ((mb, bids), (ma, asks)):
            for px, q in side:
                if q > 0:
                    m[px // 5] = q
                elif not snap:
                    m.pop(px // 5, None)
        assert book.levels() == (sorted(mb.items(), reverse=True), sorted(ma.items()))
        book.check_consistency()
        bb, ba = (max(mb) if mb else 0), (min(ma) if ma else 0)
        assert (book.best_bid(), book.best_ask()) == (bb, ba)
        crossed = bool(mb and ma and bb >= ba)
        assert bool(book.state & (Violation.CROSSED | Violation.LOCKED)) == crossed
        n = 3
        px, q, apx, aq = [0] * n, [0] * n, [0] * n, [0] * n
        nb, na = book.top(n, px, q, apx, aq)
        assert list(zip(px[:nb], q[:nb], strict=True)) == sorted(mb.items(), reverse=True)[:n]
        assert list(zip(apx[:na], aq[:na], strict=True)) == sorted(ma.items())[:n]


def test_each_invariant_is_an_event_never_a_crash_or_a_fix() -> None:
    b = L2Book(INST)
    assert b.apply(BookUpdate(1, 0, 0, ((100, 5),), ((110, 5),), snapshot=True)) == 0
    assert b.sane
    # locked, then crossed: reported, kept in state, and cleared once the book is sane again
    assert b.apply(BookUpdate(1, 0, 0, ((110, 1),), ())) == Violation.LOCKED
    assert b.state == Violation.LOCKED and not b.sane
    assert b.apply(BookUpdate(1, 0, 0, ((115, 1),), ())) == Violation.CROSSED
    assert b.apply(BookUpdate(1, 0, 0, ((115, 0), (110, 0)), ())) == 0
    assert b.sane
    # off the tick grid, negative quantity, zero-size level in a snapshot, bad price: refused
    assert b.apply(BookUpdate(1, 0, 0, ((102, 7),), ())) == Violation.OFF_TICK
    assert b.apply(BookUpdate(1, 0, 0, ((95, -1),), ())) == Violation.BAD_QTY
    assert b.apply(BookUpdate(1, 0, 0, ((0, 5),), ())) == Violation.BAD_PRICE
    assert b.bids == {20: 5}  # nothing was applied, nothing rounded onto the grid
    flags = b.apply(BookUpdate(1, 0, 0, ((100, 5), (95, 0)), ((110, 5),), snapshot=True))
    assert flags == Violation.BAD_QTY and 19 not in b.bids
    # a sequence gap holds until resync
    b.mark_gap()
    assert b.state & Violation.SEQUENCE_GAP
    b.apply(BookUpdate(1, 0, 0, ((100, 6),), ()))
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
    ) == (1, 1, 1, 2, 1, 1)


def test_deferred_levels_and_the_top_window() -> None:
    b = L2Book(INST)
    b.defer_beyond = 2
    b.apply(BookUpdate(1, 0, 0, ((100, 1), (95, 1), (90, 1), (85, 1)), ((105, 1),), snapshot=True))
    assert b.pending and len(b.bids) == 2
    assert not b.flush(top_bid=95 // 5)  # deferred levels are all below the window
    assert len(b.bids) == 4 and not b.pending
    # worst-first listing: the deferred level is the best one -> reported as touching the top
    b.apply(BookUpdate(1, 0, 0, ((80, 1), (75, 1), (100, 7)), ()))
    assert b.bids[20] == 1  # not yet applied
    b.apply(BookUpdate(1, 0, 0, ((70, 1), (65, 1), (100, 3)), ()))  # flushes the previous first
    assert b.bids[20] == 7
    assert b.flush(top_bid=95 // 5)
    assert b.bids[20] == 3
    b.apply(BookUpdate(1, 0, 0, ((60, 1), (55, 1), (50, 1)), ()))
    b.apply(BookUpdate(1, 0, 0, (), ()))  # the next apply flushes what was pending
    assert 10 in b.bids and not b.pending
    b.check_consistency()


def test_sparse_book_top_falls_back_to_a_heap_scan() -> None:
    b = L2Book(INST)
    b.apply(
        BookUpdate(
            1,
            0,
            0,
            tuple((5 * (10_000 - 500 * i), 1) for i in range(10)),
            tuple((5 * (10_001 + 700 * i), 1) for i in range(10)),
            snapshot=True,
        )
    )
    px, q, apx, aq = [0] * 4, [0] * 4, [0] * 4, [0] * 4
    assert b.top(4, px, q, apx, aq) == (4, 4)
    assert px == [10_000, 9_500, 9_000, 8_500] and apx == [10_001, 10_701, 11_401, 12_101]
    assert b.bid_at(3) == (8_500, 1)
    with pytest.raises(IndexError):
        b.ask_at(10)
    b.apply(BookUpdate(1, 0, 0, ((50_000, 0),), ()))  # best bid removed: next is 500 ticks away
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


def test_advance_applies_only_what_reaches_the_window() -> None:
    from vajra.market.book import NO_ASK

    b = L2Book(INST)
    b.defer_beyond = 2
    b.apply(BookUpdate(1, 0, 0, ((100, 1), (95, 1), (90, 1), (85, 1)), ((105, 1),), snapshot=True))
    assert b.pending and sorted(b.bids) == [19, 20]
    assert b.pending_reaches(18, NO_ASK)  # the best deferred bid (tick 18) is in the window
    assert not b.pending_reaches(19, NO_ASK)
    b.advance(18, NO_ASK)
    assert sorted(b.bids) == [18, 19, 20] and b.pending  # tick 17 still waits
    assert not b.pending_reaches(18, NO_ASK)
    b.advance(0, NO_ASK)  # a window of everything: the rest goes in, crossing checked
    assert not b.pending and sorted(b.bids) == [17, 18, 19, 20] and b.sane
    b.check_consistency()
