"""LOBSTER NASDAQ samples: sans-I/O line parsers, an L3 -> L2 book, and a zip replay shell.

A LOBSTER sample is two CSV files with one line per event: the message file (the L3 event:
time, type, order id, size, price, direction) and the orderbook file (the top `levels` price
levels of both sides *after* that event). The spec is `LOBSTER_SampleFiles_ReadMe.txt`.

Layers, as everywhere in Vajra's feeds:
- `LobsterMessageParser` / `LobsterRowParser`: one line (bytes or str) in, one typed value or a
  `Malformed` out. They never raise and never do I/O, so fuzzing them is the whole proof.
- `LobsterBook`: L3 messages in, `BookUpdate` and `Trade` events out, applied to an `L2Book`.
  It needs no orderbook file; `reconcile_from_row` is the one documented place where a row is
  allowed to add what the messages cannot carry (levels entering view from below level 5).
- `iter_lobster_zip`: the thin I/O shell. Streams both CSVs out of the zip and drives the above.

Why the row reconciliation exists at all (ReadMe: the message file "contains indicators for the
type of event causing an update of the limit order book in the requested price range"): events
deeper than the requested levels are not in the message file. A level that is pushed below the
window, or that was never in it, changes silently; when the window later moves down onto it
(the level above empties), only the orderbook row knows its size. Orders resting there arrive
with ids we never saw, and are handled by level arithmetic: every message states its own price,
side and size, so it changes the level by that size whether or not we know the order.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import os
import re
import zipfile
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass

from vajra.market.book import L2Book, tick_levels
from vajra.market.events import BookUpdate, Malformed, MarketEvent, Side, Trade
from vajra.market.instruments import Instrument, Segment

#: ReadMe, "Unoccupied Price Levels": the extra ask prices are set to 9999999999 and the extra
#: bid prices to -9999999999, with volume 0.
EMPTY_ASK = 9_999_999_999
EMPTY_BID = -9_999_999_999

#: Sorts after every real ask price: the "whole side is known" edge of the ask window.
_ALL_ASKS = 1 << 62

_NS_PER_S = 1_000_000_000
_NEW_YORK = "America/New_York"


class MessageType(enum.IntEnum):
    SUBMIT = 1  # new limit order
    CANCEL = 2  # partial deletion
    DELETE = 3  # total deletion
    EXECUTE = 4  # execution of a visible limit order
    EXECUTE_HIDDEN = 5  # execution of a hidden limit order
    CROSS = 6  # cross trade (auction)
    HALT = 7  # trading halt indicator


class TradingPhase(enum.IntEnum):
    """Where the halt messages (type 7) leave the session; price -1, 0, 1 in the ReadMe."""

    TRADING = 1
    HALTED = 2
    QUOTING = 3  # quoting resumed, trading not yet


_HALT_PHASE = {-1: TradingPhase.HALTED, 0: TradingPhase.QUOTING, 1: TradingPhase.TRADING}


@dataclass(frozen=True, slots=True)
class LobsterMessage:
    """One message-file line. `direction` is the side of the *resting* limit order (ReadMe:
    -1 sell limit order, 1 buy limit order), so an execution's aggressor is the other side."""

    time_ns: int  # ns after midnight
    type: MessageType
    order_id: int
    size: int  # shares
    price: int  # USD x 10000
    direction: Side


@dataclass(frozen=True, slots=True)
class LobsterRow:
    """One orderbook-file line: occupied levels only, best first, (price, size) in file units.
    An empty level (the sentinel prices) is absent, so `len(asks) < levels` means the whole
    ask side is shown."""

    asks: tuple[tuple[int, int], ...]
    bids: tuple[tuple[int, int], ...]


# -- parsers -----------------------------------------------------------------------------------

_INT = r"-?[0-9]{1,18}"  # 18 digits always fit an int64, so nothing past here can overflow
_MESSAGE = re.compile(
    rf"([0-9]{{1,9}})(?:\.([0-9]{{1,18}}))?,([0-9]{{1,2}}),({_INT}),({_INT}),({_INT}),({_INT})",
    re.ASCII,
)
_MESSAGE_FIELDS = ("time", "type", "order_id", "size", "price", "direction")
_FIELD_RES = (
    re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,18})?", re.ASCII),
    *(re.compile(_INT, re.ASCII),) * 5,
)
_TYPES = {str(int(t)): t for t in MessageType}
_DIRECTIONS = {"1": Side.BID, "-1": Side.ASK}


def _text(line: bytes | str) -> str | None:
    """The line without its terminator, or None when it is not ASCII (LOBSTER files are)."""
    if isinstance(line, bytes):
        try:
            line = line.decode("ascii")
        except UnicodeDecodeError:
            return None
    elif not line.isascii():
        return None
    return line.rstrip("\r\n")


def _bad_field(text: str, names: tuple[str, ...], patterns: tuple[re.Pattern[str], ...]) -> str:
    """Why a line failed its whole-line pattern; only runs on the error path."""
    fields = text.split(",")
    if len(fields) != len(names):
        return f"expected {len(names)} fields, got {len(fields)}"
    for name, pattern, value in zip(names, patterns, fields, strict=True):
        if not pattern.fullmatch(value):
            return f"{name} is not a number of the expected form: {value[:24]!r}"
    return "unparseable line"


class LobsterMessageParser:
    """Message-file lines -> `LobsterMessage`, or `Malformed` (counted, never raised).

    Time is parsed from the decimal string into integer ns, never through a float. Digits past
    the 9th decimal are float-printing noise in LOBSTER's writer (the AMZN sample has one line,
    `43002.632812672004`): they are rounded to the nearest ns and counted in `rounded_times`,
    because the message itself is sound and dropping it would corrupt the book.

    Owned by the thread that reads the file.
    """

    __slots__ = ("lines", "malformed", "rounded_times")

    def __init__(self) -> None:
        self.lines = 0
        self.malformed = 0
        self.rounded_times = 0

    def parse_line(self, line: bytes | str, recv_ns: int = 0) -> LobsterMessage | Malformed:
        """Parse one line (with or without its line terminator). `recv_ns` stamps a `Malformed`
        result, whose own time field cannot be trusted."""
        self.lines += 1
        text = _text(line)
        if text is None:
            return self._bad(recv_ns, "not ASCII", len(line))
        m = _MESSAGE.fullmatch(text)
        if m is None:
            if not text:
                return self._bad(recv_ns, "empty line", 0)
            return self._bad(recv_ns, _bad_field(text, _MESSAGE_FIELDS, _FIELD_RES), len(text))
        whole, frac, type_s, oid_s, size_s, px_s, dir_s = m.groups()
        mtype = _TYPES.get(type_s)
        if mtype is None:
            return self._bad(recv_ns, f"unknown message type {type_s}", len(text))
        direction = _DIRECTIONS.get(dir_s)
        if direction is None:
            return self._bad(recv_ns, f"direction must be 1 or -1, got {dir_s}", len(text))
        order_id, size, price = int(oid_s), int(size_s), int(px_s)
        if mtype <= MessageType.EXECUTE_HIDDEN:
            if order_id < 0 or size <= 0 or price <= 0:
                return self._bad(
                    recv_ns, f"type {type_s}: order id, size or price out of range", len(text)
                )
        elif mtype is MessageType.HALT:
            # ReadMe: price -1 / 0 / 1, direction -1, "all other properties are set to '0'"
            if order_id or size or price not in _HALT_PHASE or direction is not Side.ASK:
                return self._bad(recv_ns, "type 7: fields are not a halt indicator", len(text))
        elif size < 0 or price < 0 or order_id < -1:
            return self._bad(recv_ns, "type 6: size, price or order id out of range", len(text))
        time_ns = int(whole) * _NS_PER_S
        if frac:
            if len(frac) > 9:
                extra = int(frac[9:])
                if extra:
                    self.rounded_times += 1
                    if extra * 2 >= 10 ** (len(frac) - 9):  # half up
                        time_ns += 1
                frac = frac[:9]
            time_ns += int(frac.ljust(9, "0"))
        return LobsterMessage(time_ns, mtype, order_id, size, price, direction)

    def _bad(self, recv_ns: int, reason: str, size: int) -> Malformed:
        self.malformed += 1
        return Malformed(recv_ns, f"LOBSTER message: {reason}", size)


class LobsterRowParser:
    """Orderbook-file lines -> `LobsterRow`, or `Malformed` (counted, never raised).

    Checks what the book builder relies on: 4 x `levels` integer fields; sentinel levels carry
    size 0 and only trail real ones (levels are *occupied* levels, ReadMe "Levels"); real levels
    have positive price and size, asks strictly rising and bids strictly falling.

    Owned by the thread that reads the file.
    """

    __slots__ = ("_names", "_patterns", "_row", "levels", "lines", "malformed")

    def __init__(self, levels: int = 5) -> None:
        if levels <= 0:
            raise ValueError(f"levels must be > 0, got {levels}")
        self.levels = levels
        self.lines = 0
        self.malformed = 0
        self._row = re.compile(rf"{_INT}(?:,{_INT}){{{4 * levels - 1}}}", re.ASCII)
        self._names = tuple(
            f"{kind}{i}"
            for i in range(1, levels + 1)
            for kind in ("ask_px", "ask_sz", "bid_px", "bid_sz")
        )
        self._patterns = (re.compile(_INT, re.ASCII),) * (4 * levels)

    def parse_line(self, line: bytes | str, recv_ns: int = 0) -> LobsterRow | Malformed:
        """Parse one line. `recv_ns` stamps a `Malformed` result (rows carry no time)."""
        self.lines += 1
        text = _text(line)
        if text is None:
            return self._bad(recv_ns, "not ASCII", len(line))
        if self._row.fullmatch(text) is None:
            if not text:
                return self._bad(recv_ns, "empty line", 0)
            return self._bad(recv_ns, _bad_field(text, self._names, self._patterns), len(text))
        v = [int(f) for f in text.split(",")]
        asks: list[tuple[int, int]] = []
        bids: list[tuple[int, int]] = []
        ask_end = bid_end = False
        for i in range(0, len(v), 4):
            apx, asz, bpx, bsz = v[i], v[i + 1], v[i + 2], v[i + 3]
            if apx == EMPTY_ASK:
                if asz:
                    return self._bad(
                        recv_ns, f"empty ask level {i // 4 + 1} has size {asz}", len(text)
                    )
                ask_end = True
            elif ask_end or apx <= 0 or asz <= 0 or (asks and apx <= asks[-1][0]):
                return self._bad(
                    recv_ns, f"ask level {i // 4 + 1} out of order or empty", len(text)
                )
            else:
                asks.append((apx, asz))
            if bpx == EMPTY_BID:
                if bsz:
                    return self._bad(
                        recv_ns, f"empty bid level {i // 4 + 1} has size {bsz}", len(text)
                    )
                bid_end = True
            elif bid_end or bpx <= 0 or bsz <= 0 or (bids and bpx >= bids[-1][0]):
                return self._bad(
                    recv_ns, f"bid level {i // 4 + 1} out of order or empty", len(text)
                )
            else:
                bids.append((bpx, bsz))
        return LobsterRow(tuple(asks), tuple(bids))

    def _bad(self, recv_ns: int, reason: str, size: int) -> Malformed:
        self.malformed += 1
        return Malformed(recv_ns, f"LOBSTER orderbook: {reason}", size)


# -- instrument --------------------------------------------------------------------------------


def lobster_instrument(symbol: str = "AMZN", token: int = 0) -> Instrument:
    """A NASDAQ stock as LOBSTER prices it: 1/10000 USD units, one-cent tick, one-share lot."""
    return Instrument(
        token=token,
        symbol=symbol,
        exchange="NASDAQ",
        segment=Segment.US_EQ,
        price_decimals=4,
        tick=100,
        lot=1,
        name=symbol,
    )


# -- L3 -> L2 ----------------------------------------------------------------------------------


class LobsterBook:
    """Rebuilds the L2 book from L3 messages, and says which of its levels it can vouch for.

    Level arithmetic: a message changes the level at its own price and side by its own size
    (submit adds, partial cancel / delete / visible execution subtract), so orders resting from
    before the sample (ids we never saw) need no special case: their shares are inside the level
    quantity the first row gave us, and a message about them removes exactly what it states.
    Hidden executions (5) are trades that leave the visible book alone; crosses (6) and halts (7)
    leave it alone too (ReadMe: a halt row duplicates the preceding book).

    The window edge: per side, `bid_edge` / `ask_edge` (ticks) bound the prices the messages
    cover; every level at or better than the edge is exact. An edge starts at the worst row level
    when the row is full (at the extreme when the row shows the whole side), moves up when a new
    level pushes the worst one out of view, and is reset by `reconcile_from_row`. Levels beyond
    it are kept (full depth where we can) but are last-seen values, not the market.

    Ownership: one thread (the feed thread), like the `L2Book` it drives.
    """

    __slots__ = (
        "ask_edge",
        "beyond_view",
        "bid_edge",
        "book",
        "crosses",
        "divergent_levels",
        "duplicate_ids",
        "instrument",
        "levels",
        "levels_corrected",
        "levels_dropped",
        "levels_taken",
        "messages",
        "midnight_ns",
        "order_mismatches",
        "orders",
        "phase",
        "reconciliations",
        "tick",
        "token",
        "trades",
        "unknown_orders",
    )

    def __init__(self, instrument: Instrument, *, levels: int = 5, midnight_ns: int = 0) -> None:
        """`levels`: how many levels the files cover. `midnight_ns`: the session's midnight in
        ns since the epoch (New York time), added to message times to give `exch_ns`."""
        if levels <= 0:
            raise ValueError(f"levels must be > 0, got {levels}")
        self.instrument = instrument
        self.token = instrument.token
        self.tick = instrument.tick
        self.book = L2Book(instrument)
        self.levels = levels
        self.midnight_ns = midnight_ns
        #: visible orders we saw submitted: id -> (side, price, remaining size)
        self.orders: dict[int, tuple[Side, int, int]] = {}
        self.phase = TradingPhase.TRADING
        self.bid_edge = 0  # every bid is at or above it: the whole side is known
        self.ask_edge = _ALL_ASKS
        self.messages = 0
        self.trades = 0
        self.crosses = 0
        #: cancels/deletes/executions of ids never seen submitted (resting before the sample,
        #: or submitted while below the window)
        self.unknown_orders = 0
        #: a known id whose message disagrees with what we tracked (side, price or size): the
        #: order changed while its level was below the window, where messages are not written
        self.order_mismatches = 0
        self.duplicate_ids = 0
        #: submits below the window edge: the messages covered a price we thought out of view
        self.beyond_view = 0
        #: rows that had to give us at least one level (taken or dropped)
        self.reconciliations = 0
        self.levels_taken = 0  # levels copied from rows because they entered view
        self.levels_corrected = 0  # ... of which our last-seen size (or absence) was wrong
        self.levels_dropped = 0  # last-seen levels a row proved gone
        #: row levels inside the exact window that disagree with us: a broken reconstruction,
        #: reported and never overwritten
        self.divergent_levels = 0

    # -- messages -------------------------------------------------------------------------------

    def snapshot(
        self, row: LobsterRow, msg: LobsterMessage | None = None
    ) -> tuple[BookUpdate | Trade, ...]:
        """Start (or restart) from an orderbook row: the whole book becomes the row.

        `msg` is the message that row follows (the first message line when starting a file):
        its effect is already in the row, so it is tracked and its trade emitted, but its size is
        not applied again. Without `msg` (a resync after a lost message) the timestamps are the
        last ones seen.
        """
        if msg is None:
            recv, exch = self.book.last_recv_ns, self.book.last_exch_ns
        else:
            recv, exch = msg.time_ns, self.midnight_ns + msg.time_ns
        bids, fb = tick_levels(row.bids, self.tick)
        asks, fa = tick_levels(row.asks, self.tick)
        update = BookUpdate(self.token, recv, exch, bids, asks, snapshot=True, rejects=fb | fa)
        self.book.apply(update)
        self._set_edges(row)
        if msg is None:
            return (update,)
        self.messages += 1
        mtype = msg.type
        if mtype is MessageType.SUBMIT:
            self._track_submit(msg)
        elif mtype <= MessageType.EXECUTE:
            self._track_reduce(msg)
        elif mtype is MessageType.CROSS:
            self.crosses += 1
        elif mtype is MessageType.HALT:
            self.phase = _HALT_PHASE[msg.price]
        if mtype is MessageType.EXECUTE or mtype is MessageType.EXECUTE_HIDDEN:
            return (self._trade(msg, recv, exch), update)
        return (update,)

    def on_message(self, msg: LobsterMessage) -> tuple[BookUpdate | Trade, ...]:
        """Apply one message; returns its events (a `Trade` before the `BookUpdate` it causes).

        Call `reconcile_from_row` with the matching orderbook row after each message when the
        file has one. A missing row (a malformed line) is tolerated: the window edge follows the
        messages, and the next row gives back what entered view in between.
        """
        self.messages += 1
        mtype = msg.type
        recv = msg.time_ns
        exch = self.midnight_ns + recv
        if mtype is MessageType.SUBMIT:
            self._track_submit(msg)
            return (self._change(msg, msg.size, recv, exch),)
        if mtype <= MessageType.EXECUTE:
            self._track_reduce(msg)
            update = self._change(msg, -msg.size, recv, exch)
            if mtype is MessageType.EXECUTE:
                return (self._trade(msg, recv, exch), update)
            return (update,)
        if mtype is MessageType.EXECUTE_HIDDEN:
            return (self._trade(msg, recv, exch),)
        if mtype is MessageType.CROSS:
            # An auction print has no aggressor, and `Trade` requires one; see crosses.
            self.crosses += 1
            return ()
        self.phase = _HALT_PHASE[msg.price]
        return ()

    def _change(self, msg: LobsterMessage, delta: int, recv: int, exch: int) -> BookUpdate:
        """New absolute quantity at the message's level. A result below zero goes to the book
        as is, which refuses it as BAD_QTY: the inconsistency is counted there, not hidden."""
        book = self.book
        px = msg.price
        t = px // self.tick
        bid = msg.direction is Side.BID
        cur = (book.bids if bid else book.asks).get(t, 0)
        new = cur + delta
        level, rejects = tick_levels(((px, new),), self.tick)
        if bid:
            update = BookUpdate(self.token, recv, exch, level, (), rejects=rejects)
        else:
            update = BookUpdate(self.token, recv, exch, (), level, rejects=rejects)
        book.apply(update)
        if not cur and new > 0 and not rejects:
            self._level_added(msg.direction is Side.BID, t)
        return update

    def _level_added(self, is_bid: bool, t: int) -> None:
        """A new price level: if the window held `levels` exact levels, its worst one just fell
        out of view, so the edge moves up to the new `levels`-th level."""
        book, n = self.book, self.levels
        if is_bid:
            if t < self.bid_edge:
                self.beyond_view += 1
            if book.bid_depth() >= n:
                p = book.bid_at(n - 1)[0]
                if p >= self.bid_edge:
                    self.bid_edge = p
        else:
            if t > self.ask_edge:
                self.beyond_view += 1
            if book.ask_depth() >= n:
                p = book.ask_at(n - 1)[0]
                if p <= self.ask_edge:
                    self.ask_edge = p

    def _trade(self, msg: LobsterMessage, recv: int, exch: int) -> Trade:
        """ReadMe: execution of a sell (buy) limit order is a buyer (seller) initiated trade."""
        self.trades += 1
        aggressor = Side.BID if msg.direction is Side.ASK else Side.ASK
        return Trade(self.token, recv, exch, msg.price, msg.size, aggressor)

    def _track_submit(self, msg: LobsterMessage) -> None:
        if msg.order_id in self.orders:
            self.duplicate_ids += 1
        self.orders[msg.order_id] = (msg.direction, msg.price, msg.size)

    def _track_reduce(self, msg: LobsterMessage) -> None:
        rec = self.orders.get(msg.order_id)
        if rec is None:
            self.unknown_orders += 1
            return
        side, price, remaining = rec
        left = remaining - msg.size
        # a delete must take exactly what is left; other reductions must not take more
        moved = side is not msg.direction or price != msg.price
        if moved or left < 0 or (left and msg.type is MessageType.DELETE):
            self.order_mismatches += 1
        if msg.type is MessageType.DELETE or left <= 0:
            del self.orders[msg.order_id]
        else:
            self.orders[msg.order_id] = (side, price, left)

    # -- orderbook rows -------------------------------------------------------------------------

    def reconcile_from_row(self, row: LobsterRow) -> BookUpdate | None:
        """Take from the orderbook row exactly the levels the messages could not tell us.

        Run it after `on_message` with the row that follows that message. Per side:
        - a row level beyond the window edge entered view from below level `levels` (the level
          above it emptied): its size is taken from the row, even when our last-seen size agrees
          (`levels_taken`; `levels_corrected` counts the ones that differed);
        - a level we hold beyond the edge, within the row's range but absent from the row, went
          while out of view: dropped (`levels_dropped`); below the row's range we keep last-seen
          levels, unless the row shows the whole side, which proves them gone;
        - inside the edge nothing is ever written; a disagreement there is `divergent_levels`.
        Then the edge moves to the row's worst level (or the extreme when the row is not full).
        Returns the update applied, or None when the row added nothing.
        """
        tick = self.tick
        before = self.levels_taken + self.levels_dropped
        bids = self._reconcile_side(row.bids, True, tick)
        asks = self._reconcile_side(row.asks, False, tick)
        self._set_edges(row)
        if self.levels_taken + self.levels_dropped != before:
            self.reconciliations += 1
        if not bids and not asks:
            return None
        # the row's prices become ticks here, so one off the grid is refused and counted
        tb, fb = tick_levels(bids, tick)
        ta, fa = tick_levels(asks, tick)
        update = BookUpdate(
            self.token, self.book.last_recv_ns, self.book.last_exch_ns, tb, ta, rejects=fb | fa
        )
        self.book.apply(update)
        return update

    def _reconcile_side(
        self, levels: tuple[tuple[int, int], ...], is_bid: bool, tick: int
    ) -> list[tuple[int, int]]:
        book = self.book
        have = book.bids if is_bid else book.asks
        # orient prices so that "better" is always larger: exact iff key >= edge
        sign = 1 if is_bid else -1
        edge = self.bid_edge if is_bid else -self.ask_edge
        depth = book.bid_depth() if is_bid else book.ask_depth()
        at = book.bid_at if is_bid else book.ask_at
        n = self.levels
        if len(levels) == n <= depth:
            # Fast path, most rows: the whole row is inside the window and our n-th level is the
            # row's n-th. Then the row's n prices, all found in our book, are our top n.
            last = levels[-1][0] // tick
            if sign * last >= edge and at(n - 1)[0] == last:
                for px, qty in levels:
                    if have.get(px // tick) != qty:
                        break
                else:
                    return []
        changes: list[tuple[int, int]] = []
        shown: dict[int, int] = {}
        for px, qty in levels:
            t = px // tick
            shown[t] = qty
            cur = have.get(t, 0)
            if sign * t >= edge:
                if cur != qty:
                    self.divergent_levels += 1
                continue
            self.levels_taken += 1
            if cur != qty:
                self.levels_corrected += 1
                changes.append((px, qty))
        floor = sign * (levels[-1][0] // tick) if len(levels) == n else None
        for i in range(depth):
            t = at(i)[0]
            key = sign * t
            if floor is not None and key < floor:
                break
            if t in shown:
                continue
            if key >= edge:
                self.divergent_levels += 1
            else:
                self.levels_dropped += 1
                changes.append((t * tick, 0))
        return changes

    def _set_edges(self, row: LobsterRow) -> None:
        tick, n = self.tick, self.levels
        self.bid_edge = row.bids[-1][0] // tick if len(row.bids) >= n else 0
        self.ask_edge = row.asks[-1][0] // tick if len(row.asks) >= n else _ALL_ASKS

    def top_matches(self, row: LobsterRow) -> bool:
        """Whether our top `levels` levels equal the row's, both sides (the ground-truth check)."""
        tick, n = self.tick, self.levels
        bids, asks = self.book.levels(n)
        return bids == [(p // tick, q) for p, q in row.bids] and asks == [
            (p // tick, q) for p, q in row.asks
        ]

    def stats(self) -> dict[str, int]:
        """Counters for reports and tests."""
        return {
            "messages": self.messages,
            "trades": self.trades,
            "crosses": self.crosses,
            "open_orders": len(self.orders),
            "unknown_orders": self.unknown_orders,
            "order_mismatches": self.order_mismatches,
            "duplicate_ids": self.duplicate_ids,
            "beyond_view": self.beyond_view,
            "reconciliations": self.reconciliations,
            "levels_taken": self.levels_taken,
            "levels_corrected": self.levels_corrected,
            "levels_dropped": self.levels_dropped,
            "divergent_levels": self.divergent_levels,
            "bid_depth": self.book.bid_depth(),
            "ask_depth": self.book.ask_depth(),
        }


# -- zip replay shell --------------------------------------------------------------------------

_MEMBER = re.compile(
    r"(?:.*/)?(?P<symbol>[A-Za-z0-9.]+)_(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})_(?P<start>[0-9]+)_"
    r"(?P<end>[0-9]+)_(?P<kind>message|orderbook)_(?P<levels>[0-9]+)\.csv",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class LobsterSession:
    """What a sample's file names say: symbol, date, time window (ms after midnight), depth."""

    symbol: str
    date: dt.date
    start_ms: int
    end_ms: int
    levels: int
    message_member: str
    orderbook_member: str

    @property
    def midnight_ns(self) -> int:
        """The session's midnight in New York, in ns since the epoch.

        Message times are read as elapsed time since this midnight (NASDAQ ITCH stamps ns
        since midnight); the two differ only on DST-change days, which are Sundays.
        """
        local = dt.datetime(
            self.date.year, self.date.month, self.date.day, tzinfo=zoneinfo.ZoneInfo(_NEW_YORK)
        )
        since = local - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return since // dt.timedelta(microseconds=1) * 1000


def lobster_session(names: list[str]) -> LobsterSession:
    """Find the message/orderbook pair among zip member names. Raises ValueError when there is
    not exactly one matching pair (a replay cannot guess which one the caller meant)."""
    found: dict[tuple[str, str, str, str, str], dict[str, str]] = {}
    for name in names:
        m = _MEMBER.fullmatch(name)
        if m:
            key = (m["symbol"], m["date"], m["start"], m["end"], m["levels"])
            found.setdefault(key, {})[m["kind"]] = name
    pairs = [(k, v) for k, v in found.items() if len(v) == 2]
    if len(pairs) != 1:
        raise ValueError(f"expected one LOBSTER message/orderbook pair, found {len(pairs)}")
    (symbol, date, start, end, levels), members = pairs[0]
    return LobsterSession(
        symbol=symbol,
        date=dt.date.fromisoformat(date),
        start_ms=int(start),
        end_ms=int(end),
        levels=int(levels),
        message_member=members["message"],
        orderbook_member=members["orderbook"],
    )


def read_lobster_session(path: str | os.PathLike[str]) -> LobsterSession:
    with zipfile.ZipFile(path) as zf:
        return lobster_session(zf.namelist())


def iter_lobster_lines(path: str | os.PathLike[str]) -> Iterator[tuple[bytes, bytes]]:
    """(message line, orderbook line) pairs streamed from the zip, never extracting it. When one
    file is longer, the other side of the pair is b"", which its parser reports as Malformed."""
    with zipfile.ZipFile(path) as zf:
        session = lobster_session(zf.namelist())
        with zf.open(session.message_member) as mf, zf.open(session.orderbook_member) as of:
            yield from itertools.zip_longest(mf, of, fillvalue=b"")


def iter_lobster_zip(
    path: str | os.PathLike[str], *, token: int = 0, book: LobsterBook | None = None
) -> Iterator[MarketEvent]:
    """Replay a LOBSTER sample zip as market events, as fast as the consumer pulls them.

    `recv_ns` is the recorded time (ns after midnight): replay pacing is the caller's concern.
    `exch_ns` is that time on the session date in New York, in ns since the epoch.
    The first row starts the book (a snapshot); each later message yields its events and then,
    if levels entered view, the update `reconcile_from_row` took from its row. A malformed
    message line yields `Malformed` and a snapshot from its row (a lost event means a resync);
    a malformed row yields `Malformed` and the next good row reconciles instead.
    Pass `book` to read its counters afterwards; it must match the session
    (`read_lobster_session(path).midnight_ns`, `levels`).
    """
    session = read_lobster_session(path)
    if book is None:
        book = LobsterBook(
            lobster_instrument(session.symbol, token),
            levels=session.levels,
            midnight_ns=session.midnight_ns,
        )
    messages = LobsterMessageParser()
    rows = LobsterRowParser(session.levels)
    started = False
    last_ns = 0
    for mline, rline in iter_lobster_lines(path):
        msg = messages.parse_line(mline, last_ns)
        row = rows.parse_line(rline, last_ns)
        if isinstance(msg, Malformed):
            yield msg
            if isinstance(row, Malformed):
                yield row
            else:
                started = True
                yield from book.snapshot(row)
            continue
        last_ns = msg.time_ns
        if isinstance(row, Malformed):
            yield row
            if started:
                yield from book.on_message(msg)
            continue
        if not started:
            started = True
            yield from book.snapshot(row, msg)
            continue
        yield from book.on_message(msg)
        update = book.reconcile_from_row(row)
        if update is not None:
            yield update
