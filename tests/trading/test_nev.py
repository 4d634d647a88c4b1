"""NEV's parts against hand computation, and the trade-offs it must make."""

from __future__ import annotations

import math

import pytest

from vajra.trading.nev import NevConfig, NevParts, evaluate

TICK = 10  # paise


def flat_cost(rate: float, stt_share: float = 0.8):  # type: ignore[no-untyped-def]
    def cost(price: int, qty: int) -> tuple[float, float]:
        total = rate * price * qty
        return total, total * stt_share

    return cost


def test_parts_by_hand() -> None:
    out = NevParts()
    cfg = NevConfig(adverse_spread_frac=0.25, horizon_ns=200_000_000)
    # bid 24_500 ticks, ask 24_501: mid2 = 49_001; buy at the bid, 250 units, 500 ahead
    v = evaluate(
        out,
        cfg,
        flat_cost(0.0004),
        buy=True,
        price=24_500 * TICK,
        qty=250,
        mid2=49_001,
        tick=TICK,
        edge_ticks=0.3,
        strength=0.5,
        spread_ticks=1,
        ahead=500,
        rate=10_000.0,
        marketable=False,
    )
    fair = (49_001 / 2 + 0.3) * TICK
    edge = (fair - 24_500 * TICK) * 250
    costs = 0.0004 * 24_500 * TICK * 250
    adverse = 0.25 * 1 * TICK * 250 * (1 - 0.5)
    p = math.exp(-500 / (10_000 * 0.2))
    assert out.edge == pytest.approx(edge) and out.costs == pytest.approx(costs)
    assert out.adverse == pytest.approx(adverse) and out.p_fill == pytest.approx(p)
    assert v == out.value == pytest.approx(p * (edge - costs - adverse))
    assert out.stt == pytest.approx(0.8 * costs)


def test_trade_offs() -> None:
    out = NevParts()
    cfg = NevConfig()
    common = dict(qty=250, mid2=49_001, tick=TICK, strength=0.9, spread_ticks=1, rate=5_000.0)
    free = flat_cost(0.0)
    # with no costs, a strong buy signal makes joining the bid worth it
    join = evaluate(
        out,
        cfg,
        free,
        buy=True,
        price=245_000,
        edge_ticks=0.4,
        ahead=2_000,
        marketable=False,
        **common,  # type: ignore[arg-type]
    )
    assert join > 0 and 0 < out.p_fill < 1
    # a sell against the same signal is worth less than nothing
    assert (
        evaluate(
            out,
            cfg,
            free,
            buy=False,
            price=245_010,
            edge_ticks=0.4,
            ahead=0,
            marketable=False,
            **common,  # type: ignore[arg-type]
        )
        < 0
    )
    # an empty queue fills for sure: P = 1
    evaluate(
        out,
        cfg,
        free,
        buy=True,
        price=245_000,
        edge_ticks=0.4,
        ahead=0,
        marketable=False,
        **common,  # type: ignore[arg-type]
    )
    assert out.p_fill == 1.0
    # futures-like costs (~1.5 bp a side): the same order no longer clears zero
    assert (
        evaluate(
            out,
            cfg,
            flat_cost(0.0003),
            buy=True,
            price=245_000,
            edge_ticks=0.4,
            ahead=2_000,
            marketable=False,
            **common,  # type: ignore[arg-type]
        )
        < 0
    )
    # crossing pays half a spread: only a large edge covers it
    cross_small = evaluate(
        out,
        cfg,
        free,
        buy=True,
        price=245_010,
        edge_ticks=0.2,
        ahead=0,
        marketable=True,
        **common,  # type: ignore[arg-type]
    )
    cross_big = evaluate(
        out,
        cfg,
        free,
        buy=True,
        price=245_010,
        edge_ticks=3.0,
        ahead=0,
        marketable=True,
        **common,  # type: ignore[arg-type]
    )
    assert cross_small < 0 < cross_big and out.p_fill == 1.0


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="horizon_ns"):
        NevConfig(horizon_ns=0)
