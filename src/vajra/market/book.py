"""L2 price-level order book in integer ticks, with its invariants checked on every update.

Why this shape: feeds give absolute quantities per price level (Binance diffs, Kite depth, a
LOBSTER L3 stream aggregated to levels), and signals read the top few levels on every event.
So each side is a dict tick -> quantity (O(1) updates) plus a sorted list of prices (bids stored
negated, so index 0 is the best level on both sides) kept with `bisect`: inserting a new level
is a memmove of a few hundred pointers at full Binance depth, reading the top N is indexing.

Invariants (each a `Violation` bit): a crossed or locked book, a negative quantity or a
zero-size level in a snapshot, a non-positive price, a price off the tick grid, a feed sequence
gap (`mark_gap`), and staleness (judged by Sonar from `last_recv_ns`). A violation is an event:
it is counted per kind, returned to the caller, kept in `state` while it persists (crossed,
locked, gap), and it closes Sonar's gate. It never raises and is never silently "fixed": a level
that breaks the grid or the quantity rules is not applied, and the book says so.
"""

from __future__ import annotations

import enum
from bisect import bisect_left, insort

from vajra.market.events import BookUpdate
from vajra.market.instruments import Instrument


class Violation(enum.IntFlag):
    CROSSED = 1
    LOCKED = 2
    BAD_QTY = 4  # negative quantity, or a zero-size level inside a snapshot
    OFF_TICK = 8
    SEQUENCE_GAP = 16
    STALE = 32
    BAD_PRICE = 64  # zero or negative price


#: Violations that describe the book's current state rather than one rejected level.
PERSISTENT = Violation.CROSSED | Violation.LOCKED | Violation.SEQUENCE_GAP
_KINDS = tuple(Violation)
# Plain ints for the hot path: IntFlag arithmetic runs as Python-level enum code.
_CROSSED, _LOCKED, _GAP = int(Violation.CROSSED), int(Violation.LOCKED), int(Violation.SEQUENCE_GAP)
_CROSS_OR_LOCK = _CROSSED | _LOCKED
_BAD_PRICE, _OFF_TICK, _BAD_QTY = (
    int(Violation.BAD_PRICE),
    int(Violation.OFF_TICK),
    int(Violation.BAD_QTY),
)


def _reject(px: int, q: int, tick: int) -> int:
    """Why a level was not applied (the rare path, kept out of the loop)."""
    if px <= 0:
        return _BAD_PRICE
    if px % tick:
        return _OFF_TICK
    return _BAD_QTY  # negative, or zero inside a snapshot


class L2Book:
    """One instrument's book. Owned by one thread (the feed/Oracle thread); readers elsewhere
    see it only through the shared-memory top-of-book block (`vajra.market.top`)."""

    __slots__ = (
        "_apx",
        "_bpx",
        "asks",
        "bids",
        "counts",
        "instrument",
        "last_exch_ns",
        "last_id",
        "last_recv_ns",
        "state",
        "tick",
        "updates",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.tick = instrument.tick
        self.bids: dict[int, int] = {}  # tick -> qty
        self.asks: dict[int, int] = {}
        self._bpx: list[int] = []  # negated bid ticks, ascending: [0] is the best bid
        self._apx: list[int] = []  # ask ticks, ascending: [0] is the best ask
        #: violations seen, per kind, in `Violation` order
        self.counts = [0] * len(_KINDS)
        #: persistent violations in force now (crossed, locked, gap); 0 when sane
        self.state = 0
        self.updates = 0
        self.last_recv_ns = 0
        self.last_exch_ns = 0
        self.last_id = 0

    # -- updates ------------------------------------------------------------------------------

    def apply(self, u: BookUpdate) -> int:
        """Apply one update; returns the violations it raised (0 when clean).

        Cost: ~1 µs per changed level on 3.13t, plus a bisect and a memmove for a new or
        removed level; the crossed check reads two list heads.
        """
        snap = u.snapshot
        if snap:
            self.bids.clear()
            self.asks.clear()
            self._bpx.clear()
            self._apx.clear()
        flags = 0
        tick = self.tick
        book, prices = self.bids, self._bpx
        for px, q in u.bids:  # cost: ~10 bytecodes per level on the common path
            t = px // tick
            if q > 0 and px > 0 and t * tick == px:
                if t in book:
                    book[t] = q
                else:
                    book[t] = q
                    insort(prices, -t)
            elif q == 0 and not snap and px > 0 and t * tick == px:
                if book.pop(t, 0):
                    del prices[bisect_left(prices, -t)]
            else:
                flags |= _reject(px, q, tick)
        book, prices = self.asks, self._apx
        for px, q in u.asks:
            t = px // tick
            if q > 0 and px > 0 and t * tick == px:
                if t in book:
                    book[t] = q
                else:
                    book[t] = q
                    insort(prices, t)
            elif q == 0 and not snap and px > 0 and t * tick == px:
                if book.pop(t, 0):
                    del prices[bisect_left(prices, t)]
            else:
                flags |= _reject(px, q, tick)
        if self._bpx and self._apx:
            bb, ba = -self._bpx[0], self._apx[0]
            if bb >= ba:
                flags |= _LOCKED if bb == ba else _CROSSED
        self.state = (self.state & _GAP) | (flags & _CROSS_OR_LOCK)
        if flags:
            self._count(flags)
        self.updates += 1
        self.last_recv_ns = u.recv_ns
        self.last_exch_ns = u.exch_ns
        if u.last_id:
            self.last_id = u.last_id
        return flags

    def set_level(self, is_bid: bool, price: int, qty: int, recv_ns: int = 0) -> int:
        """Set one level's absolute quantity (L3 reconstructions use this). Same rules as
        `apply`, without building an update object."""
        return self.apply(
            BookUpdate(
                0,
                recv_ns or self.last_recv_ns,
                self.last_exch_ns,
                ((price, qty),) if is_bid else (),
                () if is_bid else ((price, qty),),
            )
        )

    def _count(self, flags: int) -> None:
        for i in range(len(_KINDS)):
            if flags >> i & 1:
                self.counts[i] += 1

    def mark_gap(self) -> None:
        """The feed lost continuity: the book is unreliable until `mark_resync()`."""
        self.state |= _GAP
        self._count(_GAP)

    def mark_unsynced(self) -> None:
        """Not yet synchronised (no snapshot bridged yet): the gate stays closed, but nothing
        was lost, so no gap is counted."""
        self.state |= _GAP

    def mark_resync(self) -> None:
        self.state &= ~_GAP

    def mark_stale(self) -> None:
        """Count a staleness episode (Sonar decides when the feed is stale)."""
        self._count(int(Violation.STALE))

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._bpx.clear()
        self._apx.clear()

    # -- reads --------------------------------------------------------------------------------

    @property
    def sane(self) -> bool:
        return self.state == 0

    def best_bid(self) -> int:
        """Best bid in ticks, or 0 when the side is empty."""
        return -self._bpx[0] if self._bpx else 0

    def best_ask(self) -> int:
        return self._apx[0] if self._apx else 0

    def bid_depth(self) -> int:
        return len(self._bpx)

    def ask_depth(self) -> int:
        return len(self._apx)

    def bid_at(self, i: int) -> tuple[int, int]:
        """(ticks, qty) of the i-th best bid level."""
        t = -self._bpx[i]
        return t, self.bids[t]

    def ask_at(self, i: int) -> tuple[int, int]:
        t = self._apx[i]
        return t, self.asks[t]

    def top(
        self, n: int, bpx: list[int], bq: list[int], apx: list[int], aq: list[int]
    ) -> tuple[int, int]:
        """Copy up to n levels per side into caller-owned lists (no allocation); returns the
        number of bid and ask levels copied. Prices in ticks."""
        bp, ap, bids, asks = self._bpx, self._apx, self.bids, self.asks
        nb = n if n < len(bp) else len(bp)
        na = n if n < len(ap) else len(ap)
        for i in range(nb):
            t = -bp[i]
            bpx[i] = t
            bq[i] = bids[t]
        for i in range(na):
            t = ap[i]
            apx[i] = t
            aq[i] = asks[t]
        return nb, na

    def levels(self, n: int = 0) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids, asks) as (ticks, qty) lists, best first; all levels when n == 0. Allocates:
        for tests and tools, not the hot path."""
        bp = self._bpx if not n else self._bpx[:n]
        ap = self._apx if not n else self._apx[:n]
        return [(-p, self.bids[-p]) for p in bp], [(p, self.asks[p]) for p in ap]

    def violations(self) -> dict[str, int]:
        return {k.name or str(int(k)): c for k, c in zip(_KINDS, self.counts, strict=True)}

    def check_consistency(self) -> None:
        """Assert the internal indexes agree (tests and debugging; O(depth))."""
        assert sorted(self._bpx) == self._bpx and sorted(self._apx) == self._apx
        assert {-p for p in self._bpx} == set(self.bids)
        assert set(self._apx) == set(self.asks)
        assert all(q > 0 for q in self.bids.values()) and all(q > 0 for q in self.asks.values())
