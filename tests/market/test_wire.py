"""The market-event wire codec: exact round trips for every event (a 1500-level snapshot too,
through a ring as frames), every malformed input a WireError naming what is wrong, and fuzzing
that arbitrary bytes, truncations and corruptions of valid messages raise WireError and nothing
else."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.market import wire
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
from vajra.market.wire import VERSION, WireError, decode_event, encode_event
from vajra.shm.frames import FrameReader, FrameWriter
from vajra.shm.ring import Ring
from vajra.shm.segment import new_run_id

I64 = st.integers(-(2**63), 2**63 - 1)
LEVELS = st.lists(st.tuples(I64, I64), max_size=40).map(tuple)
TEXT = st.text(max_size=80)

NIFTY = 256265
T0 = 1_718_000_000_123_456_789  # an exchange timestamp, ns since the epoch
R0 = 73_512_004_117  # a perf_counter_ns receive time

BOOK = BookUpdate(
    NIFTY,
    R0,
    T0,
    tuple((2_345_000 - 5 * i, 75 * (i + 1)) for i in range(20)),
    tuple((2_345_005 + 5 * i, 50 * (i + 2)) for i in range(20)),
    snapshot=False,
    first_id=9_000_001,
    last_id=9_000_007,
    prev_id=9_000_000,
    rejects=8,
    ordered=True,
)
EVENTS: list[MarketEvent] = [
    BOOK,
    BookUpdate(NIFTY, R0, 0, (), ()),  # no levels, every default (prev_id -1)
    BookUpdate(NIFTY, R0, T0, ((2_345_000, 0),), (), first_id=5, last_id=5),  # a delete
    BookUpdate(1, R0, T0, (), ((-(2**63), 2**63 - 1),), snapshot=True, prev_id=-1),
    Trade(NIFTY, R0, T0, 2_345_005, 150, Side.BID, 88_123_456),
    Trade(NIFTY, R0, T0, 2_345_000, 75, Side.ASK),
    Quote(NIFTY, R0, T0, 2_345_000, 1_500, 2_345_005, 975, 9_000_008),
    SequenceGap(NIFTY, R0, 9_000_008, 9_000_011, "U 9000011 != last u + 1"),
    SequenceGap(NIFTY, R0, 0, 0, ""),
    Resynced(NIFTY, R0, 9_000_020),
    Malformed(R0, "bad json: Expecting ',' delimiter — line 1 ₹", 4096),
    Malformed(0, ""),
]


@pytest.mark.parametrize("ev", EVENTS, ids=lambda e: type(e).__name__)
def test_round_trip_examples(ev: MarketEvent) -> None:
    b = encode_event(ev)
    assert b[0] != 0 and b[1] == VERSION
    for buf in (b, bytearray(b), memoryview(b)):
        back = decode_event(buf)
        assert back == ev
        assert type(back) is type(ev)


def test_decoded_types_are_exact() -> None:
    """Levels come back as tuples of int pairs, flags as bools, the aggressor as a Side."""
    b = decode_event(encode_event(BOOK))
    assert isinstance(b, BookUpdate)
    assert type(b.bids) is tuple and all(type(lv) is tuple and len(lv) == 2 for lv in b.bids)
    assert b.snapshot is False and b.ordered is True
    t = decode_event(encode_event(EVENTS[4]))
    assert isinstance(t, Trade) and t.aggressor is Side.BID


@pytest.mark.parametrize("n", [0, 1, 2, 999, 1001, 1500])
def test_book_level_counts(n: int) -> None:
    ev = BookUpdate(
        NIFTY,
        R0,
        T0,
        tuple((10_000 - i, i + 1) for i in range(n)),
        tuple((10_001 + i, 2 * i + 1) for i in range(n // 2)),
        snapshot=True,
    )
    b = encode_event(ev)
    assert len(b) == wire._BOOK.size + 16 * (n + n // 2)
    assert decode_event(b) == ev


@pytest.fixture
def run_id() -> Iterator[str]:
    yield new_run_id()


def test_deep_snapshot_through_a_ring(run_id: str) -> None:
    """A 1500-level-a-side snapshot (~48 KB) spans ~750 64-byte slots and comes back equal."""
    ev = BookUpdate(
        NIFTY,
        R0,
        T0,
        tuple((3_000_000 - i, 25 * (i % 40 + 1)) for i in range(1500)),
        tuple((3_000_001 + i, 25 * (i % 17 + 1)) for i in range(1500)),
        snapshot=True,
        first_id=1,
        last_id=1,
        ordered=True,
    )
    ring = Ring.create(run_id, "deep", 1024, 64)
    w, r = FrameWriter(ring), FrameReader(ring)
    try:
        for _ in range(3):  # the ring wraps on the second and third
            b = encode_event(ev)
            assert len(b) > 700 * 64
            assert w.send(b)
            got = r.take()
            assert got is not None
            assert decode_event(got) == ev
        assert ring.stats()["rejected"] == 0
    finally:
        w.close()
        r.close()
        ring.close()
        ring.unlink()


# -- property round trips --------------------------------------------------------------------

events = st.one_of(
    st.builds(
        BookUpdate,
        I64,
        I64,
        I64,
        LEVELS,
        LEVELS,
        st.booleans(),
        I64,
        I64,
        I64,
        I64,
        st.booleans(),
    ),
    st.builds(Trade, I64, I64, I64, I64, I64, st.sampled_from(Side), I64),
    st.builds(Quote, I64, I64, I64, I64, I64, I64, I64, I64),
    st.builds(SequenceGap, I64, I64, I64, I64, TEXT),
    st.builds(Resynced, I64, I64, I64),
    st.builds(Malformed, I64, TEXT, I64),
)


@settings(max_examples=300, deadline=None)
@given(ev=events)
def test_round_trip_property(ev: MarketEvent) -> None:
    assert decode_event(encode_event(ev)) == ev


# -- malformed input -------------------------------------------------------------------------


def test_errors_name_the_problem() -> None:
    trade = encode_event(EVENTS[4])
    gap = encode_event(EVENTS[7])
    book = encode_event(BOOK)
    cases: list[tuple[bytes, str]] = [
        (b"", "truncated"),
        (trade[:1], "truncated"),
        (trade[:-1], "truncated Trade"),
        (trade + b"\0", "trailing"),
        (bytes([99]) + trade[1:], "unknown market message kind 99"),
        (trade[:1] + bytes([VERSION + 1]) + trade[2:], "version"),
        (trade[:-9] + struct.pack("<b", 0) + trade[-8:], "aggressor"),
        (book[:2] + bytes([book[2] | 4]) + book[3:], "flag"),
        (book[:-16], "truncated BookUpdate"),
        (book + bytes(16), "trailing"),
        (gap[:-3] + b"\xff\xfe\xfd", "utf-8"),
        (gap[:-1], "truncated SequenceGap"),
    ]
    for buf, what in cases:
        with pytest.raises(WireError, match=what):
            decode_event(buf)


def test_wire_error_is_a_value_error() -> None:
    assert issubclass(WireError, ValueError)


def test_encode_refuses_what_does_not_fit() -> None:
    with pytest.raises(WireError, match="SequenceGap"):
        encode_event(SequenceGap(1, 2, 3, 4, "x" * 65_536))
    encode_event(SequenceGap(1, 2, 3, 4, "x" * 65_535))  # the largest that fits
    with pytest.raises(WireError):
        encode_event(Trade(1, 2, 3, 2**63, 1, Side.BID))
    with pytest.raises(WireError):
        encode_event(BookUpdate(1, 2, 3, ((1, -(2**63) - 1),), ()))
    with pytest.raises(WireError):
        encode_event(Malformed(1, "\ud800"))  # a lone surrogate is not utf-8
    with pytest.raises(TypeError):
        encode_event("not an event")  # type: ignore[arg-type]


def _decode_or_wire_error(buf: bytes | bytearray | memoryview) -> None:
    """Decoding may succeed or raise WireError; anything else fails the test."""
    try:
        ev = decode_event(buf)
    except WireError:
        return
    assert decode_event(encode_event(ev)) == ev  # whatever decodes is a real event


@settings(max_examples=500, deadline=None)
@given(buf=st.binary(max_size=300))
def test_fuzz_random_bytes(buf: bytes) -> None:
    _decode_or_wire_error(buf)
    _decode_or_wire_error(memoryview(buf))


@settings(max_examples=500, deadline=None)
@given(kind=st.integers(0, 8), body=st.binary(max_size=300))
def test_fuzz_valid_header_random_body(kind: int, body: bytes) -> None:
    """Random bodies behind every known kind reach the per-kind decoders."""
    _decode_or_wire_error(bytes([kind, VERSION]) + body)


@settings(max_examples=200, deadline=None)
@given(ev=events, data=st.data())
def test_fuzz_truncated_and_corrupted(ev: MarketEvent, data: st.DataObject) -> None:
    b = encode_event(ev)
    cut = data.draw(st.integers(0, len(b) - 1))
    with pytest.raises(WireError):
        decode_event(b[:cut])
    with pytest.raises(WireError):
        decode_event(b + data.draw(st.binary(min_size=1, max_size=20)))
    corrupt = bytearray(b)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(b) - 1))
        corrupt[i] = data.draw(st.integers(0, 255))
    _decode_or_wire_error(corrupt)
