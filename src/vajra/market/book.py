"""L2 price-level order book in integer ticks, with its invariants checked on every update.

Why this shape: feeds give absolute quantities per price level (Binance diffs, Kite depth, a
LOBSTER L3 stream aggregated to levels) and signals read the top few levels on every event. A
Binance book holds ~5 000 levels a side and a diff touches ~35 of them (p99: ~600), 40% of them
adding or removing a level, mostly far from the touch. So each side is a dict tick -> quantity
(O(1) set and delete, no sorted list to memmove on every new or removed level) plus the best
tick, tracked as levels arrive and rescanned only when the best level itself is removed. The top
N levels are found by walking ticks away from the best (prices are integers on a grid, and books
near the touch are dense), with a C-level `heapq` fallback when the book is sparse.

Lazy mode (`lazy = True`, what the signal path uses): an ordered update is recorded in O(1) and
the top-N walk merges its levels in, so the signal reads the book as the update leaves it
without the update having been applied; the levels are applied after the signal is out
(`flush`). The signal path then costs the ~20 ticks a five-level read walks, whatever the size
of the diff, instead of ~0.15-0.3 µs per changed level (a sweep changes hundreds).

Invariants (each a `Violation` bit): a crossed or locked book, a negative quantity or a
zero-size level in a snapshot, a non-positive price, a price off the tick grid, a feed sequence
gap (`mark_gap`), and staleness (judged by Sonar from `last_recv_ns`). Prices are checked where
they become ticks (`tick_levels`, on the feed thread: a `BookUpdate` carries ticks and the bits
of the levels it dropped in `rejects`); the book counts those bits with its own. A violation
is an event: it is counted per kind, returned to the caller, kept in `state` while it persists
(crossed, locked, gap), and it closes Sonar's gate. It never raises and is never silently
"fixed": a level that breaks the grid or the quantity rules is not applied, and the book says so.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Iterable

from vajra.market.events import BookUpdate
from vajra.market.instruments import Instrument

#: A side's levels in a `BookUpdate`: (tick, qty) pairs, best first.
Levels = tuple[tuple[int, int], ...]


class Violation(enum.IntFlag):
    CROSSED = 1
    LOCKED = 2
    BAD_QTY = 4  # negative quantity, or a zero-size level inside a snapshot
    OFF_TICK = 8
    SEQUENCE_GAP = 16
    STALE = 32
    BAD_PRICE = 64  # zero or negative price


_KINDS = tuple(Violation)
# Plain ints for the hot path: IntFlag arithmetic runs as Python-level enum code.
_CROSSED, _LOCKED, _GAP = int(Violation.CROSSED), int(Violation.LOCKED), int(Violation.SEQUENCE_GAP)
_CROSS_OR_LOCK = _CROSSED | _LOCKED
_BAD_PRICE, _OFF_TICK, _BAD_QTY = (
    int(Violation.BAD_PRICE),
    int(Violation.OFF_TICK),
    int(Violation.BAD_QTY),
)


def tick_levels(
    levels: Iterable[tuple[int, int]], tick: int
) -> tuple[tuple[tuple[int, int], ...], int]:
    """(price, qty) levels in price units -> (tick, qty) levels for a `BookUpdate`, and the
    `Violation` bits of the levels dropped (a non-positive price, a price off the grid).

    Producers call this on the feed thread, so the grid check runs once per level there and
    the book's own loop does not repeat it. Cost: ~20 bytecodes per level.
    """
    out: list[tuple[int, int]] = []
    flags = 0
    for px, q in levels:
        t = px // tick
        if px > 0 and t * tick == px:
            out.append((t, q))
        else:
            flags |= _BAD_PRICE if px <= 0 else _OFF_TICK
    return tuple(out), flags


def _next_bid(book: dict[int, int], below: int) -> int:
    """Highest bid tick below `below` (the removed best), walking down the grid; a C-level max
    over the side when the gap is wide. 0 for an empty side."""
    if not book:
        return 0
    for t in range(below - 1, below - 1 - _RESCAN_WALK, -1):  # ~6 bytecodes per tick
        if t in book:
            return t
    return max(book)


def _next_ask(book: dict[int, int], above: int) -> int:
    if not book:
        return NO_ASK
    if above == NO_ASK:
        return min(book)
    for t in range(above + 1, above + 1 + _RESCAN_WALK):
        if t in book:
            return t
    return min(book)


#: Best-ask value of an empty ask side (every real tick is below it); also "no bound".
NO_ASK = 1 << 62
#: Ticks walked to find the next best level after the best was removed, before a C-level scan
#: of the whole side (~0.3 ms at 5 000 levels on 3.13t; a sweep can empty dozens of ticks).
_RESCAN_WALK = 1024
#: Ticks walked per requested level before falling back to a heap scan of the whole side.
_WALK_PER_LEVEL = 32
#: A tick no walk reaches: "no more update levels" in the merge walks.
_NO_TICK = -(1 << 62)


def _merge_bids(
    book: dict[int, int], best: int, levels: Levels, n: int, px: list[int], qs: list[int]
) -> int:
    """The top n bids of `book` with `levels` (an ordered update: ticks strictly descending)
    applied, without applying them: a merge of two descending sequences, the tick walk and the
    update's levels. Returns how many levels were found, or -1 when fewer than n lie within
    the walk's reach (the caller applies the update and reads again).

    Cost: the plain walk's, plus one comparison per tick walked; update levels outside the
    walked ticks are never touched, so a 600-level diff costs what a 3-level one does.
    """
    nu = len(levels)
    j = 0
    start = best
    while j < nu and levels[j][0] > start:  # above the book's best: a new best, or a no-op
        if levels[j][1] > 0:
            start = levels[j][0]
            break
        j += 1
    if start <= 0 or n <= 0:  # an empty side that the update leaves empty
        return 0
    ut = levels[j][0] if j < nu else _NO_TICK  # the next update tick the walk will meet
    k = seen = 0  # levels found; book levels walked past (to know when the side is all seen)
    for t in range(start, start - n * _WALK_PER_LEVEL, -1):
        if t == ut:
            q = levels[j][1]
            j += 1
            ut = levels[j][0] if j < nu else _NO_TICK
            if t in book:
                seen += 1
                if q < 0:  # the book refuses it (BAD_QTY): the old level stays
                    q = book[t]
            if q > 0:
                px[k] = t
                qs[k] = q
                k += 1
                if k == n:
                    return k
        elif t in book:
            seen += 1
            px[k] = t
            qs[k] = book[t]
            k += 1
            if k == n:
                return k
    # fewer than n: the whole side if every book level and every update level was walked
    return k if seen == len(book) and j >= nu else -1


def _merge_asks(
    book: dict[int, int], best: int, levels: Levels, n: int, px: list[int], qs: list[int]
) -> int:
    """`_merge_bids` for asks (ticks strictly ascending, walking up)."""
    nu = len(levels)
    j = 0
    start = best
    while j < nu and levels[j][0] < start:
        if levels[j][1] > 0:
            start = levels[j][0]
            break
        j += 1
    if start == NO_ASK or n <= 0:  # an empty side that the update leaves empty
        return 0
    ut = levels[j][0] if j < nu else _NO_TICK
    k = seen = 0
    for t in range(start, start + n * _WALK_PER_LEVEL):
        if t == ut:
            q = levels[j][1]
            j += 1
            ut = levels[j][0] if j < nu else _NO_TICK
            if t in book:
                seen += 1
                if q < 0:
                    q = book[t]
            if q > 0:
                px[k] = t
                qs[k] = q
                k += 1
                if k == n:
                    return k
        elif t in book:
            seen += 1
            px[k] = t
            qs[k] = book[t]
            k += 1
            if k == n:
                return k
    return k if seen == len(book) and j >= nu else -1


class L2Book:
    """One instrument's book. Owned by one thread (the feed/Oracle thread); readers elsewhere
    see it only through the shared-memory top-of-book block (`vajra.market.top`)."""

    __slots__ = (
        "_ba",
        "_bb",
        "_pending",
        "asks",
        "bids",
        "counts",
        "instrument",
        "last_exch_ns",
        "last_id",
        "last_recv_ns",
        "lazy",
        "merge_fallbacks",
        "merged_reads",
        "state",
        "tick",
        "updates",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.tick = instrument.tick
        self.bids: dict[int, int] = {}  # tick -> qty
        self.asks: dict[int, int] = {}
        self._bb = 0  # best bid tick; 0 when the side is empty
        self._ba = NO_ASK  # best ask tick; NO_ASK when the side is empty
        #: violations seen, per kind, in `Violation` order
        self.counts = [0] * len(_KINDS)
        #: persistent violations in force now (crossed, locked, gap); 0 when sane
        self.state = 0
        self.updates = 0
        self.last_recv_ns = 0
        self.last_exch_ns = 0
        self.last_id = 0
        #: record ordered updates and apply them at `flush()`, the top reads merging them in
        #: meanwhile (see `apply`); off: every update is applied as it comes
        self.lazy = False
        self._pending: BookUpdate | None = None
        #: top reads served by merging a recorded update, and those that had to flush first
        #: (the update emptied the top beyond the walk's reach)
        self.merged_reads = 0
        self.merge_fallbacks = 0

    # -- updates ------------------------------------------------------------------------------

    def apply(self, u: BookUpdate) -> int:
        """Apply one update; returns the violations it raised (0 when clean), the levels its
        producer could not convert (`u.rejects`) included.

        With `lazy` set, an ordered update (`BookUpdate.ordered`, or one level per side) is
        only recorded: the top-of-book reads (`top`, `_top_bids`, `_top_asks`) see the book
        as it will be by merging the update's levels into their walk, and `flush()` applies
        it (and returns its violations) after the signal is out. The next `apply`, and every
        other read, flushes first. Snapshots and unordered updates are applied at once.
        """
        if self._pending is not None:
            self.flush()
        if (
            self.lazy
            and not u.snapshot
            and (u.ordered or (len(u.bids) < 2 and len(u.asks) < 2))
            and not u.rejects
        ):
            self._pending = u  # O(1): the signal path pays nothing per level
            return 0
        return self._apply(u)

    def _apply(self, u: BookUpdate) -> int:
        if u.snapshot:
            self.bids.clear()
            self.asks.clear()
            self._bb, self._ba = 0, NO_ASK
        flags = self._levels(u.bids, u.asks, u.snapshot, u.rejects)
        self.updates += 1
        self.last_recv_ns = u.recv_ns
        self.last_exch_ns = u.exch_ns
        if u.last_id:
            self.last_id = u.last_id
        return flags

    def flush(self) -> int:
        """Apply the update `apply` recorded (lazy mode); returns its violations (0 when there
        was none)."""
        u = self._pending
        if u is None:
            return 0
        self._pending = None
        return self._apply(u)

    @property
    def pending(self) -> bool:
        """An update is recorded and not yet applied (`flush()` has work to do)."""
        return self._pending is not None

    def _levels(self, bids: Levels, asks: Levels, snap: bool, flags: int) -> int:
        """Apply levels, track the best ticks, count violations, and check crossing once the
        whole update is in (half an update can look crossed when it is not, e.g. bids moved up
        before the asks they replaced were deleted).

        Cost: ~15 bytecodes per changed level (one comparison of the quantity, one dict store
        or pop, one comparison with the best), plus a rescan when the best level was removed.
        Prices arrive as ticks, already checked against the grid by their producer, which is
        what keeps this loop this short.
        """
        book, best = self.bids, self._bb
        for t, q in bids:
            if q > 0:
                book[t] = q
                if t > best:
                    best = t
            elif q == 0 and not snap:
                book.pop(t, 0)
            else:
                flags |= _BAD_QTY  # negative, or zero inside a snapshot
        if best not in book:  # the best level went (or the side emptied): find the next one
            best = _next_bid(book, best)
        self._bb = best
        book, best = self.asks, self._ba
        for t, q in asks:
            if q > 0:
                book[t] = q
                if t < best:
                    best = t
            elif q == 0 and not snap:
                book.pop(t, 0)
            else:
                flags |= _BAD_QTY
        if best not in book:
            best = _next_ask(book, best)
        self._ba = best
        bb = self._bb
        if bb and bb >= best:
            flags |= _LOCKED if bb == best else _CROSSED
        self.state = (self.state & _GAP) | (flags & _CROSS_OR_LOCK)
        if flags:
            self._count(flags)
        return flags

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
        self._pending = None
        self.bids.clear()
        self.asks.clear()
        self._bb, self._ba = 0, NO_ASK

    # -- reads --------------------------------------------------------------------------------

    @property
    def sane(self) -> bool:
        if self._pending is not None:
            self.flush()
        return self.state == 0

    def best_bid(self) -> int:
        """Best bid in ticks, or 0 when the side is empty."""
        if self._pending is not None:
            self.flush()
        return self._bb

    def best_ask(self) -> int:
        """Best ask in ticks, or 0 when the side is empty."""
        if self._pending is not None:
            self.flush()
        ba = self._ba
        return 0 if ba == NO_ASK else ba

    def bid_depth(self) -> int:
        if self._pending is not None:
            self.flush()
        return len(self.bids)

    def ask_depth(self) -> int:
        if self._pending is not None:
            self.flush()
        return len(self.asks)

    def bid_at(self, i: int) -> tuple[int, int]:
        """(ticks, qty) of the i-th best bid level (IndexError beyond the depth)."""
        n = i + 1
        px, q = [0] * n, [0] * n
        if self._top_bids(n, px, q) < n:
            raise IndexError(f"bid level {i} of {len(self.bids)}")
        return px[i], q[i]

    def ask_at(self, i: int) -> tuple[int, int]:
        n = i + 1
        px, q = [0] * n, [0] * n
        if self._top_asks(n, px, q) < n:
            raise IndexError(f"ask level {i} of {len(self.asks)}")
        return px[i], q[i]

    def top(
        self, n: int, bpx: list[int], bq: list[int], apx: list[int], aq: list[int]
    ) -> tuple[int, int]:
        """Copy up to n levels per side into caller-owned lists (no allocation on dense books);
        returns the number of bid and ask levels copied. Prices in ticks, best first."""
        return self._top_bids(n, bpx, bq), self._top_asks(n, apx, aq)

    def _top_bids(self, n: int, px: list[int], qs: list[int]) -> int:
        """Walk down from the best bid. Cost: a `range` step and a dict membership test per
        tick walked (~6 bytecodes; ~20 ticks for 5 levels of the BTCUSDT book), plus a lookup
        per level found; a sparse book falls back to `heapq.nlargest` over the side. With an
        update recorded (lazy mode) the walk merges its levels in (`_merge_bids`)."""
        u = self._pending
        if u is not None:
            k = _merge_bids(self.bids, self._bb, u.bids, n, px, qs)
            if k >= 0:
                self.merged_reads += 1
                return k
            self.merge_fallbacks += 1
            self.flush()
        book = self.bids
        if n > len(book):
            n = len(book)
        if n == 0:
            return 0
        bb = self._bb
        k = 0
        for t in range(bb, bb - n * _WALK_PER_LEVEL, -1):
            if t in book:
                px[k] = t
                qs[k] = book[t]
                k += 1
                if k == n:
                    return k
        for k, t in enumerate(heapq.nlargest(n, book)):
            px[k] = t
            qs[k] = book[t]
        return n

    def _top_asks(self, n: int, px: list[int], qs: list[int]) -> int:
        u = self._pending
        if u is not None:
            k = _merge_asks(self.asks, self._ba, u.asks, n, px, qs)
            if k >= 0:
                self.merged_reads += 1
                return k
            self.merge_fallbacks += 1
            self.flush()
        book = self.asks
        if n > len(book):
            n = len(book)
        if n == 0:
            return 0
        ba = self._ba
        k = 0
        for t in range(ba, ba + n * _WALK_PER_LEVEL):
            if t in book:
                px[k] = t
                qs[k] = book[t]
                k += 1
                if k == n:
                    return k
        for k, t in enumerate(heapq.nsmallest(n, book)):
            px[k] = t
            qs[k] = book[t]
        return n

    def levels(self, n: int = 0) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids, asks) as (ticks, qty) lists, best first; all levels when n == 0. Allocates:
        for tests and tools, not the hot path."""
        if self._pending is not None:
            self.flush()
        bp = sorted(self.bids, reverse=True) if not n else heapq.nlargest(n, self.bids)
        ap = sorted(self.asks) if not n else heapq.nsmallest(n, self.asks)
        return [(p, self.bids[p]) for p in bp], [(p, self.asks[p]) for p in ap]

    def violations(self) -> dict[str, int]:
        if self._pending is not None:
            self.flush()
        return {k.name or str(int(k)): c for k, c in zip(_KINDS, self.counts, strict=True)}

    def check_consistency(self) -> None:
        """Assert the tracked best levels agree with the sides (tests and debugging; O(depth))."""
        if self._pending is not None:
            self.flush()
        assert self._bb == (max(self.bids) if self.bids else 0)
        assert self._ba == (min(self.asks) if self.asks else NO_ASK)
        assert all(q > 0 for q in self.bids.values()) and all(q > 0 for q in self.asks.values())
