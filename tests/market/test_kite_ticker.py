"""The Kite ticker codec against packets built here from the documented layout.

The encoder below writes each field at the byte offset reference/india-market.md §4 gives for
it, with its own `struct` calls, so a decoder bug cannot cancel out against an encoder bug.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vajra.market.book import L2Book, Violation
from vajra.market.events import BookUpdate, Malformed, Quote
from vajra.market.feeds.kite_ticker import (
    INVALID_JSON,
    INVALID_ORDER_DATA,
    MAX_TOKENS_PER_CONNECTION,
    PACKET_HEADER_TRUNCATED,
    PACKET_OVERRUN,
    TEXT_NOT_OBJECT,
    TRAILING_BYTES,
    UNKNOWN_PACKET_LENGTH,
    UNKNOWN_TEXT_TYPE,
    KiteError,
    KiteEvent,
    KiteMessage,
    KiteMode,
    KiteOrderUpdate,
    KiteSubscriptions,
    KiteTick,
    KiteTickerParser,
    set_mode,
    subscribe,
    unsubscribe,
)
from vajra.market.instruments import Instrument, Segment

NS = 1_000_000_000
INDICES = 9

# --- test-side encoder: the documented layout, one field at a time ------------------------


def _u32(buf: bytearray, offset: int, value: int) -> None:
    struct.pack_into(">I", buf, offset, value)


def ltp_packet(token: int, last: int) -> bytes:
    b = bytearray(8)
    _u32(b, 0, token)
    _u32(b, 4, last)
    return bytes(b)


def index_packet(
    token: int,
    last: int,
    high: int,
    low: int,
    open_: int,
    close: int,
    change: int,
    exch_s: int | None = None,
) -> bytes:
    """28 bytes (index quote), or 32 (index full) when an exchange timestamp is given."""
    b = bytearray(28 if exch_s is None else 32)
    _u32(b, 0, token)
    _u32(b, 4, last)
    _u32(b, 8, high)
    _u32(b, 12, low)
    _u32(b, 16, open_)
    _u32(b, 20, close)
    struct.pack_into(">i", b, 24, change)
    if exch_s is not None:
        _u32(b, 28, exch_s)
    return bytes(b)


def quote_packet(t: KiteTick) -> bytes:
    b = bytearray(44)
    for offset, value in (
        (0, t.token),
        (4, t.last_price),
        (8, t.last_qty),
        (12, t.avg_price),
        (16, t.volume),
        (20, t.buy_qty),
        (24, t.sell_qty),
        (28, t.open),
        (32, t.high),
        (36, t.low),
        (40, t.close),
    ):
        _u32(b, offset, value)
    return bytes(b)


def full_packet(t: KiteTick) -> bytes:
    b = bytearray(184)
    b[:44] = quote_packet(t)
    _u32(b, 44, t.last_trade_ns // NS)
    _u32(b, 48, t.oi)
    _u32(b, 52, t.oi_day_high)
    _u32(b, 56, t.oi_day_low)
    _u32(b, 60, t.exch_ns // NS)
    for i, (price, qty, orders) in enumerate(t.bids + t.asks):
        at = 64 + 12 * i
        _u32(b, at, qty)
        _u32(b, at + 4, price)
        struct.pack_into(">H", b, at + 8, orders)
        b[at + 10 : at + 12] = b"\xaa\x55"  # padding: the decoder must skip it, not read it
    return bytes(b)


def frame(*packets: bytes) -> bytes:
    """`u16 packet_count`, then `u16 length` + bytes per packet."""
    out = bytearray(struct.pack(">H", len(packets)))
    for p in packets:
        out += struct.pack(">H", len(p)) + p
    return bytes(out)


def depth_levels(
    side: tuple[tuple[int, int, int], ...], tick_size: int
) -> tuple[tuple[tuple[int, int], ...], int]:
    """The book levels a depth side must become, written out here (not through the parser's
    helper): empty slots (0, 0) skipped, a zero price with a quantity dropped as BAD_PRICE, a
    price off the grid dropped as OFF_TICK, every other price as its tick index."""
    out: list[tuple[int, int]] = []
    rejects = 0
    for price, qty, _ in side:
        if (price, qty) == (0, 0):
            continue
        if price == 0:
            rejects |= Violation.BAD_PRICE
        elif price % tick_size:
            rejects |= Violation.OFF_TICK
        else:
            out.append((price // tick_size, qty))
    return tuple(out), int(rejects)


@dataclass(frozen=True)
class Packet:
    """A packet to send and the tick it must decode to."""

    kind: str  # ltp, index_quote, index_full, quote, full
    tick: KiteTick
    tick_size: int = 1  # the instrument's tick in paise, as the parser is told it

    def encode(self) -> bytes:
        t = self.tick
        if self.kind == "ltp":
            return ltp_packet(t.token, t.last_price)
        if self.kind in ("index_quote", "index_full"):
            exch_s = t.exch_ns // NS if self.kind == "index_full" else None
            return index_packet(
                t.token, t.last_price, t.high, t.low, t.open, t.close, t.net_change, exch_s
            )
        if self.kind == "quote":
            return quote_packet(t)
        return full_packet(t)

    def expected(self) -> list[KiteEvent]:
        """The tick, plus for a tradable full packet the book snapshot and the top of book."""
        t = self.tick
        if self.kind != "full" or t.segment == INDICES:
            return [t]
        bids, bid_rejects = depth_levels(t.bids, self.tick_size)
        asks, ask_rejects = depth_levels(t.asks, self.tick_size)
        (bp, bq, _), (ap, aq, _) = t.bids[0], t.asks[0]
        return [
            t,
            BookUpdate(
                t.token,
                t.recv_ns,
                t.exch_ns,
                bids,
                asks,
                snapshot=True,
                rejects=bid_rejects | ask_rejects,
            ),
            # the quote stays in paise, as sent
            Quote(t.token, t.recv_ns, t.exch_ns, bp, bq, ap, aq),
        ]


def scale_of(segment: int) -> int:
    """Divisors as the official clients apply them: CDS 1e7, BCD 1e4, everything else 100."""
    return {3: 10_000_000, 6: 10_000}.get(segment, 100)


# --- strategies ---------------------------------------------------------------------------

U16 = st.integers(0, 2**16 - 1)
U32 = st.integers(0, 2**32 - 1)
I32 = st.integers(-(2**31), 2**31 - 1)
RECV_NS = st.integers(0, 2**62)
ON_GRID = st.integers(0, 2**32 // 100 - 1).map(lambda k: k * 100)  # on every tick size used
LEVEL = st.one_of(
    st.just((0, 0, 0)),
    st.tuples(U32, U32, U16),
    st.tuples(U32, st.just(0), U16),
    st.tuples(ON_GRID, U32, U16),
)
TICK_SIZES = st.sampled_from([1, 5, 10, 100])
SIDE = st.tuples(LEVEL, LEVEL, LEVEL, LEVEL, LEVEL)


@st.composite
def packets(draw: st.DrawFn, recv_ns: int, kind: str | None = None, tick_size: int = 1) -> Packet:
    kind = kind or draw(st.sampled_from(["ltp", "index_quote", "index_full", "quote", "full"]))
    if kind.startswith("index"):
        segment = INDICES
    else:
        segment = draw(st.one_of(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9]), st.integers(0, 255)))
    token = (draw(st.integers(0, 2**24 - 1)) << 8) | segment
    scale = scale_of(segment)
    last = draw(U32)
    if kind == "ltp":
        return Packet(kind, KiteTick(token, segment, KiteMode.LTP, recv_ns, 0, scale, last))
    if kind.startswith("index"):
        full = kind == "index_full"
        return Packet(
            kind,
            KiteTick(
                token,
                segment,
                KiteMode.FULL if full else KiteMode.QUOTE,
                recv_ns,
                draw(U32) * NS if full else 0,
                scale,
                last,
                high=draw(U32),
                low=draw(U32),
                open=draw(U32),
                close=draw(U32),
                net_change=draw(I32),
            ),
        )
    close = draw(st.one_of(st.just(0), U32))
    quote = KiteTick(
        token,
        segment,
        KiteMode.QUOTE,
        recv_ns,
        0,
        scale,
        last,
        last_qty=draw(U32),
        avg_price=draw(U32),
        volume=draw(U32),
        buy_qty=draw(U32),
        sell_qty=draw(U32),
        open=draw(U32),
        high=draw(U32),
        low=draw(U32),
        close=close,
        net_change=last - close if close else 0,
    )
    if kind == "quote":
        return Packet(kind, quote)
    return Packet(
        kind,
        replace(
            quote,
            mode=KiteMode.FULL,
            exch_ns=draw(U32) * NS,
            last_trade_ns=draw(U32) * NS,
            oi=draw(U32),
            oi_day_high=draw(U32),
            oi_day_low=draw(U32),
            bids=draw(SIDE),
            asks=draw(SIDE),
        ),
        tick_size,
    )


def decode(
    data: bytes, recv_ns: int = 7, ticks: dict[int, int] | None = None
) -> tuple[KiteTickerParser, list[KiteEvent]]:
    parser = KiteTickerParser(ticks)
    parser.receive_binary(data, recv_ns)
    return parser, parser.events()


# --- decoding -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ltp", "index_quote", "index_full", "quote", "full"])
@given(data=st.data(), recv_ns=RECV_NS, tick_size=TICK_SIZES)
def test_every_mode_decodes_every_field_exactly(
    kind: str, data: st.DataObject, recv_ns: int, tick_size: int
) -> None:
    packet = data.draw(packets(recv_ns, kind, tick_size))
    parser, events = decode(frame(packet.encode()), recv_ns, {packet.tick.token: tick_size})
    assert events == packet.expected()
    assert parser.stats.packets == 1
    assert parser.stats.malformed == {}


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), recv_ns=RECV_NS, n=st.integers(0, 12), tick_size=TICK_SIZES)
def test_multi_packet_frame_decodes_in_order(
    data: st.DataObject, recv_ns: int, n: int, tick_size: int
) -> None:
    batch = [data.draw(packets(recv_ns, tick_size=tick_size)) for _ in range(n)]
    ticks = {p.tick.token: tick_size for p in batch}  # one size for all: tokens may repeat
    parser, events = decode(frame(*(p.encode() for p in batch)), recv_ns, ticks)
    assert events == [e for p in batch for e in p.expected()]
    assert parser.stats.packets == n
    assert parser.stats.malformed_total == 0


def test_encoder_writes_the_documented_lengths() -> None:
    """The decoder picks layouts by length, so the encoder's lengths must be the table's."""
    tick = KiteTick(
        257, 1, KiteMode.FULL, 0, 0, 100, 1, bids=((0, 0, 0),) * 5, asks=((1, 1, 1),) * 5
    )
    assert len(ltp_packet(1, 1)) == 8
    assert len(index_packet(9, 1, 1, 1, 1, 1, 1)) == 28
    assert len(index_packet(9, 1, 1, 1, 1, 1, 1, 0)) == 32
    assert len(quote_packet(tick)) == 44
    assert len(full_packet(tick)) == 184


def test_index_packet_orders_high_low_open_close() -> None:
    # NIFTY 50 (256265 = 1001 << 8 | 9) at 23406.85, written with a raw pack in wire order.
    raw = struct.pack(
        ">6IiI", 256265, 2340685, 2344195, 2329595, 2334445, 2326485, 8000, 1718176569
    )
    (tick,) = decode(frame(raw))[1]
    assert isinstance(tick, KiteTick)
    assert (tick.open, tick.high, tick.low, tick.close) == (2334445, 2344195, 2329595, 2326485)
    assert (tick.mode, tick.segment, tick.tradable, tick.price_scale) == (
        KiteMode.FULL,
        9,
        False,
        100,
    )
    assert tick.net_change == 8000 and tick.exch_ns == 1718176569 * NS


def test_negative_index_change_is_signed() -> None:
    (tick,) = decode(frame(index_packet(256265, 100, 100, 100, 100, 150, -50)))[1]
    assert isinstance(tick, KiteTick) and tick.net_change == -50 and tick.mode is KiteMode.QUOTE


@pytest.mark.parametrize(
    ("segment", "scale"), [(1, 100), (2, 100), (3, 10**7), (6, 10**4), (7, 100)]
)
def test_price_scale_follows_the_segment(segment: int, scale: int) -> None:
    (tick,) = decode(frame(ltp_packet(1234 << 8 | segment, 735_250_000)))[1]
    assert isinstance(tick, KiteTick)
    assert (tick.segment, tick.price_scale, tick.last_price) == (segment, scale, 735_250_000)


def _full_tick(
    bids: tuple[tuple[int, int, int], ...], asks: tuple[tuple[int, int, int], ...]
) -> KiteTick:
    return KiteTick(
        408065, 1, KiteMode.FULL, 5, 1_718_176_569 * NS, 100, 150_000, close=149_000,
        net_change=1000, bids=bids, asks=asks,
    )  # fmt: skip


def _instrument(tick: int) -> Instrument:
    return Instrument(
        token=408065, symbol="HDFCBANK", exchange="NSE", segment=Segment.NSE_EQ,
        price_decimals=2, tick=tick, lot=1,
    )  # fmt: skip


def test_full_depth_becomes_a_snapshot_and_a_quote() -> None:
    empty = (0, 0, 0)
    bids = ((149_990, 10, 2), (149_985, 0, 0), (0, 7, 1), empty, empty)
    asks = ((150_010, 4, 1), empty, empty, empty, empty)
    tick = _full_tick(bids, asks)
    events = decode(frame(full_packet(tick)), 5)[1]
    assert events == [
        tick,
        # empty slots dropped; a zero quantity at a real price is passed on for the book's
        # snapshot invariant to flag; a zero price with a quantity cannot become a tick, so it
        # is dropped and flagged in `rejects`. No tick size given: one paise, tick == price.
        BookUpdate(408065, 5, tick.exch_ns, ((149_990, 10), (149_985, 0)),
                   ((150_010, 4),), snapshot=True, rejects=Violation.BAD_PRICE),
        Quote(408065, 5, tick.exch_ns, 149_990, 10, 150_010, 4),
    ]  # fmt: skip
    # the book counts both: the dropped zero price, and the zero-size level it refuses
    book = L2Book(_instrument(1))
    snap = events[1]
    assert isinstance(snap, BookUpdate)
    assert book.apply(snap) == Violation.BAD_PRICE | Violation.BAD_QTY
    assert book.levels() == ([(149_990, 10)], [(150_010, 4)])
    assert book.violations()["BAD_PRICE"] == book.violations()["BAD_QTY"] == 1


def test_depth_levels_are_ticks_of_the_instruments_grid() -> None:
    """With the instrument's tick (5 paise here) the depth becomes tick indexes, price // 5;
    a price off that grid is dropped and flagged OFF_TICK; the quote stays in paise."""
    empty = (0, 0, 0)
    bids = ((149_990, 10, 2), (149_985, 0, 0), (149_980, 7, 1), empty, empty)
    asks = ((150_010, 4, 1), (150_015, 2, 1), empty, empty, empty)
    tick = _full_tick(bids, asks)
    events = decode(frame(full_packet(tick)), 5, {408065: 5})[1]
    assert events == [
        tick,
        BookUpdate(408065, 5, tick.exch_ns,
                   ((149_990 // 5, 10), (149_985 // 5, 0), (149_980 // 5, 7)),
                   ((150_010 // 5, 4), (150_015 // 5, 2)), snapshot=True),
        Quote(408065, 5, tick.exch_ns, 149_990, 10, 150_010, 4),
    ]  # fmt: skip
    snap = events[1]
    assert isinstance(snap, BookUpdate) and snap.rejects == 0
    assert snap.bids[0] == (29_998, 10) and snap.asks[0] == (30_002, 4)
    # a token the map does not name gets a tick of one paise: levels equal prices
    other = replace(tick, token=408066)
    events = decode(frame(full_packet(other)), 5, {408065: 5})[1]
    assert isinstance(events[1], BookUpdate)
    assert events[1].bids == ((149_990, 10), (149_985, 0), (149_980, 7))

    # off the 5-paise grid: 149,987 (bid) and 150,011 (ask) are dropped, not floored
    bids = ((149_990, 10, 2), (149_987, 3, 1), (149_985, 5, 1), empty, empty)
    asks = ((150_010, 4, 1), (150_011, 2, 1), empty, empty, empty)
    off = _full_tick(bids, asks)
    events = decode(frame(full_packet(off)), 5, {408065: 5})[1]
    assert events == [
        off,
        BookUpdate(408065, 5, off.exch_ns, ((29_998, 10), (29_997, 5)), ((30_002, 4),),
                   snapshot=True, rejects=Violation.OFF_TICK),
        Quote(408065, 5, off.exch_ns, 149_990, 10, 150_010, 4),
    ]  # fmt: skip
    snap = events[1]
    assert isinstance(snap, BookUpdate) and snap.rejects == Violation.OFF_TICK
    # and the book counts what the parser dropped
    book = L2Book(_instrument(5))
    assert book.apply(snap) == Violation.OFF_TICK
    assert book.levels() == ([(29_998, 10), (29_997, 5)], [(30_002, 4)])
    assert book.violations()["OFF_TICK"] == 1 and book.sane


def test_empty_book_still_yields_a_snapshot() -> None:
    empty = ((0, 0, 0),) * 5
    events = decode(frame(full_packet(_full_tick(empty, empty))), 5)[1]
    assert events[1:] == [
        BookUpdate(408065, 5, 1_718_176_569 * NS, (), (), snapshot=True),
        Quote(408065, 5, 1_718_176_569 * NS, 0, 0, 0, 0),
    ]


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff"])
def test_short_frames_are_heartbeats(data: bytes) -> None:
    parser, events = decode(data)
    assert events == []
    assert (parser.stats.heartbeats, parser.stats.binary_frames, parser.stats.malformed) == (
        1,
        1,
        {},
    )


def test_empty_frame_with_zero_count_is_not_an_error() -> None:
    parser, events = decode(b"\x00\x00")
    assert events == [] and parser.stats.heartbeats == 0 and parser.stats.malformed == {}


# --- malformed input ----------------------------------------------------------------------

A = ltp_packet(738561 << 8 | 1, 294070)
B = index_packet(256265, 2340685, 2344195, 2329595, 2334445, 2326485, 8000, 1718176569)


def _tokens_of(events: list[KiteEvent]) -> list[int]:
    return [e.token for e in events if isinstance(e, KiteTick)]


def _reasons(events: list[KiteEvent]) -> list[str]:
    return [e.reason for e in events if isinstance(e, Malformed)]


def test_unknown_length_is_skipped_and_framing_continues() -> None:
    for length in (0, 1, 7, 27, 64, 183, 185, 1000):
        parser, events = decode(frame(A, b"\x01" * length, B))
        assert _tokens_of(events) == [738561 << 8 | 1, 256265]
        assert _reasons(events) == [UNKNOWN_PACKET_LENGTH]
        assert parser.stats.malformed == {UNKNOWN_PACKET_LENGTH: 1}
        assert parser.stats.packets == 2


def test_packet_running_past_the_frame_keeps_the_packets_before_it() -> None:
    data = frame(A, B)[:-1]
    events = decode(data)[1]
    assert _tokens_of(events) == [738561 << 8 | 1] and _reasons(events) == [PACKET_OVERRUN]
    assert events[-1] == Malformed(7, PACKET_OVERRUN, len(data))


def test_count_larger_than_the_frame_holds() -> None:
    data = struct.pack(">H", 3) + frame(A, B)[2:]
    events = decode(data)[1]
    assert _tokens_of(events) == [738561 << 8 | 1, 256265]
    assert _reasons(events) == [PACKET_HEADER_TRUNCATED]


def test_count_smaller_than_the_frame_holds() -> None:
    data = struct.pack(">H", 1) + frame(A, B)[2:]
    parser, events = decode(data)
    assert _tokens_of(events) == [738561 << 8 | 1]
    assert parser.stats.malformed == {TRAILING_BYTES: 1}


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=50)
@given(data=st.data(), n=st.integers(1, 6))
def test_truncation_at_every_byte_keeps_whole_packets(data: st.DataObject, n: int) -> None:
    batch = [data.draw(packets(3)) for _ in range(n)]
    whole = frame(*(p.encode() for p in batch))
    ends = []  # where each packet ends in the frame
    pos = 2
    for p in batch:
        pos += 2 + len(p.encode())
        ends.append(pos)
    for cut in range(len(whole) + 1):
        parser, events = decode(whole[:cut], 3)
        complete = [p for p, end in zip(batch, ends, strict=True) if end <= cut]
        if cut < 2:
            assert events == [] and parser.stats.heartbeats == 1
            continue
        assert [e for e in events if not isinstance(e, Malformed)] == [
            e for p in complete for e in p.expected()
        ]
        assert parser.stats.malformed_total == (0 if cut == len(whole) else 1)


FRAME_EVENT_TYPES = (KiteTick, BookUpdate, Quote, Malformed)


def _check_accounting(parser: KiteTickerParser, events: list[KiteEvent]) -> None:
    assert all(isinstance(e, FRAME_EVENT_TYPES) for e in events)
    assert sum(isinstance(e, Malformed) for e in events) == parser.stats.malformed_total
    assert sum(isinstance(e, KiteTick) for e in events) == parser.stats.packets


@settings(max_examples=500)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    parser, events = decode(data)
    _check_accounting(parser, events)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(
    data=st.data(),
    n=st.integers(1, 5),
    edits=st.lists(
        st.tuples(st.integers(0, 2**16), st.integers(0, 255), st.sampled_from("sid")), max_size=6
    ),
)
def test_mutated_frames_never_raise(
    data: st.DataObject, n: int, edits: list[tuple[int, int, str]]
) -> None:
    buf = bytearray(frame(*(data.draw(packets(1)).encode() for _ in range(n))))
    for at, byte, op in edits:
        at %= len(buf) + 1
        if op == "s" and at < len(buf):
            buf[at] = byte
        elif op == "i":
            buf.insert(at, byte)
        elif buf and at < len(buf):
            del buf[at]
    parser, events = decode(bytes(buf))
    _check_accounting(parser, events)


def test_parser_keeps_going_after_bad_frames() -> None:
    parser = KiteTickerParser()
    for bad in (b"\x00\x05\x00", frame(b"x" * 12), b"\x00\x01\xff\xff"):
        parser.receive_binary(bad, 1)
    parser.receive_binary(frame(A), 2)
    events = parser.events()
    assert isinstance(events[-1], KiteTick) and events[-1].recv_ns == 2
    assert parser.stats.malformed == {
        PACKET_HEADER_TRUNCATED: 1,
        UNKNOWN_PACKET_LENGTH: 1,
        PACKET_OVERRUN: 1,
    }
    assert parser.events() == []


# --- text frames --------------------------------------------------------------------------

ORDER = {
    "order_id": "250611000123456",
    "exchange_order_id": "1100000012345678",
    "status": "COMPLETE",
    "filled_quantity": 1,
    "pending_quantity": 0,
    "average_price": 2940.7,
}


def text_events(text: str) -> tuple[KiteTickerParser, list[KiteEvent]]:
    parser = KiteTickerParser()
    parser.receive_text(text, 11)
    return parser, parser.events()


def test_order_update() -> None:
    parser, events = text_events(json.dumps({"type": "order", "id": "", "data": ORDER}))
    assert events == [KiteOrderUpdate(11, ORDER)]
    assert parser.stats.text_frames == 1


def test_error_and_message() -> None:
    assert text_events('{"type":"error","data":"Invalid mode"}')[1] == [
        KiteError(11, "Invalid mode")
    ]
    assert text_events('{"type":"message","data":"hello"}')[1] == [KiteMessage(11, "hello")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", INVALID_JSON),
        ("", INVALID_JSON),
        ("[" * 100_000, INVALID_JSON),
        ("1" * 5000, INVALID_JSON),
        ("[1, 2]", TEXT_NOT_OBJECT),
        ('"order"', TEXT_NOT_OBJECT),
        ('{"type": "tick", "data": {}}', UNKNOWN_TEXT_TYPE),
        ('{"data": {}}', UNKNOWN_TEXT_TYPE),
        ('{"type": ["order"]}', UNKNOWN_TEXT_TYPE),
        ('{"type": "order"}', INVALID_ORDER_DATA),
        ('{"type": "order", "data": [1]}', INVALID_ORDER_DATA),
    ],
)
def test_bad_text_is_malformed(text: str, reason: str) -> None:
    parser, events = text_events(text)
    assert events == [Malformed(11, reason, len(text))]
    assert parser.stats.malformed == {reason: 1}


@settings(max_examples=300)
@given(
    st.one_of(
        st.text(max_size=200),
        st.from_regex(r'\{"type": ?"(order|error|message|x)".*', fullmatch=True),
    )
)
def test_arbitrary_text_never_raises(text: str) -> None:
    parser, events = text_events(text)
    assert len(events) == 1
    assert isinstance(events[0], KiteOrderUpdate | KiteError | KiteMessage | Malformed)
    assert parser.stats.malformed_total == sum(isinstance(e, Malformed) for e in events)


# --- requests and subscriptions -----------------------------------------------------------


def test_request_frames() -> None:
    assert json.loads(subscribe([408065, 884737])) == {"a": "subscribe", "v": [408065, 884737]}
    assert json.loads(unsubscribe([408065])) == {"a": "unsubscribe", "v": [408065]}
    assert json.loads(set_mode("full", [408065])) == {"a": "mode", "v": ["full", [408065]]}
    assert json.loads(set_mode(KiteMode.LTP, (1, 1, 2))) == {"a": "mode", "v": ["ltp", [1, 2]]}


@pytest.mark.parametrize(
    "tokens",
    [
        [],
        [0],
        [-1],
        [2**32],
        [True],
        ["408065"],
        [1.0],
        list(range(1, MAX_TOKENS_PER_CONNECTION + 2)),
    ],
)
def test_bad_token_lists_are_caller_errors(tokens: list[object]) -> None:
    with pytest.raises(ValueError):
        subscribe(tokens)  # type: ignore[arg-type]


def test_one_request_may_carry_the_whole_limit() -> None:
    frame_ = subscribe(range(1, MAX_TOKENS_PER_CONNECTION + 1))
    assert len(json.loads(frame_)["v"]) == MAX_TOKENS_PER_CONNECTION == 3000


def test_unknown_mode_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        set_mode("depth", [1])


def test_subscriptions_enforce_the_connection_limit() -> None:
    subs = KiteSubscriptions()
    subs.subscribe(range(1, 3000))  # 2999 tokens
    with pytest.raises(ValueError, match="3001"):
        subs.subscribe([5000, 5001])
    assert len(subs) == 2999 and 5000 not in subs
    subs.subscribe([1, 5000])  # one of them already counted: 3000 exactly
    assert len(subs) == 3000
    subs.unsubscribe([1])
    subs.subscribe([6000])
    assert len(subs) == 3000


def test_set_mode_needs_a_subscription() -> None:
    subs = KiteSubscriptions()
    subs.subscribe([1])
    with pytest.raises(ValueError, match="not subscribed"):
        subs.set_mode("full", [1, 2])
    assert subs.modes() == {1: KiteMode.QUOTE}


def test_resubscribe_frames_restore_every_mode() -> None:
    subs = KiteSubscriptions()
    assert subs.resubscribe_frames() == []
    subs.subscribe([1, 2, 3, 4])
    subs.set_mode("full", [2])
    subs.set_mode("ltp", [3])
    assert [json.loads(f) for f in subs.resubscribe_frames()] == [
        {"a": "subscribe", "v": [1, 2, 3, 4]},
        {"a": "mode", "v": ["ltp", [3]]},
        {"a": "mode", "v": ["quote", [1, 4]]},
        {"a": "mode", "v": ["full", [2]]},
    ]
    subs.subscribe([2])  # a new subscribe starts the token in quote mode again
    assert subs.mode(2) is KiteMode.QUOTE
    subs.unsubscribe([1, 2, 3, 4])
    assert subs.resubscribe_frames() == []


class ServerModel:
    """What the Kite server holds for one connection, driven by request frames only."""

    def __init__(self) -> None:
        self.modes: dict[int, KiteMode] = {}

    def apply(self, text: str) -> None:
        msg = json.loads(text)
        if msg["a"] == "subscribe":
            self.modes.update(dict.fromkeys(msg["v"], KiteMode.QUOTE))
        elif msg["a"] == "unsubscribe":
            for t in msg["v"]:
                self.modes.pop(t, None)
        else:
            mode, toks = msg["v"]
            for t in toks:
                assert t in self.modes
                self.modes[t] = KiteMode(mode)


OPS = st.lists(
    st.tuples(
        st.sampled_from(["subscribe", "unsubscribe", "ltp", "quote", "full"]),
        st.lists(st.integers(1, 40), min_size=1, max_size=8),
    ),
    max_size=30,
)


@given(OPS)
def test_resubscribing_a_fresh_connection_reproduces_the_state(
    ops: list[tuple[str, list[int]]],
) -> None:
    subs = KiteSubscriptions()
    live = ServerModel()
    for op, toks in ops:
        if op == "subscribe":
            live.apply(subs.subscribe(toks))
        elif op == "unsubscribe":
            live.apply(subs.unsubscribe(toks))
        else:
            toks = [t for t in toks if t in subs]
            if toks:
                live.apply(subs.set_mode(op, toks))
    fresh = ServerModel()
    for text in subs.resubscribe_frames():
        fresh.apply(text)
    assert fresh.modes == live.modes == subs.modes()
