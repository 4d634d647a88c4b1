"""Binance market data (USD-M futures and spot): parser, book sync, clock offset and replay.

The first three are sans-I/O, in the manner of the websockets protocol objects: they own no
socket, no file and no clock, so one code path serves the live websocket shell, the capture
replay and the tests.

- `BinanceParser`: one message in (a capture line `<local_receive_ns> <json>`, or a websocket
  text frame plus the receive time), one `MarketEvent` out. Bad input becomes a counted
  `Malformed` event, never an exception, because a feed thread that dies on one bad frame
  takes the book down with it.
- `BinanceBookSync`: Binance's documented procedure for keeping a local book from a REST
  snapshot plus the diff stream, with gaps as events. It owns the `L2Book` it maintains.
- `ClockOffsetEstimator`: how far the local clock is from Binance's, so latency figures can
  subtract it instead of assuming the two clocks agree (the sample recorder ran ~1.27 s behind).
- `BinanceReplay`: the thin I/O shell for captures: gzip lines in, paced events out.

Ownership (free-threaded build): every object here is owned by the one thread that feeds it
(the feed/Oracle thread); none is guarded by a lock and none may be shared.

Capture format and rebuild rules: `../shared/data/README.md` (Binance section) and Binance's
"How to manage a local order book correctly" (spot and USD-M futures API docs).
"""

from __future__ import annotations

import enum
import gzip
import json
import math
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

from vajra.market.book import L2Book, Violation
from vajra.market.events import (
    BookUpdate,
    Malformed,
    MarketEvent,
    Quote,
    Resynced,
    SequenceGap,
    Side,
    Trade,
)
from vajra.market.instruments import Instrument, Segment

# -- instruments ------------------------------------------------------------------------------

#: Tokens for the Binance replay instruments. Binance has no numeric instrument ids; these sit
#: far above Kite's token range so a mixed master (NSE live + crypto replays) cannot collide.
USDM_BTCUSDT_TOKEN = 9_100_000_001
SPOT_BTCUSDT_TOKEN = 9_100_000_002

EXCHANGE_USDM = "BINANCE-USDM"
EXCHANGE_SPOT = "BINANCE"


def binance_usdm_btcusdt(token: int = USDM_BTCUSDT_TOKEN) -> Instrument:
    """USD-M perpetual BTCUSDT as traded in the 2024 captures: tick 0.1 USDT, lot 0.001 BTC.

    Prices are held in cents (2 decimals, tick = 10) rather than in tenths so that a quote
    one decimal finer than the tick is still representable and shows up as the book's
    OFF_TICK violation instead of being indistinguishable from garbage.
    """
    return Instrument(
        token=token,
        symbol="BTCUSDT",
        exchange=EXCHANGE_USDM,
        segment=Segment.CRYPTO,
        price_decimals=2,
        tick=10,
        qty_decimals=3,
        lot=1,
        name="BTC",
    )


def binance_spot_btcusdt(token: int = SPOT_BTCUSDT_TOKEN) -> Instrument:
    """Spot BTCUSDT as traded in the 2024 captures: tick 0.01 USDT, order step 0.00001 BTC.

    Spot is not on the futures grid: its prices use the full cent (61837.63 is a real quote),
    and resting quantities carry up to 6 decimals (e.g. 244.566304) from orders placed under
    older, finer step sizes. The quantity scale is therefore Binance's own 8 wire decimals,
    with the current order step (0.00001 = 1000 units) as the lot.
    """
    return Instrument(
        token=token,
        symbol="BTCUSDT",
        exchange=EXCHANGE_SPOT,
        segment=Segment.CRYPTO,
        price_decimals=2,
        tick=1,
        qty_decimals=8,
        lot=1000,
        name="BTC",
    )


# -- parser -----------------------------------------------------------------------------------


class Reason(enum.StrEnum):
    """Why a message became `Malformed`: the fixed vocabulary `BinanceParser.malformed` counts
    (a closed set, so a dashboard can alarm on any one of them)."""

    NO_RECV_TIME = "no receive time"  # capture line without a `<ns> ` prefix
    BAD_JSON = "bad json"  # not JSON, truncated JSON, not UTF-8
    NOT_OBJECT = "not an object"
    UNKNOWN_STREAM = "unknown stream"
    WRONG_SYMBOL = "wrong symbol"
    MISSING_FIELD = "missing field"
    BAD_FIELD_TYPE = "bad field type"
    BAD_NUMBER = "bad number"  # a price/qty string that is not a decimal number
    OFF_GRID = "price off decimals"  # more decimals than the instrument's scale holds
    NEGATIVE = "negative number"
    BAD_IDS = "bad update ids"  # U > u, or a negative id


class _Bad(Exception):
    """Internal: carries a `Reason` out of the field converters to `BinanceParser.parse`."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason = reason


_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_MS = 1_000_000
#: Converted price/qty strings kept per parser; the book's top levels repeat all day, and a
#: dict hit (~30 ns) replaces a decimal parse (~0.6 µs) on most levels of every diff.
_CACHE_MAX = 1 << 16
_BAD_PRICE, _OFF_TICK = int(Violation.BAD_PRICE), int(Violation.OFF_TICK)
_TICK = itemgetter(0)
_MAX_NS_DIGITS = 20

_DEPTH, _TRADE, _TICKER = 1, 2, 3


def split_capture_line(line: bytes | str) -> tuple[int, bytes | str] | None:
    """`b"<local_receive_ns> <json>"` -> (ns, json payload); None when the prefix is missing.

    Kept apart from parsing so the replay can schedule a line by its recorded time before it
    pays for the JSON decode.
    """
    if isinstance(line, bytes):
        head_b, sep_b, payload_b = line.partition(b" ")
        if not sep_b or not head_b.isdigit() or len(head_b) > _MAX_NS_DIGITS:
            return None
        return int(head_b), payload_b
    head, sep, payload = line.partition(" ")
    if not sep or not head.isascii() or not head.isdigit() or len(head) > _MAX_NS_DIGITS:
        return None
    return int(head), payload


def _int(v: Any) -> int:
    # bool is an int subclass; `true` where an id belongs is a type error, not id 1.
    if type(v) is not int:
        raise _Bad(Reason.BAD_FIELD_TYPE)
    return v


def _ms_to_ns(v: Any) -> int:
    ms = _int(v)
    if ms < 0:
        raise _Bad(Reason.BAD_FIELD_TYPE)
    return ms * _MS


def _best_first(
    levels: tuple[tuple[int, int], ...], *, bids: bool
) -> tuple[tuple[tuple[int, int], ...], bool]:
    """Levels best first (the BookUpdate convention), and whether their ticks are unique, i.e.
    the update is `ordered` and the book may merge it into a read before applying it. Binance
    lists USD-M bids ascending (worst first) and asks ascending: the sort by tick is a C-level
    timsort over int keys, linear on such runs; the uniqueness test is one C-level set. A list
    with a repeated tick keeps its order (the last one wins when applied) and is not ordered.
    """
    if len(levels) < 2:
        return levels, True
    out = tuple(sorted(levels, key=_TICK, reverse=bids))
    if len(set(map(_TICK, out))) == len(out):
        return out, True
    if (levels[0][0] < levels[-1][0]) == bids:
        return levels[::-1], False
    return levels, False


class BinanceParser:
    """Binance combined-stream messages and the REST depth snapshot -> `MarketEvent`s.

    Input: `parse_line(line)` for a capture line (the event's `recv_ns` is the recorded one),
    or `parse(payload, recv_ns)` for a live frame (the shell passes `perf_counter_ns()` taken
    when the frame arrived). Output: exactly one event per call:

    - `<sym>@depth[@<n>ms]` diff -> `BookUpdate(first_id=U, last_id=u, prev_id=pu)`; spot has
      no `pu`, so `prev_id=-1`. `BinanceBookSync` decides whether the book may apply it.
    - the REST snapshot (no envelope, has `lastUpdateId`) -> `BookUpdate(snapshot=True,
      last_id=lastUpdateId)`.
    - `<sym>@trade` -> `Trade`; `m` is true when the buyer was the resting maker, so the
      seller crossed the spread: aggressor `Side.ASK`; otherwise `Side.BID`.
    - `<sym>@bookTicker` -> `Quote(update_id=u)`.
    - anything else -> `Malformed(reason)`, counted in `malformed[reason]`.

    Clocks: `exch_ns` is the event time `E` (ms -> ns), falling back to the transaction time `T`
    only where a message has no `E`, and 0 where it has neither (spot bookTicker, spot REST
    snapshot). `E` is the stamp Binance puts on the message as it leaves the gateway; `T` is
    the matching-engine time, earlier by 0 to 5+ ms (USD-M depth: `E - T` >= 5 ms on 17% of
    diffs). Choosing `E` makes `recv - exch` = clock offset + network delay with the smallest
    and steadiest delay, which is what `ClockOffsetEstimator` and latency attribution need;
    trade analytics that want the match time should note it is up to a few ms before `E`.

    Prices and quantities are converted with the instrument's `price_units`/`qty_units`:
    exact integers, never floats; a value with more decimals than the instrument's scale is
    `Malformed(OFF_GRID)`, a negative one `Malformed(NEGATIVE)`. Book levels become ticks here:
    a level priced zero or off the tick grid is dropped from the update and its bit set in
    `BookUpdate.rejects` (`Violation.BAD_PRICE`/`OFF_TICK`), which the book counts as its own.
    """

    __slots__ = (
        "_price_cache",
        "_qty_cache",
        "_streams",
        "_sym",
        "_tick_cache",
        "instrument",
        "malformed",
        "parsed",
        "token",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.token = instrument.token
        sym = instrument.symbol.lower()
        self._sym = sym
        self._streams: dict[str, int] = {
            f"{sym}@depth": _DEPTH,
            f"{sym}@trade": _TRADE,
            f"{sym}@bookTicker": _TICKER,
        }
        for speed in ("0ms", "100ms", "250ms", "500ms", "1000ms"):
            self._streams[f"{sym}@depth@{speed}"] = _DEPTH
        self._price_cache: dict[str, int] = {}
        self._qty_cache: dict[str, int] = {}
        self._tick_cache: dict[str, int] = {}
        #: events produced, and Malformed events per `Reason`
        self.parsed = 0
        self.malformed: dict[str, int] = dict.fromkeys(Reason, 0)

    # -- entry points -------------------------------------------------------------------------

    def parse_line(self, line: bytes | str) -> MarketEvent:
        """One capture line (with or without its trailing newline) -> one event."""
        split = split_capture_line(line)
        if split is None:
            return self.reject(Reason.NO_RECV_TIME, 0, len(line))
        recv_ns, payload = split
        return self.parse(payload, recv_ns)

    def parse(self, payload: bytes | str, recv_ns: int) -> MarketEvent:
        """One JSON message received at `recv_ns` -> one event. Never raises."""
        try:
            msg = json.loads(payload)
        except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError too
            return self.reject(Reason.BAD_JSON, recv_ns, len(payload))
        if type(msg) is not dict:
            return self.reject(Reason.NOT_OBJECT, recv_ns, len(payload))
        try:
            ev = self._message(msg, recv_ns)
        except _Bad as e:
            return self.reject(e.reason, recv_ns, len(payload))
        except KeyError:
            return self.reject(Reason.MISSING_FIELD, recv_ns, len(payload))
        except (TypeError, ValueError, AttributeError, IndexError):
            # wrong container types: a level that is not a pair, a dict where a list belongs
            return self.reject(Reason.BAD_FIELD_TYPE, recv_ns, len(payload))
        self.parsed += 1
        return ev

    def reject(self, reason: Reason, recv_ns: int, size: int) -> Malformed:
        """Count and build a `Malformed`; shells use it for input they cannot even frame."""
        self.malformed[reason] += 1
        self.parsed += 1
        return Malformed(recv_ns, reason, size)

    # -- messages -----------------------------------------------------------------------------

    def _message(self, msg: dict[str, Any], recv_ns: int) -> MarketEvent:
        stream = msg.get("stream")
        if stream is None:
            if "lastUpdateId" in msg:
                return self._snapshot(msg, recv_ns)
            raise _Bad(Reason.UNKNOWN_STREAM)
        if type(stream) is not str:
            raise _Bad(Reason.BAD_FIELD_TYPE)
        kind = self._streams.get(stream, 0)
        if not kind:
            at = stream.find("@")
            ours = stream[:at].lower() == self._sym if at >= 0 else False
            raise _Bad(Reason.UNKNOWN_STREAM if ours else Reason.WRONG_SYMBOL)
        data = msg["data"]
        if type(data) is not dict:
            raise _Bad(Reason.NOT_OBJECT)
        if kind == _DEPTH:
            return self._depth(data, recv_ns)
        if kind == _TRADE:
            return self._trade(data, recv_ns)
        return self._ticker(data, recv_ns)

    def _depth(self, d: dict[str, Any], recv_ns: int) -> BookUpdate:
        first, last = _int(d["U"]), _int(d["u"])
        pu = d.get("pu")
        prev = -1 if pu is None else _int(pu)
        if first < 0 or last < first or prev < -1:
            raise _Bad(Reason.BAD_IDS)
        bids, asks, rejects, ordered = self._sides(d["b"], d["a"])
        return BookUpdate(
            self.token,
            recv_ns,
            self._exch_ns(d),
            bids,
            asks,
            False,
            first,
            last,
            prev,
            rejects,
            ordered,
        )

    def _snapshot(self, d: dict[str, Any], recv_ns: int) -> BookUpdate:
        last = _int(d["lastUpdateId"])
        if last < 0:
            raise _Bad(Reason.BAD_IDS)
        bids, asks, rejects, ordered = self._sides(d["bids"], d["asks"])
        return BookUpdate(
            self.token, recv_ns, self._exch_ns(d), bids, asks, True, 0, last, -1, rejects, ordered
        )

    def _trade(self, d: dict[str, Any], recv_ns: int) -> Trade:
        m = d["m"]
        if m is not True and m is not False:
            raise _Bad(Reason.BAD_FIELD_TYPE)
        return Trade(
            self.token,
            recv_ns,
            self._exch_ns(d),
            self._price(d["p"]),
            self._qty(d["q"]),
            Side.ASK if m else Side.BID,
            _int(d["t"]),
        )

    def _ticker(self, d: dict[str, Any], recv_ns: int) -> Quote:
        return Quote(
            self.token,
            recv_ns,
            self._exch_ns(d),
            self._price(d["b"]),
            self._qty(d["B"]),
            self._price(d["a"]),
            self._qty(d["A"]),
            _int(d["u"]),
        )

    # -- fields -------------------------------------------------------------------------------

    @staticmethod
    def _exch_ns(d: dict[str, Any]) -> int:
        e = d.get("E")
        if e is None:
            e = d.get("T")
            if e is None:
                return 0
        return _ms_to_ns(e)

    def _sides(
        self, bid_rows: Any, ask_rows: Any
    ) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], int, bool]:
        """Both sides of a diff or snapshot as BookUpdate wants them: tick levels best first,
        the rejected levels' bits, and whether the update is ordered (no tick repeated)."""
        bids, fb = self._levels(bid_rows)
        asks, fa = self._levels(ask_rows)
        bids, ob = _best_first(bids, bids=True)
        asks, oa = _best_first(asks, bids=False)
        return bids, asks, fb | fa, ob and oa

    def _levels(self, rows: Any) -> tuple[tuple[tuple[int, int], ...], int]:
        """Book levels -> (tick, qty) pairs, and the `Violation` bits of the levels dropped
        because their price is zero or off the tick grid (see `vajra.market.book.tick_levels`).
        """
        if type(rows) is not list:
            raise _Bad(Reason.BAD_FIELD_TYPE)
        # The per-level loop is the parser's hot spot (60 levels per USD-M diff on average):
        # cache lookups are inlined rather than going through `_tick`/`_qty`. A cached tick
        # below 1 is minus the Violation bit that rejects its price.
        tc, qc = self._tick_cache, self._qty_cache
        out: list[tuple[int, int]] = []
        flags = 0
        for row in rows:
            if type(row) is not list or len(row) != 2:
                raise _Bad(Reason.BAD_FIELD_TYPE)
            p, q = row
            t = tc.get(p)
            if t is None:
                t = self._tick(p)
            qv = qc.get(q)
            if qv is None:
                qv = self._convert(q, self.instrument.qty_units, qc)
            if t > 0:
                out.append((t, qv))
            else:
                flags |= -t
        return tuple(out), flags

    def _tick(self, text: Any) -> int:
        pv = self._price(text)
        tick = self.instrument.tick
        t = pv // tick
        if pv <= 0 or t * tick != pv:
            t = -(_BAD_PRICE if pv <= 0 else _OFF_TICK)
        if len(self._tick_cache) >= _CACHE_MAX:
            self._tick_cache.clear()
        self._tick_cache[text] = t
        return t

    def _price(self, text: Any) -> int:
        v = self._price_cache.get(text)
        if v is None:
            v = self._convert(text, self.instrument.price_units, self._price_cache)
        return v

    def _qty(self, text: Any) -> int:
        v = self._qty_cache.get(text)
        if v is None:
            v = self._convert(text, self.instrument.qty_units, self._qty_cache)
        return v

    @staticmethod
    def _convert(text: Any, units: Callable[[str], int], cache: dict[str, int]) -> int:
        if type(text) is not str:
            raise _Bad(Reason.BAD_FIELD_TYPE)
        if not text.isascii():  # int() would accept non-ASCII digits such as "٣"
            raise _Bad(Reason.BAD_NUMBER)
        try:
            v = units(text)
        except ValueError:
            # parse_scaled refuses both garbage and excess decimals; tell them apart.
            raise _Bad(Reason.OFF_GRID if _DECIMAL.fullmatch(text) else Reason.BAD_NUMBER) from None
        if v < 0:
            raise _Bad(Reason.NEGATIVE)
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[text] = v
        return v


# -- book sync --------------------------------------------------------------------------------


class BinanceMarket(enum.Enum):
    """Which continuity rule the diff stream follows (the two products differ)."""

    USDM = "usdm"  # futures: every diff names its predecessor (`pu`)
    SPOT = "spot"  # spot: ids are contiguous per symbol (`U == previous u + 1`)


class SyncState(enum.IntEnum):
    AWAIT_SNAPSHOT = 0  # start: diffs are buffered until a snapshot arrives
    AWAIT_BRIDGE = 1  # snapshot applied; waiting for the diff that continues it
    LIVE = 2  # every diff continues the previous one and is applied
    RESYNC = 3  # continuity lost: diffs are buffered until the next snapshot


SyncEvent = BookUpdate | SequenceGap | Resynced

_GAP_REASON = {
    BinanceMarket.USDM: "pu != previous u",
    BinanceMarket.SPOT: "U != previous u + 1",
}
_NO_EVENTS: tuple[SyncEvent, ...] = ()


class BinanceBookSync:
    """Keeps one `L2Book` equal to Binance's book, per Binance's local-order-book procedure.

    Feed it every depth `BookUpdate` (diffs and snapshots) in arrival order with `receive`; it
    applies what may be applied and returns, in order, the events that happened: the
    `BookUpdate`s it applied to the book (a snapshot included), `SequenceGap` when continuity
    breaks, and `Resynced` when the book is trustworthy again. The returned updates describe the
    book's whole history, so a consumer that replays them onto another book gets the same book.

    The procedure (quoting Binance, with `L` = the snapshot's `lastUpdateId`):

    1. "Buffer the events you receive from the stream" until a snapshot is available.
    2. "Drop any event where u is < lastUpdateId in the snapshot" (spot: `u <= L`, because
       spot bridges on `L + 1`).
    3. "The first processed event should have U <= lastUpdateId AND u >= lastUpdateId"
       (spot: `U <= L + 1 <= u`). USD-M also accepts `pu <= L < U`: `L` then lies in an id
       range the `pu` chain proves held no change to this book (USD-M ids are shared with other
       streams, so consecutive diffs skip ids), so the diff continues the snapshot exactly. A
       diff with `u >= L` that bridges by neither rule means the buffer began after `L`:
       changes in between are lost, which is a gap.
    4. "While listening to the stream, each new event's pu should be equal to the previous
       event's u, otherwise initialize the process from step 3" (spot: `U == previous u + 1`).

    On a gap the sync emits `SequenceGap`, marks the book (`Violation.SEQUENCE_GAP` stays in
    `book.state`, so Sonar's zero-trust gate closes), stops applying diffs and buffers them,
    and waits for a snapshot: one arriving through `receive` (the live shell fetches a new REST
    snapshot when it sees the gap), or one handed to `resync`. The sync then restarts at step 2
    with the buffered diffs and emits `Resynced` once a diff bridges the new snapshot.

    Resync in a replay: a capture holds one snapshot, taken at the start. After a gap there is
    no second one, and the diff stream alone cannot rebuild the book: a diff lists only the
    levels that changed, so a level deleted or changed in the lost diff and quiet afterwards
    keeps its stale quantity forever, invisible to any check (a phantom level may never even
    cross). "Healing" from later diffs would reopen the gate on a book known to be possibly
    wrong, so this class never does it: a replay whose capture has no later snapshot stays in
    RESYNC, gate closed, for the rest of the file. A replay driver that has a reference (a
    second, gap-free rebuild of the same capture, as the tests do) builds a snapshot
    `BookUpdate` from it and calls `resync`.

    Before the first sync the book carries `SEQUENCE_GAP` in its state (so the gate is closed on
    an empty book) without counting a gap episode: not having started is not a loss.
    """

    __slots__ = (
        "_buffer",
        "_snap_recv_ns",
        "_spot",
        "applied",
        "book",
        "buffer_overflows",
        "dropped",
        "gaps",
        "last_id",
        "market",
        "resyncs",
        "snapshot_id",
        "snapshots_ignored",
        "state",
    )

    def __init__(self, book: L2Book, market: BinanceMarket, *, max_buffer: int = 100_000) -> None:
        """`max_buffer` bounds the diffs held while waiting for a snapshot (oldest go first; if
        one of them was needed, step 3 finds the hole and reports a gap)."""
        if max_buffer < 1:
            raise ValueError("max_buffer must be >= 1")
        self.book = book
        self.market = market
        self._spot = market is BinanceMarket.SPOT
        self._buffer: deque[BookUpdate] = deque(maxlen=max_buffer)
        self.state = SyncState.AWAIT_SNAPSHOT
        #: `u` of the last diff applied (the snapshot's `L` right after a snapshot)
        self.last_id = 0
        #: `lastUpdateId` of the snapshot the book was last built from
        self.snapshot_id = 0
        self._snap_recv_ns = 0
        self.applied = 0
        self.dropped = 0  # diffs older than the snapshot (step 2)
        self.gaps = 0
        self.resyncs = 0  # times the book became trustworthy, the first sync included
        self.snapshots_ignored = 0  # snapshots that arrived while LIVE
        self.buffer_overflows = 0
        book.state |= Violation.SEQUENCE_GAP  # untrusted until synced; not a counted episode

    @property
    def synced(self) -> bool:
        return self.state is SyncState.LIVE

    def receive(self, update: BookUpdate) -> tuple[SyncEvent, ...]:
        """One depth update in arrival order -> the events it caused (often just itself).

        A snapshot arriving while LIVE is ignored (counted): the book already has continuity,
        and rebasing on a snapshot that is older than the book would lose it. An update for
        another instrument raises ValueError: that is a wiring bug, not feed data.
        """
        if update.token != self.book.instrument.token:
            raise ValueError(
                f"update for token {update.token} fed to the book of {self.book.instrument.token}"
            )
        if update.snapshot:
            if self.state is SyncState.LIVE:
                self.snapshots_ignored += 1
                return _NO_EVENTS
            return self._rebase(update)
        state = self.state
        if state is SyncState.LIVE:
            if (
                update.first_id == self.last_id + 1
                if self._spot
                else update.prev_id == self.last_id
            ):
                self._apply(update)
                return (update,)
            expected = self.last_id + 1 if self._spot else self.last_id
            got = update.first_id if self._spot else update.prev_id
            return (self._gap(update, expected, got, _GAP_REASON[self.market]),)
        if state is SyncState.AWAIT_BRIDGE:
            return self._bridge(update)
        if len(self._buffer) == self._buffer.maxlen:
            self.buffer_overflows += 1
        self._buffer.append(update)
        return _NO_EVENTS

    def resync(self, snapshot: BookUpdate) -> tuple[SyncEvent, ...]:
        """Rebuild from `snapshot` now, whatever the state (the replay driver's entry point, and
        the live shell's after fetching a REST snapshot). Buffered diffs are replayed against
        it; `Resynced` is among the returned events once a diff bridges it."""
        if not snapshot.snapshot:
            raise ValueError("resync needs a snapshot BookUpdate (snapshot=True)")
        if snapshot.token != self.book.instrument.token:
            raise ValueError(
                f"snapshot for token {snapshot.token} fed to the book of {self.book.instrument.token}"
            )
        return self._rebase(snapshot)

    # -- internals ----------------------------------------------------------------------------

    def _apply(self, u: BookUpdate) -> None:
        self.book.apply(u)
        self.last_id = u.last_id
        self.applied += 1

    def _gap(self, u: BookUpdate, expected: int, got: int, reason: str) -> SequenceGap:
        self.state = SyncState.RESYNC
        self.gaps += 1
        self.book.mark_gap()
        self._buffer.append(u)  # it may continue the next snapshot
        return SequenceGap(u.token, u.recv_ns, expected, got, reason)

    def _rebase(self, snap: BookUpdate) -> tuple[SyncEvent, ...]:
        book = self.book
        book.apply(snap)  # replaces every level; keeps the gap bit
        book.state |= Violation.SEQUENCE_GAP  # no continuity until a diff bridges it
        self.snapshot_id = self.last_id = snap.last_id
        self._snap_recv_ns = snap.recv_ns
        self.state = SyncState.AWAIT_BRIDGE
        events: list[SyncEvent] = [snap]
        pending, self._buffer = self._buffer, deque(maxlen=self._buffer.maxlen)
        for u in pending:
            events.extend(self.receive(u))
        return tuple(events)

    def _bridge(self, u: BookUpdate) -> tuple[SyncEvent, ...]:
        snap = self.snapshot_id
        need = snap + 1 if self._spot else snap
        if u.last_id < need:
            self.dropped += 1
            return _NO_EVENTS
        if u.first_id <= need or (not self._spot and 0 <= u.prev_id <= snap < u.first_id):
            self._apply(u)
            self.state = SyncState.LIVE
            self.resyncs += 1
            self.book.mark_resync()
            # trustworthy from the later of the two arrivals that made it so
            at_ns = max(u.recv_ns, self._snap_recv_ns)
            return (u, Resynced(u.token, at_ns, snap))
        got = u.first_id if self._spot else u.prev_id
        return (self._gap(u, need, got, "first diff after the snapshot starts past it"),)


# -- clock offset -----------------------------------------------------------------------------


class ClockOffsetEstimator:
    """Estimates `offset = local clock - exchange clock` from (recv_ns, exch_ns) pairs.

    Model: a message stamped `exch` by Binance arrives at local time
        recv = exch + offset + delay,   delay >= 0 (network, kernel, recorder),
    so every pair bounds the offset from above: `offset <= recv - exch`. The tightest bound is
    the pair with the least delay, hence the estimate is the minimum of `recv - exch` over a
    sliding window; it exceeds the true offset by the window's smallest delay (plus up to 1 ms
    of Binance's millisecond truncation of `E`, which makes `exch` early). Nothing here assumes
    `recv >= exch`: with the recorder ~1.27 s behind, every difference is negative and so is
    the offset. A minimum is robust to delay spikes (they only raise samples) but not to a
    message stamped in the future; that, or a clock step, shows up as instability.

    Window: `buckets` consecutive buckets of `bucket_ns` of local time that had samples. Each
    bucket keeps its own minimum; the estimate is the smallest, and the spread (largest bucket
    minimum - smallest) is the stability measure: on a steady clock and route every second sees
    a near-minimal delay, so the per-bucket minima agree to about a millisecond; a clock step,
    a drifting clock or a route change pulls them apart. `stable` is what Sonar gates on
    ("clock offset stable"): a full window whose spread is within `tolerance_ns`.

    The estimator is clock-agnostic: fed the recorded receive times of a capture it measures
    the recorder's clock; fed a replay's remapped `perf_counter_ns` it measures that mapping.
    """

    __slots__ = (
        "_cur_bucket",
        "_cur_min",
        "_minima",
        "_win_max",
        "_win_min",
        "bucket_ns",
        "buckets",
        "samples",
        "tolerance_ns",
    )

    def __init__(
        self,
        *,
        bucket_ns: int = 1_000_000_000,
        buckets: int = 10,
        tolerance_ns: int = 3_000_000,
    ) -> None:
        """Defaults: a 10 s window of 1 s buckets; 3 ms tolerance covers the 1 ms truncation of
        `E` plus normal route jitter (the USD-M capture never exceeds 1.1 ms, spot 2.4 ms)."""
        if bucket_ns <= 0 or buckets < 2 or tolerance_ns < 0:
            raise ValueError("need bucket_ns > 0, buckets >= 2, tolerance_ns >= 0")
        self.bucket_ns = bucket_ns
        self.buckets = buckets
        self.tolerance_ns = tolerance_ns
        self._minima: deque[int] = deque(maxlen=buckets)  # completed buckets' minima
        self._cur_bucket = 0
        self._cur_min = 0
        self._win_min = 0
        self._win_max = 0
        self.samples = 0

    def add(self, recv_ns: int, exch_ns: int) -> None:
        """One message's local receive time and exchange time; `exch_ns <= 0` (the venue sent
        no time) is ignored."""
        if exch_ns <= 0:
            return
        d = recv_ns - exch_ns
        b = recv_ns // self.bucket_ns
        if self.samples == 0:
            self._cur_bucket, self._cur_min = b, d
        elif b > self._cur_bucket:
            self._minima.append(self._cur_min)
            self._win_min = min(self._minima)
            self._win_max = max(self._minima)
            self._cur_bucket, self._cur_min = b, d
        elif d < self._cur_min:  # same bucket, or a receive time that went backwards
            self._cur_min = d
        self.samples += 1

    @property
    def offset_ns(self) -> int | None:
        """Estimated local - exchange (ns); None before the first sample."""
        if not self.samples:
            return None
        if not self._minima:
            return self._cur_min
        return min(self._win_min, self._cur_min)

    @property
    def spread_ns(self) -> int | None:
        """Spread of the per-bucket minima over the window; None before two buckets closed."""
        if len(self._minima) < 2:
            return None
        return self._win_max - self._win_min

    @property
    def stable(self) -> bool:
        spread = self.spread_ns
        return (
            spread is not None and len(self._minima) == self.buckets and spread <= self.tolerance_ns
        )

    def to_exchange_ns(self, recv_ns: int) -> int | None:
        """A local time expressed on the exchange clock."""
        off = self.offset_ns
        return None if off is None else recv_ns - off

    def delay_ns(self, recv_ns: int, exch_ns: int) -> int | None:
        """One message's delay above the window's least delay (>= 0 for samples in the
        window): what latency code may use instead of `recv_ns - exch_ns`."""
        off = self.offset_ns
        return None if off is None or exch_ns <= 0 else recv_ns - exch_ns - off


# -- replay shell -----------------------------------------------------------------------------


class BinanceReplay:
    """Plays a gzip capture back as events, as fast as possible or at the recorded pace.

    `speed = 0`: no pacing; each event's `recv_ns` is `clock()` when its line was parsed.
    `speed > 0`: the line recorded `dt` after the first one is delivered at
    `start + dt / speed` on the monotonic `clock` (`perf_counter_ns`), sleeping for long waits
    and spinning for the last `spin_ns` (sleep overshoots by ~50-100 µs on Linux; the spin does
    not). The event's `recv_ns` is that scheduled time, so the engine's latency arithmetic on
    `perf_counter_ns` works as live; if the consumer falls behind, events are delivered late,
    keep their scheduled `recv_ns` (queueing counts as latency, as it would live) and the worst
    lateness is in `max_late_ns`. In every mode `recv_ns <= clock()` when the event is seen.

    The recorded receive time is kept: `records()` yields `(recorded_ns, event)` (-1 when the
    line had no time prefix); iterating the replay yields the events alone. Each iteration
    reopens the file and restarts the schedule. `clock` and `sleep` are injectable for tests.
    """

    __slots__ = (
        "_clock",
        "_sleep",
        "max_late_ns",
        "parser",
        "path",
        "speed",
        "spin_ns",
        "start_ns",
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        instrument: Instrument,
        speed: float = 0.0,
        *,
        clock: Callable[[], int] = time.perf_counter_ns,
        sleep: Callable[[float], None] = time.sleep,
        spin_ns: int = 200_000,
    ) -> None:
        if not (math.isfinite(speed) and speed >= 0):
            raise ValueError(f"speed must be 0 (unpaced) or a finite positive factor, got {speed}")
        self.path = path
        self.speed = speed
        self.parser = BinanceParser(instrument)
        self.spin_ns = spin_ns
        self._clock = clock
        self._sleep = sleep
        #: `clock()` when the first paced line was scheduled (0 before, and when unpaced)
        self.start_ns = 0
        self.max_late_ns = 0

    def __iter__(self) -> Iterator[MarketEvent]:
        for _, ev in self.records():
            yield ev

    def records(self) -> Iterator[tuple[int, MarketEvent]]:
        clock, parser, speed = self._clock, self.parser, self.speed
        first = 0
        started = False
        self.start_ns = 0
        self.max_late_ns = 0
        with gzip.open(self.path, "rb") as f:
            for raw in f:
                line = raw.rstrip(b"\r\n")
                split = split_capture_line(line)
                if split is None:
                    yield -1, parser.reject(Reason.NO_RECV_TIME, clock(), len(line))
                    continue
                recorded, payload = split
                if speed == 0:
                    yield recorded, parser.parse(payload, clock())
                    continue
                if not started:
                    started, self.start_ns, first = True, clock(), recorded
                dt = recorded - first
                target = self.start_ns + (dt if speed == 1.0 else int(dt / speed))
                ev = parser.parse(payload, target)  # decode while waiting, not after
                self._wait_until(target)
                yield recorded, ev

    def _wait_until(self, target: int) -> None:
        clock = self._clock
        now = clock()
        remaining = target - now
        if remaining < 0:
            if -remaining > self.max_late_ns:
                self.max_late_ns = -remaining
            return
        if remaining > self.spin_ns:
            self._sleep((remaining - self.spin_ns) / 1e9)
        while clock() < target:
            pass
