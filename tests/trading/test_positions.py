"""Positions from fills: hand-computed average-cost P&L (adding, reducing, flipping through
zero, shorts), costs kept apart, and hypothesis runs against an exact rational model and the
cash-flow identity."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.market.events import Side
from vajra.trading.positions import Portfolio, Position

BUY, SELL = Side.BID, Side.ASK
NIFTY, BANK = 256265, 260105


def test_long_round_trip_at_average_cost() -> None:
    p = Position(NIFTY)
    assert p.fill(BUY, 100_00, 10) == 0
    assert p.fill(BUY, 101_00, 30) == 0
    assert (p.qty, p.basis) == (40, 100_00 * 10 + 101_00 * 30)  # avg 100.75
    assert p.avg_price == pytest.approx(100_75)
    assert p.unrealised(102_00) == (102_00 - 100_75) * 40  # 5000 paise
    # sell 20 at 102: realises (102 - 100.75) * 20 = 25.00 rupees
    assert p.fill(SELL, 102_00, 20) == 25_00
    assert (p.qty, p.basis, p.realised) == (20, 100_75 * 20, 25_00)
    assert p.unrealised(99_00) == (99_00 - 100_75) * 20
    assert p.fill(SELL, 99_00, 20) == (99_00 - 100_75) * 20
    assert (p.qty, p.basis, p.realised) == (0, 0, 25_00 - 35_00)
    assert p.unrealised(12345) == 0
    assert (p.buy_qty, p.sell_qty, p.fills) == (40, 40, 4)
    assert (p.buy_value, p.sell_value) == (4_030_00, 4_020_00)
    assert p.realised == p.sell_value - p.buy_value  # flat: realised is the cash flow


def test_short_round_trip() -> None:
    p = Position(NIFTY)
    p.fill(SELL, 250_00, 5)
    p.fill(SELL, 252_00, 5)
    assert (p.qty, p.basis) == (-10, -2_510_00)  # short at 251
    assert p.unrealised(250_00) == 10_00  # the price fell: a short gains
    assert p.fill(BUY, 249_00, 4) == 8_00  # (251 - 249) * 4
    assert p.fill(BUY, 253_00, 6) == -12_00  # (251 - 253) * 6
    assert (p.qty, p.basis, p.realised) == (0, 0, -4_00)


def test_flip_through_zero_opens_the_rest_at_the_fill_price() -> None:
    p = Position(NIFTY)
    p.fill(BUY, 100_00, 3)
    assert p.fill(SELL, 110_00, 5) == 30_00  # closes 3 at +10, opens 2 short at 110
    assert (p.qty, p.basis) == (-2, -220_00)
    assert p.unrealised(105_00) == 10_00
    assert p.fill(BUY, 90_00, 6) == 40_00  # covers 2 at +20, opens 4 long at 90
    assert (p.qty, p.basis, p.realised) == (4, 360_00, 70_00)


def test_partial_close_truncates_and_the_flat_close_settles_exactly() -> None:
    p = Position(NIFTY)
    p.fill(BUY, 100, 1)
    p.fill(BUY, 101, 2)  # basis 302 for 3: avg 100.67, not an integer
    assert p.fill(SELL, 105, 1) == 5  # released 100 (302 // 3), exact would be 4.33
    assert p.basis == 202
    assert p.unrealised(105) + p.realised == 3 * 105 - 302  # the total is exact anyway
    assert p.fill(SELL, 105, 2) == 8
    assert p.realised == 13 == 3 * 105 - 302


def test_costs_accumulate_apart_from_trading_pnl() -> None:
    p = Position(NIFTY)
    p.fill(BUY, 100_00, 10, cost_paise=3_10)
    p.fill(SELL, 101_00, 10, cost_paise=28_40)
    assert (p.realised, p.costs) == (10_00, 31_50)
    assert p.net() == 10_00 - 31_50


def test_mark_defaults_to_the_first_fill_then_follows_the_caller() -> None:
    book = Portfolio()
    book.mark(NIFTY, 1)  # no position: not recorded
    assert book.get(NIFTY) is None
    book.fill(NIFTY, BUY, 100_00, 2)
    pos = book.get(NIFTY)
    assert pos is not None and pos.mark == 100_00 and pos.unrealised() == 0
    book.mark(NIFTY, 103_00)
    assert pos.unrealised() == 6_00 and pos.unrealised(99_00) == -2_00


def test_portfolio_totals() -> None:
    book = Portfolio()
    assert book.fill(NIFTY, BUY, 100_00, 10, 5_00) == 0
    assert book.fill(BANK, SELL, 500_00, 2, 7_00) == 0
    assert book.fill(NIFTY, SELL, 102_00, 4, 6_00) == 8_00
    book.mark(NIFTY, 101_00)
    book.mark(BANK, 490_00)
    assert len(book) == 2 and {p.token for p in book} == {NIFTY, BANK}
    assert (book.realised, book.costs) == (8_00, 18_00)
    assert book.unrealised() == 1_00 * 6 + 10_00 * 2
    assert book.net() == 8_00 + 26_00 - 18_00
    assert book.exposure() == 6 * 101_00 + 2 * 490_00


def test_bad_fills_raise() -> None:
    p = Position(NIFTY)
    with pytest.raises(ValueError):
        p.fill(BUY, 100, 0)
    with pytest.raises(ValueError):
        p.fill(BUY, 0, 1)


fills = st.lists(
    st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 500), st.integers(1, 12)),
    max_size=40,
)


@settings(max_examples=500, deadline=None)
@given(fills, st.integers(1, 500))
def test_against_an_exact_average_cost_model(
    script: list[tuple[Side, int, int]], mark: int
) -> None:
    """An exact (rational) average-cost model: the int position differs from it only by the
    truncations of partial closes, never in the total, and not at all once flat."""
    p = Position(NIFTY)
    qty = 0
    basis = Fraction(0)
    realised = Fraction(0)
    cash = 0
    cuts = 0  # partial closes since the position was last flat
    for side, price, q in script:
        d = q if side == BUY else -q
        got = p.fill(side, price, q, cost_paise=1)
        cash -= d * price
        if qty == 0 or (qty > 0) == (d > 0):
            basis += price * d
            qty += d
            assert got == 0
        else:
            closed = min(q, abs(qty))
            avg = basis / qty
            realised += (price - avg) * closed * (1 if qty > 0 else -1)
            if q < abs(qty):
                basis = avg * (qty + d)
                qty += d
                cuts += 1
            else:
                qty += d
                basis = Fraction(price * qty)
                cuts = 0
        assert p.qty == qty
        assert p.basis == 0 if qty == 0 else (p.basis > 0) == (qty > 0)
        # the total is exact at every step: realised + unrealised is the cash-flow P&L
        assert p.realised + p.unrealised(mark) == cash + qty * mark
        # the split is off by less than one paisa per partial close since flat
        assert abs(p.realised - realised) <= cuts
        if qty == 0:
            assert p.realised == realised == cash
    assert p.costs == p.fills == len(script)
    assert p.net(mark) == cash + qty * mark - len(script)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([NIFTY, BANK]),
            st.sampled_from([BUY, SELL]),
            st.integers(1, 500),
            st.integers(1, 9),
            st.integers(0, 50),
        ),
        max_size=40,
    )
)
def test_portfolio_totals_are_the_sums_of_positions(
    script: list[tuple[int, Side, int, int, int]],
) -> None:
    book = Portfolio()
    realised_sum = 0
    for token, side, price, q, cost in script:
        realised_sum += book.fill(token, side, price, q, cost)
        book.mark(token, price + 1)
    positions = list(book)
    assert book.realised == realised_sum == sum(p.realised for p in positions)
    assert book.costs == sum(p.costs for p in positions) == sum(s[4] for s in script)
    assert book.unrealised() == sum(p.unrealised() for p in positions)
    assert book.net() == sum(p.net() for p in positions)
