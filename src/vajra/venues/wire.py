"""The order protocol as bytes, for the `processes` topology: requests go from the trading
process to the gateway process with their send stamp, venue answers come back (sans-I/O; the
framing is `vajra.shm.frames`).

Same conventions as `vajra.market.wire` (and its `WireError`, so a process has one codec error
to catch): a 1-byte kind, a 1-byte wire `VERSION`, then a fixed little-endian layout; ints are
signed 64-bit, enums one byte, strings utf-8 behind a u16 byte length.

    kind 32 PlaceRequest   q t_ns client_id token price qty | i8 side | u8 tif | u16 len | tag
    kind 33 ModifyRequest  q t_ns client_id price qty
    kind 34 CancelRequest  q t_ns client_id
    kind 48 Ack            q client_id t_ns | u16 len | venue_id
    kind 49 Reject         q client_id t_ns retry_after_ns | u8 reason | u16 len | message
    kind 50 ModifyAck      q client_id price qty t_ns
    kind 51 Fill           q client_id price qty t_ns | u16 len | fill_id
    kind 52 CancelAck      q client_id t_ns
    kind 53 CancelReject   q client_id t_ns | u8 reason | u16 len | message
    kind 54 Expired        q client_id t_ns

Why the kinds do not overlap each other or the market kinds (1-6): a message sent down the wrong
ring is reported as an unknown kind instead of decoding as something else.

Cost (3.13t quick build, 2-core dev box): PlaceRequest encode ~0.45 µs, decode ~1.5 µs; Ack
encode ~0.4 µs, decode ~1.0 µs (half of a decode is the frozen dataclass's `__init__`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from vajra.market.events import Side
from vajra.market.wire import Buffer, WireError, size_error, tail, utf8_field
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

__all__ = [
    "VERSION",
    "WireError",
    "decode_answer",
    "decode_request",
    "encode_answer",
    "encode_request",
]

VERSION = 1
"""Bumped on any layout change of these messages."""

KIND_PLACE, KIND_MODIFY, KIND_CANCEL = 32, 33, 34
KIND_ACK, KIND_REJECT, KIND_MODIFY_ACK, KIND_FILL = 48, 49, 50, 51
KIND_CANCEL_ACK, KIND_CANCEL_REJECT, KIND_EXPIRED = 52, 53, 54

_PLACE = struct.Struct("<BB5qbBH")
_MODIFY = struct.Struct("<BB4q")
_CANCEL = struct.Struct("<BB2q")
_ACK = struct.Struct("<BB2qH")
_REJECT = struct.Struct("<BB3qBH")
_MODIFY_ACK = struct.Struct("<BB4q")
_FILL = struct.Struct("<BB4qH")
_CANCEL_ACK = struct.Struct("<BB2q")
_CANCEL_REJECT = struct.Struct("<BB2qBH")
_EXPIRED = struct.Struct("<BB2q")


_PLACE_T, _MODIFY_T, _CANCEL_T = tail(_PLACE), tail(_MODIFY), tail(_CANCEL)
_ACK_T, _REJECT_T, _MODIFY_ACK_T = tail(_ACK), tail(_REJECT), tail(_MODIFY_ACK)
_FILL_T, _CANCEL_ACK_T = tail(_FILL), tail(_CANCEL_ACK)
_CANCEL_REJECT_T, _EXPIRED_T = tail(_CANCEL_REJECT), tail(_EXPIRED)

# Enum lookups by value: a dict get is ~4x cheaper than calling the enum class and never raises.
_SIDES: dict[int, Side] = {int(s): s for s in Side}
_TIFS: dict[int, TimeInForce] = {int(t): t for t in TimeInForce}
_REASONS: dict[int, RejectReason] = {int(r): r for r in RejectReason}


# -- requests -------------------------------------------------------------------------------------


def _e_place(r: PlaceRequest, t: int) -> bytes:
    x = r.tag.encode()
    return (
        _PLACE.pack(
            KIND_PLACE, VERSION, t, r.client_id, r.token, r.price, r.qty, r.side, r.tif, len(x)
        )
        + x
    )


def _e_modify(r: ModifyRequest, t: int) -> bytes:
    return _MODIFY.pack(KIND_MODIFY, VERSION, t, r.client_id, r.price, r.qty)


def _e_cancel(r: CancelRequest, t: int) -> bytes:
    return _CANCEL.pack(KIND_CANCEL, VERSION, t, r.client_id)


_ENCODE_REQ: dict[type[Any], Callable[[Any, int], bytes]] = {
    PlaceRequest: _e_place,
    ModifyRequest: _e_modify,
    CancelRequest: _e_cancel,
}


def encode_request(req: OrderRequest, t_ns: int) -> bytes:
    """`req` stamped with its send time `t_ns` (the gateway measures the hop from it). Raises
    TypeError for a non-request, WireError for a value that does not fit (an int outside int64,
    an enum outside a byte, a tag over 65535 utf-8 bytes)."""
    try:
        return _ENCODE_REQ[type(req)](req, t_ns)
    except KeyError:
        raise TypeError(f"not an order request: {type(req).__name__}") from None
    except (struct.error, UnicodeEncodeError, OverflowError) as e:
        raise WireError(f"{type(req).__name__} does not fit the wire layout: {e}") from None


def _d_place(buf: Buffer, n: int) -> tuple[OrderRequest, int]:
    size = _PLACE.size
    if n < size:
        raise size_error("PlaceRequest", n, size)
    t, cid, token, price, qty, side, tif, lx = _PLACE_T.unpack_from(buf, 2)
    if n != size + lx:
        raise size_error("PlaceRequest", n, size + lx)
    s = _SIDES.get(side)
    if s is None:
        raise WireError(f"PlaceRequest: bad side {side}")
    f = _TIFS.get(tif)
    if f is None:
        raise WireError(f"PlaceRequest: bad time in force {tif}")
    return PlaceRequest(
        cid, token, s, price, qty, f, utf8_field(buf, size, n, "PlaceRequest.tag")
    ), t


def _d_modify(buf: Buffer, n: int) -> tuple[OrderRequest, int]:
    if n != _MODIFY.size:
        raise size_error("ModifyRequest", n, _MODIFY.size)
    t, cid, price, qty = _MODIFY_T.unpack_from(buf, 2)
    return ModifyRequest(cid, price, qty), t


def _d_cancel(buf: Buffer, n: int) -> tuple[OrderRequest, int]:
    if n != _CANCEL.size:
        raise size_error("CancelRequest", n, _CANCEL.size)
    t, cid = _CANCEL_T.unpack_from(buf, 2)
    return CancelRequest(cid), t


_DECODE_REQ: dict[int, Callable[[Buffer, int], tuple[OrderRequest, int]]] = {
    KIND_PLACE: _d_place,
    KIND_MODIFY: _d_modify,
    KIND_CANCEL: _d_cancel,
}


def decode_request(buf: Buffer) -> tuple[OrderRequest, int]:
    """(request, t_ns) from one whole wire message (a byte buffer). Raises WireError, and
    nothing else, for anything that is not exactly one valid request."""
    n = len(buf)
    if n < 2:
        raise WireError(f"truncated order request: {n} bytes")
    if buf[1] != VERSION:
        raise WireError(f"order wire version {buf[1]}, this build reads {VERSION}")
    dec = _DECODE_REQ.get(buf[0])
    if dec is None:
        raise WireError(f"unknown order request kind {buf[0]}")
    try:
        return dec(buf, n)
    except struct.error as e:  # lengths are checked first: only a non-byte memoryview gets here
        raise WireError(f"order request does not match its layout: {e}") from None


# -- answers --------------------------------------------------------------------------------------


def _e_ack(e: Ack) -> bytes:
    x = e.venue_id.encode()
    return _ACK.pack(KIND_ACK, VERSION, e.client_id, e.t_ns, len(x)) + x


def _e_reject(e: Reject) -> bytes:
    m = e.message.encode()
    return (
        _REJECT.pack(KIND_REJECT, VERSION, e.client_id, e.t_ns, e.retry_after_ns, e.reason, len(m))
        + m
    )


def _e_modify_ack(e: ModifyAck) -> bytes:
    return _MODIFY_ACK.pack(KIND_MODIFY_ACK, VERSION, e.client_id, e.price, e.qty, e.t_ns)


def _e_fill(e: Fill) -> bytes:
    x = e.fill_id.encode()
    return _FILL.pack(KIND_FILL, VERSION, e.client_id, e.price, e.qty, e.t_ns, len(x)) + x


def _e_cancel_ack(e: CancelAck) -> bytes:
    return _CANCEL_ACK.pack(KIND_CANCEL_ACK, VERSION, e.client_id, e.t_ns)


def _e_cancel_reject(e: CancelReject) -> bytes:
    m = e.message.encode()
    return (
        _CANCEL_REJECT.pack(KIND_CANCEL_REJECT, VERSION, e.client_id, e.t_ns, e.reason, len(m)) + m
    )


def _e_expired(e: Expired) -> bytes:
    return _EXPIRED.pack(KIND_EXPIRED, VERSION, e.client_id, e.t_ns)


_ENCODE_ANS: dict[type[Any], Callable[[Any], bytes]] = {
    Ack: _e_ack,
    Reject: _e_reject,
    ModifyAck: _e_modify_ack,
    Fill: _e_fill,
    CancelAck: _e_cancel_ack,
    CancelReject: _e_cancel_reject,
    Expired: _e_expired,
}


def encode_answer(ev: VenueEvent) -> bytes:
    """`ev` as one wire message. Raises TypeError for a non-answer, WireError for a value that
    does not fit (see `encode_request`)."""
    try:
        return _ENCODE_ANS[type(ev)](ev)
    except KeyError:
        raise TypeError(f"not a venue event: {type(ev).__name__}") from None
    except (struct.error, UnicodeEncodeError, OverflowError) as e:
        raise WireError(f"{type(ev).__name__} does not fit the wire layout: {e}") from None


def _d_ack(buf: Buffer, n: int) -> VenueEvent:
    size = _ACK.size
    if n < size:
        raise size_error("Ack", n, size)
    cid, t, lx = _ACK_T.unpack_from(buf, 2)
    if n != size + lx:
        raise size_error("Ack", n, size + lx)
    return Ack(cid, utf8_field(buf, size, n, "Ack.venue_id"), t)


def _d_reject(buf: Buffer, n: int) -> VenueEvent:
    size = _REJECT.size
    if n < size:
        raise size_error("Reject", n, size)
    cid, t, retry, reason, lm = _REJECT_T.unpack_from(buf, 2)
    if n != size + lm:
        raise size_error("Reject", n, size + lm)
    r = _REASONS.get(reason)
    if r is None:
        raise WireError(f"Reject: bad reason {reason}")
    return Reject(cid, r, utf8_field(buf, size, n, "Reject.message"), t, retry)


def _d_modify_ack(buf: Buffer, n: int) -> VenueEvent:
    if n != _MODIFY_ACK.size:
        raise size_error("ModifyAck", n, _MODIFY_ACK.size)
    return ModifyAck(*_MODIFY_ACK_T.unpack_from(buf, 2))


def _d_fill(buf: Buffer, n: int) -> VenueEvent:
    size = _FILL.size
    if n < size:
        raise size_error("Fill", n, size)
    cid, price, qty, t, lx = _FILL_T.unpack_from(buf, 2)
    if n != size + lx:
        raise size_error("Fill", n, size + lx)
    return Fill(cid, utf8_field(buf, size, n, "Fill.fill_id"), price, qty, t)


def _d_cancel_ack(buf: Buffer, n: int) -> VenueEvent:
    if n != _CANCEL_ACK.size:
        raise size_error("CancelAck", n, _CANCEL_ACK.size)
    return CancelAck(*_CANCEL_ACK_T.unpack_from(buf, 2))


def _d_cancel_reject(buf: Buffer, n: int) -> VenueEvent:
    size = _CANCEL_REJECT.size
    if n < size:
        raise size_error("CancelReject", n, size)
    cid, t, reason, lm = _CANCEL_REJECT_T.unpack_from(buf, 2)
    if n != size + lm:
        raise size_error("CancelReject", n, size + lm)
    r = _REASONS.get(reason)
    if r is None:
        raise WireError(f"CancelReject: bad reason {reason}")
    return CancelReject(cid, r, utf8_field(buf, size, n, "CancelReject.message"), t)


def _d_expired(buf: Buffer, n: int) -> VenueEvent:
    if n != _EXPIRED.size:
        raise size_error("Expired", n, _EXPIRED.size)
    return Expired(*_EXPIRED_T.unpack_from(buf, 2))


_DECODE_ANS: dict[int, Callable[[Buffer, int], VenueEvent]] = {
    KIND_ACK: _d_ack,
    KIND_REJECT: _d_reject,
    KIND_MODIFY_ACK: _d_modify_ack,
    KIND_FILL: _d_fill,
    KIND_CANCEL_ACK: _d_cancel_ack,
    KIND_CANCEL_REJECT: _d_cancel_reject,
    KIND_EXPIRED: _d_expired,
}


def decode_answer(buf: Buffer) -> VenueEvent:
    """The venue event in one whole wire message (a byte buffer). Raises WireError, and
    nothing else, for anything that is not exactly one valid answer."""
    n = len(buf)
    if n < 2:
        raise WireError(f"truncated venue answer: {n} bytes")
    if buf[1] != VERSION:
        raise WireError(f"order wire version {buf[1]}, this build reads {VERSION}")
    dec = _DECODE_ANS.get(buf[0])
    if dec is None:
        raise WireError(f"unknown venue answer kind {buf[0]}")
    try:
        return dec(buf, n)
    except struct.error as e:  # lengths are checked first: only a non-byte memoryview gets here
        raise WireError(f"venue answer does not match its layout: {e}") from None
