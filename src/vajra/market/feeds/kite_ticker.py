"""Kite Connect v3 ticker protocol, sans-I/O: websocket messages in, events out, requests as text.

Like `websockets.protocol.Protocol`, `KiteTickerParser` owns no socket and no clock. The I/O
shell (`kite_ws.py`) hands it each websocket message with the `time.perf_counter_ns()` at which
it arrived (`receive_binary` / `receive_text`) and then drains `events()`. Tests and replays
drive the same object with recorded bytes, so the decoder that runs live is the one tested.

Why no generator parser (websockets reads its stream with `yield from read_exact(n)`): the
websocket layer already delivers whole messages, so a Kite frame is never split across calls
and every length can be checked against `len(frame)` up front.

Wire format (reference/india-market.md §4; the official clients pykiteconnect `_parse_binary`,
gokiteconnect `parsePacket` and kiteconnectjs `parseBinary` agree on it):
- "server frames shorter than 2 bytes are heartbeats: ignore" (counted here, no event);
- a binary frame is `u16 packet_count`, then per packet `u16 length` + `length` bytes, all
  big-endian; the packet's layout is chosen by its length alone: 8 ltp, 28 index quote,
  32 index full, 44 quote, 184 full (the clients label index packets quote and full by
  length too). No client or document defines a 64-byte packet, so
  64, like every other length, is counted as malformed and skipped;
- `segment = instrument_token & 0xFF`; 9 is indices (not tradable, no depth);
- prices are integers in 1/100 rupee, except CDS (segment 3, 1/10^7) and BCD (segment 6,
  1/10^4). Vajra keeps them as those integers and puts the divisor on the tick as
  `price_scale`, so no float is ever made from a price;
- text messages are JSON objects `{"type": "order" | "error" | "message", "data": ...}`.

Bad input is an event, never an exception: each problem is counted per reason in
`KiteParserStats.malformed` and emitted as `vajra.market.events.Malformed`. The framing is
walked once; a packet whose length matches no layout is skipped and the walk goes on (its
length prefix still frames the next packet), while a length that runs past the frame or a
count the frame cannot hold ends the walk, keeping every packet decoded before it.

Ownership (style item 7): a parser and a `KiteSubscriptions` belong to one thread, the one
running the connection's event loop; neither holds a lock.
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vajra.market.book import tick_levels
from vajra.market.events import BookUpdate, Malformed, Quote

#: "You can subscribe for up to 3000 instruments on a single WebSocket connection."
MAX_TOKENS_PER_CONNECTION = 3000

SEGMENT_NSE = 1
SEGMENT_NFO = 2
SEGMENT_CDS = 3
SEGMENT_BSE = 4
SEGMENT_BFO = 5
SEGMENT_BCD = 6
SEGMENT_MCX = 7
SEGMENT_MCXSX = 8
SEGMENT_INDICES = 9

#: Price units per rupee by segment; every segment not listed uses paise (100).
PRICE_SCALE_PAISE = 100
PRICE_SCALE_BY_SEGMENT: dict[int, int] = {SEGMENT_CDS: 10_000_000, SEGMENT_BCD: 10_000}

# Malformed reasons (keys of KiteParserStats.malformed, `Malformed.reason` values). The event's
# `size` is the message's length, except for unknown_packet_length where it is the packet's.
PACKET_HEADER_TRUNCATED = "packet_header_truncated"  # count claims more packets than bytes left
PACKET_OVERRUN = "packet_overrun"  # a packet's length runs past the end of the frame
UNKNOWN_PACKET_LENGTH = "unknown_packet_length"  # framed correctly, but no layout has it
TRAILING_BYTES = "trailing_bytes"  # bytes left after `packet_count` packets
INVALID_JSON = "invalid_json"
TEXT_NOT_OBJECT = "text_not_object"
UNKNOWN_TEXT_TYPE = "unknown_text_type"
INVALID_ORDER_DATA = "invalid_order_data"  # an order update whose `data` is not an object


class KiteMode(enum.StrEnum):
    """Streaming modes; the value is the string the `mode` request carries."""

    LTP = "ltp"
    QUOTE = "quote"
    FULL = "full"


DEPTH_LEVELS = 5

LTP_LENGTH = 8
INDEX_QUOTE_LENGTH = 28
INDEX_FULL_LENGTH = 32
QUOTE_LENGTH = 44
FULL_LENGTH = 184

_NS = 1_000_000_000
_U16 = struct.Struct(">H")
# token, last_price
_LTP = struct.Struct(">2I")
# token, last_price, high, low, open, close, net_change (signed)
_INDEX_QUOTE = struct.Struct(">6Ii")
# as index quote, then exchange timestamp (epoch seconds)
_INDEX_FULL = struct.Struct(">6IiI")
# token, last_price, last_qty, avg_price, volume, buy_qty, sell_qty, open, high, low, close
_QUOTE = struct.Struct(">11I")
# quote fields, last_trade_time, oi, oi_day_high, oi_day_low, exchange timestamp, then ten depth
# entries (five bids, then five asks) of qty, price, orders and two bytes of padding
_FULL = struct.Struct(">16I" + "IIH2x" * (2 * DEPTH_LEVELS))
_BID_FIELDS = range(16, 16 + 3 * DEPTH_LEVELS, 3)
_ASK_FIELDS = range(16 + 3 * DEPTH_LEVELS, 16 + 6 * DEPTH_LEVELS, 3)

type DepthLevel = tuple[int, int, int]
"""(price, qty, orders) of one depth entry (the wire sends qty first); an empty slot is all 0."""


@dataclass(frozen=True, slots=True)
class KiteTick:
    """One decoded packet, every field in the instrument's integer units (prices / price_scale).

    Fields the packet's mode does not carry are 0 (and `bids`/`asks` empty). `net_change` is
    the wire's signed "price change" for index packets; for quote and full packets, which do
    not carry one, it is `last_price - close` when `close` is known (non-zero), else 0.
    `exch_ns` and `last_trade_ns` are the exchange's epoch-second stamps in ns (0 if absent).
    """

    token: int
    segment: int
    mode: KiteMode
    recv_ns: int
    exch_ns: int
    price_scale: int
    last_price: int
    last_qty: int = 0
    avg_price: int = 0
    volume: int = 0
    buy_qty: int = 0
    sell_qty: int = 0
    open: int = 0
    high: int = 0
    low: int = 0
    close: int = 0
    net_change: int = 0
    last_trade_ns: int = 0
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    bids: tuple[DepthLevel, ...] = ()
    asks: tuple[DepthLevel, ...] = ()

    @property
    def tradable(self) -> bool:
        """Indices have a value, not an order book: no depth, no orders."""
        return self.segment != SEGMENT_INDICES


@dataclass(frozen=True, slots=True)
class KiteOrderUpdate:
    """An order postback pushed on the ticker socket; `data` is the payload as the JSON gave it.

    The order codec validates its fields: the ticker only guarantees it is a JSON object.
    """

    recv_ns: int
    data: dict[str, object]


@dataclass(frozen=True, slots=True)
class KiteError:
    """`{"type": "error"}`: the server's complaint (usually a string), e.g. a bad request."""

    recv_ns: int
    data: object


@dataclass(frozen=True, slots=True)
class KiteMessage:
    """`{"type": "message"}`: a broker notice, surfaced for logs and the cockpit."""

    recv_ns: int
    data: object


type KiteEvent = (
    KiteTick | BookUpdate | Quote | KiteOrderUpdate | KiteError | KiteMessage | Malformed
)


@dataclass(slots=True)
class KiteParserStats:
    """What the parser has seen; `malformed` counts problems per reason (see the constants)."""

    binary_frames: int = 0
    text_frames: int = 0
    heartbeats: int = 0
    packets: int = 0
    malformed: dict[str, int] = field(default_factory=dict)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())


def _index_tick(v: tuple[int, ...], mode: KiteMode, recv_ns: int, exch_ns: int) -> KiteTick:
    """Index packets order the day's range high, low, open, close on the wire."""
    segment = v[0] & 0xFF
    return KiteTick(
        v[0],
        segment,
        mode,
        recv_ns,
        exch_ns,
        PRICE_SCALE_BY_SEGMENT.get(segment, PRICE_SCALE_PAISE),
        v[1],
        high=v[2],
        low=v[3],
        open=v[4],
        close=v[5],
        net_change=v[6],
    )


class KiteTickerParser:
    """Decoder for what the Kite ticker sends. Call `receive_*` per message, then `events()`.

    Never raises on wire input: what it cannot use is counted in `stats` and emitted as
    `Malformed`. For a full packet of a tradable segment it emits, in order, the `KiteTick`,
    a snapshot `BookUpdate` of the five-level depth and a `Quote` of the top level.
    """

    __slots__ = ("_events", "_ticks", "stats")

    def __init__(self, ticks: Mapping[int, int] | None = None) -> None:
        """`ticks`: tick size per instrument token in wire price units (paise for equity and
        F&O), from the instrument master, so depth levels become tick indexes of each
        instrument's grid. A token without an entry gets a tick of one wire unit."""
        self._events: list[KiteEvent] = []
        self._ticks: Mapping[int, int] = ticks if ticks is not None else {}
        self.stats = KiteParserStats()

    def events(self) -> list[KiteEvent]:
        """Return the events decoded since the last call, oldest first, and forget them."""
        out = self._events
        self._events = []
        return out

    def _malformed(self, recv_ns: int, reason: str, size: int) -> None:
        counts = self.stats.malformed
        counts[reason] = counts.get(reason, 0) + 1
        self._events.append(Malformed(recv_ns, reason, size))

    def receive_binary(self, frame: bytes, recv_ns: int) -> None:
        """Decode one binary websocket message; `recv_ns` is when its last byte arrived."""
        stats = self.stats
        stats.binary_frames += 1
        end = len(frame)
        if end < 2:
            stats.heartbeats += 1
            return
        out = self._events
        (count,) = _U16.unpack_from(frame, 0)
        pos = 2
        for _ in range(count):
            if pos + 2 > end:
                self._malformed(recv_ns, PACKET_HEADER_TRUNCATED, end)
                return
            (length,) = _U16.unpack_from(frame, pos)
            start = pos + 2
            pos = start + length
            if pos > end:
                self._malformed(recv_ns, PACKET_OVERRUN, end)
                return
            if length == FULL_LENGTH:
                self._full(frame, start, recv_ns)
            elif length == QUOTE_LENGTH:
                v = _QUOTE.unpack_from(frame, start)
                token = v[0]
                segment = token & 0xFF
                close = v[10]
                out.append(
                    KiteTick(
                        token,
                        segment,
                        KiteMode.QUOTE,
                        recv_ns,
                        0,
                        PRICE_SCALE_BY_SEGMENT.get(segment, PRICE_SCALE_PAISE),
                        v[1],
                        v[2],
                        v[3],
                        v[4],
                        v[5],
                        v[6],
                        v[7],
                        v[8],
                        v[9],
                        close,
                        v[1] - close if close else 0,
                    )
                )
            elif length == LTP_LENGTH:
                token, last = _LTP.unpack_from(frame, start)
                segment = token & 0xFF
                out.append(
                    KiteTick(
                        token,
                        segment,
                        KiteMode.LTP,
                        recv_ns,
                        0,
                        PRICE_SCALE_BY_SEGMENT.get(segment, PRICE_SCALE_PAISE),
                        last,
                    )
                )
            elif length == INDEX_FULL_LENGTH:
                v = _INDEX_FULL.unpack_from(frame, start)
                out.append(_index_tick(v, KiteMode.FULL, recv_ns, v[7] * _NS))
            elif length == INDEX_QUOTE_LENGTH:
                v = _INDEX_QUOTE.unpack_from(frame, start)
                out.append(_index_tick(v, KiteMode.QUOTE, recv_ns, 0))
            else:
                self._malformed(recv_ns, UNKNOWN_PACKET_LENGTH, length)
                continue
            stats.packets += 1
        if pos != end:
            self._malformed(recv_ns, TRAILING_BYTES, end)

    def _full(self, frame: bytes, start: int, recv_ns: int) -> None:
        v = _FULL.unpack_from(frame, start)
        token = v[0]
        segment = token & 0xFF
        close = v[10]
        exch_ns = v[15] * _NS
        bids = tuple([(v[i + 1], v[i], v[i + 2]) for i in _BID_FIELDS])
        asks = tuple([(v[i + 1], v[i], v[i + 2]) for i in _ASK_FIELDS])
        out = self._events
        out.append(
            KiteTick(
                token,
                segment,
                KiteMode.FULL,
                recv_ns,
                exch_ns,
                PRICE_SCALE_BY_SEGMENT.get(segment, PRICE_SCALE_PAISE),
                v[1],
                v[2],
                v[3],
                v[4],
                v[5],
                v[6],
                v[7],
                v[8],
                v[9],
                close,
                v[1] - close if close else 0,
                v[11] * _NS,
                v[12],
                v[13],
                v[14],
                bids,
                asks,
            )
        )
        if segment == SEGMENT_INDICES:
            return
        # An entry with price 0 and qty 0 is an empty slot (a thin book), not a level. Any
        # other entry is passed on: a zero-qty level at a real price reaches the book, whose
        # snapshot invariant flags it, and a price off the grid (or a zero price with a
        # quantity) is dropped and flagged in `rejects`, instead of this decoder hiding it.
        tick = self._ticks.get(token, 1)
        tb, fb = tick_levels([(p, q) for p, q, _ in bids if p or q], tick)
        ta, fa = tick_levels([(p, q) for p, q, _ in asks if p or q], tick)
        out.append(BookUpdate(token, recv_ns, exch_ns, tb, ta, snapshot=True, rejects=fb | fa))
        bid = bids[0]
        ask = asks[0]
        out.append(Quote(token, recv_ns, exch_ns, bid[0], bid[1], ask[0], ask[1]))

    def receive_text(self, text: str, recv_ns: int) -> None:
        """Decode one text websocket message (order updates, errors, broker messages)."""
        self.stats.text_frames += 1
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError):
            # ValueError covers JSONDecodeError and ints past the str->int digit limit;
            # RecursionError is what deeply nested arrays raise.
            self._malformed(recv_ns, INVALID_JSON, len(text))
            return
        if not isinstance(msg, dict):
            self._malformed(recv_ns, TEXT_NOT_OBJECT, len(text))
            return
        kind = msg.get("type")
        data = msg.get("data")
        if kind == "order":
            if isinstance(data, dict):
                self._events.append(KiteOrderUpdate(recv_ns, data))
            else:
                self._malformed(recv_ns, INVALID_ORDER_DATA, len(text))
        elif kind == "error":
            self._events.append(KiteError(recv_ns, data))
        elif kind == "message":
            self._events.append(KiteMessage(recv_ns, data))
        else:
            self._malformed(recv_ns, UNKNOWN_TEXT_TYPE, len(text))


# Requests. These validate what the caller passes: a bad token list is a bug in the caller,
# so it raises ValueError here rather than becoming a request Kite would reject or ignore.


def _tokens(tokens: Iterable[int]) -> list[int]:
    out = list(dict.fromkeys(tokens))
    if not out:
        raise ValueError("no instrument tokens given")
    for t in out:
        if isinstance(t, bool) or not isinstance(t, int) or not 0 < t <= 0xFFFFFFFF:
            raise ValueError(f"instrument token must be an int in 1..2**32-1, got {t!r}")
    if len(out) > MAX_TOKENS_PER_CONNECTION:
        raise ValueError(
            f"{len(out)} tokens in one request; a connection takes at most "
            f"{MAX_TOKENS_PER_CONNECTION}"
        )
    return out


def _request(action: str, value: object) -> str:
    return json.dumps({"a": action, "v": value}, separators=(",", ":"))


def subscribe(tokens: Iterable[int]) -> str:
    """The text frame subscribing `tokens` (Kite streams new subscriptions in quote mode)."""
    return _request("subscribe", _tokens(tokens))


def unsubscribe(tokens: Iterable[int]) -> str:
    """The text frame unsubscribing `tokens`."""
    return _request("unsubscribe", _tokens(tokens))


def set_mode(mode: KiteMode | str, tokens: Iterable[int]) -> str:
    """The text frame switching `tokens` to `mode` ("ltp", "quote" or "full")."""
    return _request("mode", [KiteMode(mode).value, _tokens(tokens)])


class KiteSubscriptions:
    """What one connection is subscribed to, token -> mode, so a new connection can restore it.

    Kite forgets subscriptions with the connection. The shell sends `resubscribe_frames()` on
    every connect; the request methods update the state and return the frame to send now.
    They enforce the per-connection limit of `MAX_TOKENS_PER_CONNECTION` and leave the state
    unchanged when they raise.
    """

    __slots__ = ("_modes",)

    def __init__(self) -> None:
        self._modes: dict[int, KiteMode] = {}

    def __len__(self) -> int:
        return len(self._modes)

    def __contains__(self, token: object) -> bool:
        return token in self._modes

    def mode(self, token: int) -> KiteMode:
        """The mode `token` streams in; KeyError if it is not subscribed."""
        return self._modes[token]

    def modes(self) -> dict[int, KiteMode]:
        """A copy of the token -> mode table, in subscription order."""
        return dict(self._modes)

    def subscribe(self, tokens: Iterable[int]) -> str:
        """Record `tokens` in quote mode, as Kite starts them (as pykiteconnect records them)."""
        toks = _tokens(tokens)
        added = sum(1 for t in toks if t not in self._modes)
        if len(self._modes) + added > MAX_TOKENS_PER_CONNECTION:
            raise ValueError(
                f"subscribing {added} more tokens would make {len(self._modes) + added} on one "
                f"connection; the limit is {MAX_TOKENS_PER_CONNECTION}"
            )
        frame = _request("subscribe", toks)
        for t in toks:
            self._modes[t] = KiteMode.QUOTE
        return frame

    def unsubscribe(self, tokens: Iterable[int]) -> str:
        toks = _tokens(tokens)
        frame = _request("unsubscribe", toks)
        for t in toks:
            self._modes.pop(t, None)
        return frame

    def set_mode(self, mode: KiteMode | str, tokens: Iterable[int]) -> str:
        """Switch subscribed `tokens` to `mode`; a token not subscribed is a ValueError.

        Kite's reply to a mode for an unsubscribed token is undocumented, and recording it
        here would resubscribe it on the next connect, so it is refused instead.
        """
        m = KiteMode(mode)
        toks = _tokens(tokens)
        missing = [t for t in toks if t not in self._modes]
        if missing:
            raise ValueError(f"set_mode for tokens not subscribed: {missing[:10]}")
        frame = _request("mode", [m.value, toks])
        for t in toks:
            self._modes[t] = m
        return frame

    def resubscribe_frames(self) -> list[str]:
        """Frames restoring this state on a fresh connection: one subscribe, then one mode
        frame per mode in use (quote included, so nothing rests on the server's default)."""
        if not self._modes:
            return []
        frames = [_request("subscribe", list(self._modes))]
        for m in KiteMode:
            group = [t for t, tm in self._modes.items() if tm is m]
            if group:
                frames.append(_request("mode", [m.value, group]))
        return frames
