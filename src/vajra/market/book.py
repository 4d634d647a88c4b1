"""L2 price-level order book in integer ticks, with its invariants checked on every update.

Why this shape: feeds give absolute quantities per price level (Binance diffs, Kite depth, a
LOBSTER L3 stream aggregated to levels) and signals read the top few levels on every event. A
Binance book holds ~5 000 levels a side and a diff touches ~35 of them (p99: ~600), 40% of them
adding or removing a level, mostly far from the touch. So each side is a dict tick -> quantity
(O(1) set and delete, no sorted list to memmove on every new or removed level) plus the best
tick, tracked as levels arrive and rescanned only when the best level itself is removed. The top
N levels are found by walking ticks away from the best (prices are integers on a grid, and books
near the touch are dense), with a C-level `heapq` fallback when the book is sparse.

Invariants (each a `Violation` bit): a crossed or locked book, a negative quantity or a
zero-size level in a snapshot, a non-positive price, a price off the tick grid, a feed sequence
gap (`mark_gap`), and staleness (judged by Sonar from `last_recv_ns`). A violation is an event:
it is counted per kind, returned to the caller, kept in `state` while it persists (crossed,
locked, gap), and it closes Sonar's gate. It never raises and is never silently "fixed": a level
that breaks the grid or the quantity rules is not applied, and the book says so.
"""

from __future__ import annotations

import enum
import heapq

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


def _next_bid(book: dict[int, int], below: int) -> int:
    """Highest bid tick below `below` (the removed best), walking down the grid; a C-level max
    over the side when the gap is wide. 0 for an empty side."""
    if not book:
        return 0
    t = below - 1
    for _ in range(_RESCAN_WALK):
        if t in book:
            return t
        t -= 1
    return max(book)


def _next_ask(book: dict[int, int], above: int) -> int:
    if not book:
        return NO_ASK
    if above == NO_ASK:
        return min(book)
    t = above + 1
    for _ in range(_RESCAN_WALK):
        if t in book:
            return t
        t += 1
    return min(book)


#: Best-ask value of an empty ask side (every real tick is below it); also "no bound".
NO_ASK = 1 << 62
#: Ticks walked to find the next best level after the best was removed, before a C-level scan
#: of the whole side (~0.3 ms at 5 000 levels on 3.13t; a sweep can empty dozens of ticks).
_RESCAN_WALK = 1024
#: Ticks walked per requested level before falling back to a heap scan of the whole side.
_WALK_PER_LEVEL = 32


class L2Book:
    """One instrument's book. Owned by one thread (the feed/Oracle thread); readers elsewhere
    see it only through the shared-memory top-of-book block (`vajra.market.top`)."""

    __slots__ = (
        "_ba",
        "_bb",
        "_pending",
        "_touched",
        "asks",
        "bids",
        "counts",
        "defer_beyond",
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
        #: levels per side applied at once by `apply`; the rest waits for `flush` (0: no limit)
        self.defer_beyond = 0
        self._pending: tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], bool] | None
        self._pending = None
        self._touched = False

    # -- updates ------------------------------------------------------------------------------

    def apply(self, u: BookUpdate) -> int:
        """Apply one update; returns the violations it raised (0 when clean).

        With `defer_beyond = K` set, only the first K levels of each side are applied now and
        the rest waits until `flush()` (or the next `apply`, which flushes first, so order is
        kept): the signal path reads a book whose top is already right, and a 600-level diff
        costs it ~K levels instead of 600. Levels must be listed best first (the BookUpdate
        convention); callers check `pending_reaches` (and `advance`) before trusting the top,
        and `flush()` reports a deferred level that reached the top anyway.
        """
        if self._pending is not None:
            self.flush()
        k = self.defer_beyond
        bids, asks = u.bids, u.asks
        if k and (len(bids) > k or len(asks) > k):
            self._pending = (bids[k:], asks[k:], u.snapshot)
            bids, asks = bids[:k], asks[:k]
        if u.snapshot:
            self.bids.clear()
            self.asks.clear()
            self._bb, self._ba = 0, NO_ASK
        flags = self._levels(bids, asks, u.snapshot, 0, NO_ASK, self._pending is None)
        self.updates += 1
        self.last_recv_ns = u.recv_ns
        self.last_exch_ns = u.exch_ns
        if u.last_id:
            self.last_id = u.last_id
        return flags

    def flush(self, top_bid: int = 0, top_ask: int = NO_ASK) -> bool:
        """Apply the levels `apply` deferred. Returns True when one of them was at or inside
        `top_bid`/`top_ask` (the worst bid and ask tick the caller's signal read; the defaults
        mean "the whole book"), i.e. when a signal computed before the flush must be redone."""
        pending = self._pending
        if pending is None:
            return False
        self._pending = None
        before = self._touched
        self._touched = False
        self._levels(pending[0], pending[1], pending[2], top_bid, top_ask, True)
        touched = self._touched
        self._touched = before
        return touched

    def advance(self, top_bid: int, top_ask: int) -> None:
        """Apply the deferred levels that reach the top window (a prefix of each side, levels
        being best first) and keep deferring the rest. Applies at least one level when
        `pending_reaches` said so, so a caller's loop always ends."""
        pending = self._pending
        if pending is None:
            return
        bids, asks, snap = pending
        tick = self.tick
        kb = 0
        while kb < len(bids) and bids[kb][0] // tick >= top_bid:
            kb += 1
        ka = 0
        while ka < len(asks) and asks[ka][0] // tick <= top_ask:
            ka += 1
        rest_b, rest_a = bids[kb:], asks[ka:]
        done = not rest_b and not rest_a
        self._pending = None if done else (rest_b, rest_a, snap)
        self._levels(bids[:kb], asks[:ka], snap, 0, NO_ASK, done)

    def pending_reaches(self, top_bid: int, top_ask: int) -> bool:
        """Whether the best deferred level of either side is at or inside the top window (O(1):
        deferred levels are listed best first, so the first one is the best). When False the
        deferred levels cannot change what a signal read from the window."""
        pending = self._pending
        if pending is None:
            return False
        bids, asks = pending[0], pending[1]
        tick = self.tick
        return bool(
            (bids and bids[0][0] // tick >= top_bid) or (asks and asks[0][0] // tick <= top_ask)
        )

    @property
    def pending(self) -> bool:
        """Levels are deferred (`flush()` has work to do)."""
        return self._pending is not None

    def _levels(
        self,
        bids: tuple[tuple[int, int], ...],
        asks: tuple[tuple[int, int], ...],
        snap: bool,
        top_bid: int,
        top_ask: int,
        final: bool,
    ) -> int:
        """Apply levels, track the best ticks, count violations, and check crossing once the
        update is complete (`final`): half an update can look crossed when it is not, e.g. bids
        moved up before the asks they replaced were deleted.

        Cost: ~12 bytecodes per changed level (a floor division, a grid check, one dict store
        or pop, one comparison with the best; two with the top window), plus a rescan when the
        best level was removed.
        """
        flags = 0
        tick = self.tick
        touched = False
        book, best = self.bids, self._bb
        for px, q in bids:
            t = px // tick
            if t >= top_bid:
                touched = True
            if q > 0 and px > 0 and t * tick == px:
                book[t] = q
                if t > best:
                    best = t
            elif q == 0 and not snap and px > 0 and t * tick == px:
                book.pop(t, 0)
            else:
                flags |= _reject(px, q, tick)
        if best not in book:  # the best level went (or the side emptied): find the next one
            best = _next_bid(book, best)
        self._bb = best
        book, best = self.asks, self._ba
        for px, q in asks:
            t = px // tick
            if t <= top_ask:
                touched = True
            if q > 0 and px > 0 and t * tick == px:
                book[t] = q
                if t < best:
                    best = t
            elif q == 0 and not snap and px > 0 and t * tick == px:
                book.pop(t, 0)
            else:
                flags |= _reject(px, q, tick)
        if best not in book:
            best = _next_ask(book, best)
        self._ba = best
        self._touched = touched
        if final:
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
        return self.state == 0

    def best_bid(self) -> int:
        """Best bid in ticks, or 0 when the side is empty."""
        return self._bb

    def best_ask(self) -> int:
        """Best ask in ticks, or 0 when the side is empty."""
        ba = self._ba
        return 0 if ba == NO_ASK else ba

    def bid_depth(self) -> int:
        return len(self.bids)

    def ask_depth(self) -> int:
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
        """Walk down from the best bid. Cost: one dict lookup per tick walked (about n on a
        dense book); a sparse book falls back to `heapq.nlargest` over the side."""
        book = self.bids
        if n > len(book):
            n = len(book)
        get = book.get
        t = self._bb
        stop = t - n * _WALK_PER_LEVEL
        k = 0
        while k < n and t > stop:
            q = get(t)
            if q is not None:
                px[k] = t
                qs[k] = q
                k += 1
            t -= 1
        if k < n:
            for k, t in enumerate(heapq.nlargest(n, book)):
                px[k] = t
                qs[k] = book[t]
            k = n
        return k

    def _top_asks(self, n: int, px: list[int], qs: list[int]) -> int:
        book = self.asks
        if n > len(book):
            n = len(book)
        get = book.get
        t = self._ba
        stop = t + n * _WALK_PER_LEVEL
        k = 0
        while k < n and t < stop:
            q = get(t)
            if q is not None:
                px[k] = t
                qs[k] = q
                k += 1
            t += 1
        if k < n:
            for k, t in enumerate(heapq.nsmallest(n, book)):
                px[k] = t
                qs[k] = book[t]
            k = n
        return k

    def levels(self, n: int = 0) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids, asks) as (ticks, qty) lists, best first; all levels when n == 0. Allocates:
        for tests and tools, not the hot path."""
        bp = sorted(self.bids, reverse=True) if not n else heapq.nlargest(n, self.bids)
        ap = sorted(self.asks) if not n else heapq.nsmallest(n, self.asks)
        return [(p, self.bids[p]) for p in bp], [(p, self.asks[p]) for p in ap]

    def violations(self) -> dict[str, int]:
        return {k.name or str(int(k)): c for k, c in zip(_KINDS, self.counts, strict=True)}

    def check_consistency(self) -> None:
        """Assert the tracked best levels agree with the sides (tests and debugging; O(depth))."""
        assert self._bb == (max(self.bids) if self.bids else 0)
        assert self._ba == (min(self.asks) if self.asks else NO_ASK)
        assert all(q > 0 for q in self.bids.values()) and all(q > 0 for q in self.asks.values())
