"""Net Expected Value of a candidate order: is it worth sending, after Indian costs?

    NEV = P(fill) x (edge - costs - adverse)          all in paise, for the order's quantity

- edge: what a fill is expected to be worth against where the price is going. The Oracle's
  expected edge `e` (ticks) puts the fair price at mid + e (the microprice-style shift,
  docs/signals.md); a buy at price p then gains (mid + e - p) per unit, a sell (p - mid - e).
  A passive buy at the bid starts half a spread up; crossing the spread starts half a spread
  down and needs e to pay for it.
- costs: the round trip the fill commits us to (this order and the one that closes it), from
  the dated cost model (`vajra.trading.costs`); STT dominates futures, so its share is kept.
- adverse: the expected loss from being filled because the price is about to move through us
  (the informed flow fills passive orders first). Estimated as a fraction of the spread per
  unit, higher when the signal is weak (a strong signal on our side means the flow that fills
  us is less likely to be informed against us).
- P(fill): the volume that trades at our price within the order's life T (the cancel timeout)
  is modelled as exponential with mean `rate x T` (rate: recent traded units per second at the
  touch); we fill if it exceeds the queue ahead of us: P = exp(-ahead / (rate x T)). Improving
  the price by one tick empties the queue ahead (P -> ~1) but gives up a tick of edge: NEV
  decides. A marketable (crossing) order has P = 1.

Costs are paid only on a fill, so they sit inside the bracket. An order goes out only if NEV
clears the configured threshold. Cost per call: ~40 float operations and one `math.exp`; the
result goes into a caller-owned `NevParts` (no allocation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


class RoundTripCost(Protocol):
    """Estimated round-trip cost of `qty` units at `price` (price units): (total, stt), paise."""

    def __call__(self, price: int, qty: int) -> tuple[float, float]: ...


@dataclass(frozen=True, slots=True)
class NevConfig:
    threshold_paise: float = 0.0  # NEV must exceed this for an order to go out
    adverse_spread_frac: float = 0.25  # adverse selection, as a fraction of the spread per unit
    horizon_ns: int = 200_000_000  # the order's expected life: the passive cancel timeout
    min_rate: float = 1e-9  # floor on the trade rate (units/s) so P is defined on a quiet book

    def __post_init__(self) -> None:
        if self.adverse_spread_frac < 0 or self.horizon_ns <= 0 or self.min_rate <= 0:
            raise ValueError("nev: adverse_spread_frac >= 0, horizon_ns > 0, min_rate > 0")


class NevParts:
    """The last evaluation's parts, for the decision and the dashboard (one per Execution)."""

    __slots__ = ("adverse", "costs", "edge", "p_fill", "stt", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.p_fill = 0.0
        self.edge = 0.0
        self.costs = 0.0
        self.stt = 0.0
        self.adverse = 0.0


def evaluate(
    out: NevParts,
    cfg: NevConfig,
    cost: RoundTripCost,
    *,
    buy: bool,
    price: int,
    qty: int,
    mid2: int,
    tick: int,
    edge_ticks: float,
    strength: float,
    spread_ticks: int,
    ahead: int,
    rate: float,
    marketable: bool,
) -> float:
    """Fill `out` for one candidate and return its NEV (paise). `mid2` is bid + ask in ticks
    (twice the mid, an integer); `ahead` the units queued before us at `price`; `rate` the
    recent traded units per second at the touch; `strength` the signal in [-1, 1]."""
    total, stt = cost(price, qty)
    return evaluate_fast(
        out,
        cfg.adverse_spread_frac,
        cfg.horizon_ns * 1e-9 * rate
        if rate * cfg.horizon_ns * 1e-9 > cfg.min_rate
        else cfg.min_rate,
        buy,
        price,
        qty,
        (mid2 * 0.5 + edge_ticks) * tick,
        tick,
        strength,
        spread_ticks,
        ahead,
        marketable,
        total,
        stt,
    )


def evaluate_fast(
    out: NevParts,
    adverse_frac: float,
    m: float,
    buy: bool,
    price: int,
    qty: int,
    fair: float,
    tick: int,
    strength: float,
    spread_ticks: int,
    ahead: int,
    marketable: bool,
    total: float,
    stt: float,
) -> float:
    """`evaluate` for a decision loop: positional arguments (a keyword call costs ~1 µs on
    3.13t), the fair price, the expected traded volume over the horizon `m` (> 0) and the
    round-trip cost computed once per decision (it moves by < 0.01% between adjacent ticks)."""
    per_unit = (fair - price) if buy else (price - fair)
    edge = per_unit * qty
    aligned = strength if buy else -strength
    if aligned < 0.0:
        aligned = 0.0
    adverse = adverse_frac * spread_ticks * tick * qty * (1.0 - aligned)
    p = 1.0 if marketable or ahead <= 0 else math.exp(-ahead / m)
    value = p * (edge - total - adverse)
    out.value = value
    out.p_fill = p
    out.edge = edge
    out.costs = total
    out.stt = stt
    out.adverse = adverse
    return value
