"""Positions and P&L per instrument, from fills, in exact integers.

Why average cost, not FIFO: the two differ only in how a partial close splits P&L between
realised and unrealised; their total (realised + unrealised) is the same at every instant and
their realised P&L is the same once the position is flat, which an intraday engine is by the
close. Average cost is what Kite's positions report (`average_price`, `m2m`), so the engine's
numbers reconcile with the broker's; it is O(1) per fill with no lot queue to allocate and
walk, where FIFO keeps one entry per opening fill.

Exactness: a position keeps its cost `basis` (the signed sum of price x qty of the open
quantity) instead of an average price, so unrealised = mark x qty - basis is exact. A partial
close releases `basis * closed / |qty|` of it, truncated to an int: the remainder (less than
one price unit x qty unit per close) stays in the basis and is released by the close that
empties the position. So realised + unrealised always equals the cash-flow P&L exactly
(-sum of signed qty x price, plus qty x mark), and realised alone is exact whenever flat.

Units: prices in the instrument's price units (paise for NSE), quantities in units (shares or
contracts already multiplied by the lot), so price x qty is paise and P&L is paise. Costs
(STT, charges, brokerage) come with each fill as `cost_paise`, computed by `vajra.trading.costs`;
they are kept apart from the trading P&L (`net` subtracts them).

Ownership: a `Portfolio` and its `Position`s are owned by the Execution thread, which applies
the fills the `OrderTracker` reports; others read what Execution publishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from vajra.market.events import Side


@dataclass(slots=True, eq=False)
class Position:
    """One instrument's net position. `qty` > 0 long, < 0 short; `basis` has the sign of
    `qty` (prices are positive) and is 0 when flat."""

    token: int
    qty: int = 0
    basis: int = 0  # signed cost of the open quantity: qty x average cost, exactly
    realised: int = 0  # gross of costs
    costs: int = 0
    #: last mark price; set from the first fill until the caller marks it from the market
    mark: int = 0
    fills: int = 0
    buy_qty: int = 0
    sell_qty: int = 0
    buy_value: int = 0  # sum of price x qty bought: turnover, for costs and reconciliation
    sell_value: int = 0

    def fill(self, side: Side, price: int, qty: int, cost_paise: int = 0) -> int:
        """Apply one fill; returns the P&L it realised (gross of its cost).

        A fill against the position closes at the average cost first; any quantity beyond
        flat opens a new position at the fill price (a flip through zero).
        """
        if qty <= 0 or price <= 0:
            raise ValueError(f"fill of {qty} at {price}")
        q = self.qty
        d = qty if side == Side.BID else -qty
        self.fills += 1
        self.costs += cost_paise
        if side == Side.BID:
            self.buy_qty += qty
            self.buy_value += price * qty
        else:
            self.sell_qty += qty
            self.sell_value += price * qty
        if self.mark == 0:
            self.mark = price
        if q == 0 or (q > 0) == (d > 0):  # opening or adding: no P&L
            self.qty = q + d
            self.basis += price * d
            return 0
        s = 1 if q > 0 else -1
        held = q * s
        if qty >= held:  # closes all of it, and flips if there is more
            released = self.basis
            pnl = s * held * price - released
            self.qty = q + d
            self.basis = price * self.qty
        else:  # truncated toward zero: the remainder stays in the basis (module docstring)
            released = s * (self.basis * s * qty // held)
            pnl = s * qty * price - released
            self.qty = q + d
            self.basis -= released
        self.realised += pnl
        return pnl

    def unrealised(self, mark: int | None = None) -> int:
        """Open P&L against `mark` (default: the last mark)."""
        return (self.mark if mark is None else mark) * self.qty - self.basis

    def net(self, mark: int | None = None) -> int:
        """Realised + unrealised - costs: what the position has made, after charges."""
        return self.realised + self.unrealised(mark) - self.costs

    @property
    def avg_price(self) -> float:
        """For display only: the exact average cost is `basis / qty`."""
        return self.basis / self.qty if self.qty else 0.0


class Portfolio:
    """Positions by instrument token, with running totals of realised P&L and costs (O(1) to
    read: Sentinel's loss limit reads them on every fill)."""

    __slots__ = ("_positions", "costs", "realised")

    def __init__(self) -> None:
        self._positions: dict[int, Position] = {}
        self.realised = 0
        self.costs = 0

    def fill(self, token: int, side: Side, price: int, qty: int, cost_paise: int = 0) -> int:
        """Apply a fill (from `Outcome.fill_qty`/`fill_price` and the order's token and side);
        returns the P&L it realised."""
        p = self._positions.get(token)
        if p is None:
            p = self._positions[token] = Position(token)
        pnl = p.fill(side, price, qty, cost_paise)
        self.realised += pnl
        self.costs += cost_paise
        return pnl

    def mark(self, token: int, price: int) -> None:
        """Mark a position to the market (LTP or mid). Tokens without a position are not
        recorded: a position opened later is marked at its first fill until the next mark."""
        p = self._positions.get(token)
        if p is not None:
            p.mark = price

    def get(self, token: int) -> Position | None:
        return self._positions.get(token)

    def __iter__(self) -> Iterator[Position]:
        return iter(self._positions.values())

    def __len__(self) -> int:
        return len(self._positions)

    def unrealised(self) -> int:
        return sum(p.mark * p.qty - p.basis for p in self._positions.values())

    def net(self) -> int:
        """Realised + unrealised - costs over every instrument, at the last marks."""
        return self.realised + self.unrealised() - self.costs

    def exposure(self) -> int:
        """Gross exposure at the last marks: sum of |qty| x mark."""
        return sum(abs(p.qty) * p.mark for p in self._positions.values())
