"""Market events: what every feed parser emits and every consumer (book, Oracle, Sonar) reads.

Parsers are sans-I/O (bytes or lines in, these events out) and validate at the edge, so
everything past them handles integers only: prices in the instrument's integer price units
(paise for NSE, cents for Binance BTCUSDT, 1/10000 USD for LOBSTER), quantities in its integer
quantity units (shares, contracts, or 0.001 BTC), except book levels: a `BookUpdate` carries
tick indexes (price // tick), converted by the producer (`vajra.market.book.tick_levels`). The
feed thread does that per-level work, off the signal path, and the book's loop stays short.

Every event carries two clocks:
- `recv_ns`: local `time.perf_counter_ns()` when the bytes arrived (replays map the recorded
  receive time onto it), the start of every latency measurement in the engine;
- `exch_ns`: the exchange's own timestamp in ns since the epoch (0 when the venue sends none).
The two are on different clocks: never subtract one from the other without an offset estimate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Side(enum.IntEnum):
    """Book side, and trade aggressor side (the side that crossed the spread)."""

    BID = 1
    ASK = -1


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """Absolute quantities at price levels: `qty == 0` deletes the level.

    Levels are `(tick, qty)`: the price as a tick index of the instrument's grid (price units //
    tick), never a float. The producer converted them and dropped the levels that could not be
    converted (a price off the grid, a non-positive price), reporting those in `rejects`
    (`vajra.market.book.Violation` bits) so the book counts them as its own violations: a bad
    level is neither applied nor hidden. Quantity rules (negative, zero inside a snapshot) are
    the book's to check.

    Levels are listed best first (bids descending, asks ascending) when the venue's order
    allows it: the book then applies the levels nearest the touch before the deep ones.
    `snapshot=True` replaces the whole book (a REST snapshot, a Kite full-mode depth, the first
    LOBSTER row); otherwise the levels listed change and all others stay. `first_id`/`last_id`
    are the venue's update ids (Binance `U`/`u`; 0 when the venue has none) and `prev_id` the
    venue's claim about the previous update (Binance futures `pu`; -1 when not provided).
    """

    token: int
    recv_ns: int
    exch_ns: int
    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]
    snapshot: bool = False
    first_id: int = 0
    last_id: int = 0
    prev_id: int = -1
    rejects: int = 0
    #: the producer guarantees each side strictly best first (bid ticks strictly descending,
    #: ask ticks strictly ascending; so no tick twice), which lets the book merge the update
    #: into a top-of-book read before applying it (`L2Book.lazy`)
    ordered: bool = False


@dataclass(frozen=True, slots=True)
class Trade:
    token: int
    recv_ns: int
    exch_ns: int
    price: int
    qty: int
    aggressor: Side
    trade_id: int = 0


@dataclass(frozen=True, slots=True)
class Quote:
    """Best bid and offer as the venue states it (Binance bookTicker, Kite quote/full)."""

    token: int
    recv_ns: int
    exch_ns: int
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int
    update_id: int = 0


@dataclass(frozen=True, slots=True)
class SequenceGap:
    """The feed lost continuity: the book is unreliable until `Resynced` follows."""

    token: int
    recv_ns: int
    expected: int
    got: int
    reason: str


@dataclass(frozen=True, slots=True)
class Resynced:
    token: int
    recv_ns: int
    at_id: int


@dataclass(frozen=True, slots=True)
class Malformed:
    """Input the parser could not use. Counted and skipped; never raised out of a parser."""

    recv_ns: int
    reason: str
    size: int = 0


MarketEvent = BookUpdate | Trade | Quote | SequenceGap | Resynced | Malformed
