"""The order-protocol wire codec: exact round trips for every request (with its send stamp) and
every venue answer, enums back as enums, the one WireError type for every malformed input, and
fuzzing that arbitrary bytes, truncations and corruptions raise WireError and nothing else."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.market import wire as market_wire
from vajra.market.events import Resynced, Side
from vajra.venues import wire
from vajra.venues.base import (
    Ack,
    CancelAck,
    CancelReject,
    CancelRequest,
    Expired,
    Fill,
    ModifyAck,
    ModifyRequest,
    OrderRequest,
    PlaceRequest,
    Reject,
    RejectReason,
    TimeInForce,
    VenueEvent,
)
from vajra.venues.wire import (
    VERSION,
    WireError,
    decode_answer,
    decode_request,
    encode_answer,
    encode_request,
)

I64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(max_size=60)
T_NS = 73_512_004_117

REQUESTS: list[OrderRequest] = [
    PlaceRequest(1_000_001, 256265, Side.BID, 2_345_000, 75, TimeInForce.DAY, "vj-mm-01"),
    PlaceRequest(1_000_002, 738561, Side.ASK, 129_905, 1, TimeInForce.IOC),
    PlaceRequest(1_000_003, 1, Side.BID, 5, 5, tag="ट्रेड ₹"),
    ModifyRequest(1_000_001, 2_345_005, 150),
    CancelRequest(1_000_001),
]
ANSWERS: list[VenueEvent] = [
    Ack(1_000_001, "250614000012345", T_NS),
    Ack(1_000_002, "", 0),
    Reject(1_000_001, RejectReason.RATE_LIMITED, "Too many requests", T_NS, 1_000_000_000),
    Reject(1_000_003, RejectReason.PRICE_BAND, "", T_NS),
    ModifyAck(1_000_001, 2_345_005, 150, T_NS),
    Fill(1_000_001, "fill-250614-77", 2_345_000, 75, T_NS),
    CancelAck(1_000_001, T_NS),
    CancelReject(1_000_001, RejectReason.ALREADY_DONE, "Order already complete", T_NS),
    Expired(1_000_002, T_NS),
]


def test_one_error_type() -> None:
    assert WireError is market_wire.WireError
    assert issubclass(WireError, ValueError)


@pytest.mark.parametrize("req", REQUESTS, ids=lambda r: type(r).__name__)
def test_request_round_trip(req: OrderRequest) -> None:
    b = encode_request(req, T_NS)
    assert b[1] == VERSION
    for buf in (b, bytearray(b), memoryview(b)):
        back, t = decode_request(buf)
        assert back == req and type(back) is type(req)
        assert t == T_NS
    if isinstance(req, PlaceRequest):
        assert isinstance(back, PlaceRequest)
        assert back.side is req.side and back.tif is req.tif


@pytest.mark.parametrize("ev", ANSWERS, ids=lambda e: type(e).__name__)
def test_answer_round_trip(ev: VenueEvent) -> None:
    b = encode_answer(ev)
    assert b[1] == VERSION
    for buf in (b, bytearray(b), memoryview(b)):
        back = decode_answer(buf)
        assert back == ev and type(back) is type(ev)
    if isinstance(ev, Reject | CancelReject):
        assert isinstance(back, Reject | CancelReject)
        assert back.reason is ev.reason


def test_requests_and_answers_do_not_cross() -> None:
    """A message on the wrong ring is an unknown kind, never another message."""
    for req in REQUESTS:
        with pytest.raises(WireError, match="unknown venue answer kind"):
            decode_answer(encode_request(req, 1))
    for ev in ANSWERS:
        with pytest.raises(WireError, match="unknown order request kind"):
            decode_request(encode_answer(ev))
    with pytest.raises(WireError, match="unknown"):
        decode_request(market_wire.encode_event(Resynced(1, 2, 3)))


# -- property round trips --------------------------------------------------------------------

requests = st.one_of(
    st.builds(
        PlaceRequest,
        I64,
        I64,
        st.sampled_from(Side),
        I64,
        I64,
        st.sampled_from(TimeInForce),
        TEXT,
    ),
    st.builds(ModifyRequest, I64, I64, I64),
    st.builds(CancelRequest, I64),
)
reasons = st.sampled_from(RejectReason)
answers = st.one_of(
    st.builds(Ack, I64, TEXT, I64),
    st.builds(Reject, I64, reasons, TEXT, I64, I64),
    st.builds(ModifyAck, I64, I64, I64, I64),
    st.builds(Fill, I64, TEXT, I64, I64, I64),
    st.builds(CancelAck, I64, I64),
    st.builds(CancelReject, I64, reasons, TEXT, I64),
    st.builds(Expired, I64, I64),
)


@settings(max_examples=300, deadline=None)
@given(req=requests, t=I64)
def test_request_round_trip_property(req: OrderRequest, t: int) -> None:
    assert decode_request(encode_request(req, t)) == (req, t)


@settings(max_examples=300, deadline=None)
@given(ev=answers)
def test_answer_round_trip_property(ev: VenueEvent) -> None:
    assert decode_answer(encode_answer(ev)) == ev


# -- malformed input -------------------------------------------------------------------------


def test_errors_name_the_problem() -> None:
    place = encode_request(REQUESTS[0], T_NS)
    reject = encode_answer(ANSWERS[2])
    cancel_reject = encode_answer(ANSWERS[7])
    # PlaceRequest: "<BB5qbBH": side at 42, tif at 43; Reject: "<BB3qBH": reason at 26;
    # CancelReject: "<BB2qBH": reason at 18
    cases_req: list[tuple[bytes, str]] = [
        (b"\x20", "truncated"),
        (place[:-1], "truncated PlaceRequest"),
        (place + b"x", "trailing"),
        (place[:1] + bytes([VERSION + 1]) + place[2:], "version"),
        (place[:42] + struct.pack("<b", 0) + place[43:], "bad side 0"),
        (place[:43] + bytes([7]) + place[44:], "bad time in force 7"),
        (place[:-2] + b"\xc3\x28", "utf-8"),
        (bytes([33, VERSION]) + bytes(31), "truncated ModifyRequest"),
        (bytes([34, VERSION]) + bytes(17), "trailing"),
    ]
    for buf, what in cases_req:
        with pytest.raises(WireError, match=what):
            decode_request(buf)
    cases_ans: list[tuple[bytes, str]] = [
        (b"", "truncated"),
        (reject[:26] + bytes([0]) + reject[27:], "Reject: bad reason 0"),
        (cancel_reject[:18] + bytes([200]) + cancel_reject[19:], "CancelReject: bad reason 200"),
        (reject[:-1], "truncated Reject"),
        (encode_answer(ANSWERS[0])[:-1] + b"\x80", "utf-8"),
        (bytes([99, VERSION]), "unknown venue answer kind 99"),
        (encode_answer(ANSWERS[6]) + b"\0", "trailing"),
    ]
    for buf, what in cases_ans:
        with pytest.raises(WireError, match=what):
            decode_answer(buf)


def test_encode_refuses_what_does_not_fit() -> None:
    with pytest.raises(WireError, match="PlaceRequest"):
        encode_request(PlaceRequest(1, 2, Side.BID, 3, 4, tag="t" * 65_536), 0)
    encode_request(PlaceRequest(1, 2, Side.BID, 3, 4, tag="t" * 65_535), 0)
    with pytest.raises(WireError, match="Fill"):
        encode_answer(Fill(1, "f" * 70_000, 2, 3, 4))
    with pytest.raises(WireError):
        encode_request(CancelRequest(2**63), 0)
    with pytest.raises(WireError):
        encode_request(CancelRequest(1), -(2**63) - 1)
    with pytest.raises(WireError):
        encode_answer(Reject(1, RejectReason.INPUT, "\udfff", 0))
    with pytest.raises(TypeError):
        encode_request(Ack(1, "x", 2), 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode_answer(CancelRequest(1))  # type: ignore[arg-type]


def _ok_or_wire_error_request(buf: bytes | bytearray | memoryview) -> None:
    try:
        req, t = decode_request(buf)
    except WireError:
        return
    assert decode_request(encode_request(req, t)) == (req, t)


def _ok_or_wire_error_answer(buf: bytes | bytearray | memoryview) -> None:
    try:
        ev = decode_answer(buf)
    except WireError:
        return
    assert decode_answer(encode_answer(ev)) == ev


@settings(max_examples=500, deadline=None)
@given(buf=st.binary(max_size=200))
def test_fuzz_random_bytes(buf: bytes) -> None:
    _ok_or_wire_error_request(buf)
    _ok_or_wire_error_answer(buf)
    _ok_or_wire_error_request(memoryview(buf))
    _ok_or_wire_error_answer(bytearray(buf))


@settings(max_examples=500, deadline=None)
@given(
    kind=st.sampled_from([wire.KIND_PLACE, wire.KIND_MODIFY, wire.KIND_CANCEL, *range(48, 56)]),
    body=st.binary(max_size=120),
)
def test_fuzz_valid_header_random_body(kind: int, body: bytes) -> None:
    buf = bytes([kind, VERSION]) + body
    _ok_or_wire_error_request(buf)
    _ok_or_wire_error_answer(buf)


@settings(max_examples=200, deadline=None)
@given(req=requests, ev=answers, data=st.data())
def test_fuzz_truncated_and_corrupted(
    req: OrderRequest, ev: VenueEvent, data: st.DataObject
) -> None:
    for b, dec in ((encode_request(req, 5), decode_request), (encode_answer(ev), decode_answer)):
        cut = data.draw(st.integers(0, len(b) - 1))
        with pytest.raises(WireError):
            dec(b[:cut])
        with pytest.raises(WireError):
            dec(b + data.draw(st.binary(min_size=1, max_size=10)))
        corrupt = bytearray(b)
        for _ in range(data.draw(st.integers(1, 4))):
            corrupt[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
        try:
            dec(corrupt)
        except WireError:
            pass
