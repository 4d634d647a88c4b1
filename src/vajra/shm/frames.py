"""Variable-length frames over one SPSC `Ring` of fixed-size slots (the `processes` topology's
pipe between module processes; the payloads are `vajra.market.wire`/`vajra.venues.wire` bytes).

A frame is a u32 little-endian payload length followed by the payload, laid over consecutive
slots: the first slot carries the length and `slot_bytes - 4` payload bytes, each following
slot `slot_bytes` more. Most messages (a trade, a quote, an order, an answer, a short diff) fit
one 64-byte slot; a deep snapshot spans many.

Why frames are all-or-nothing: the writer checks that the ring has room for *every* slot of a
frame before it writes any, so a frame is published completely or not at all, and a reader
never waits on a frame whose writer gave up. The writer fills the frame's slots and publishes
them in ring order (one batch, two when the frame wraps past the end of the slot array); x86-64
keeps stores in order (see `vajra.shm.ring`), so a reader that sees the frame's *last* slot
published sees all of it, and checks just that one word.

Why back-pressure and not drops: these rings carry state (book diffs, orders, fills) where a
lost message is a wrong book or an unknown order. A full ring makes the writer wait
(`os.sched_yield` between checks) until the reader frees slots, or until `give_up()` says
stop. Waiting never calls the ring's `claim()` on a full ring, which would count a message in
the ring's `rejected` counter: the writer keeps its own copy of the room check against the
consumer's `tail` word (Aeron's cached consumer position, as `RingWriter` and the journal's
writer do).

Only `Overflow.REJECT` rings: under OVERWRITE a frame's slots could be overwritten while the
reader copies them, and there is no drop-free way to mend that.

Cost (3.13t quick build, 2-core dev box, one thread, 64-byte slots; timeit best of 9):
a one-slot frame ~0.7 µs to `send` and ~0.7 µs to `take`, a ~1.4 µs round trip (the bare ring's
claim/copy/publish + poll/copy/commit is ~0.95 µs); an idle `take()` ~0.2 µs. Longer frames
cost the writer ~0.2-0.3 µs a slot (a slice copy each) and the reader ~0.05-0.15 µs a slot
(gathered by Structs), so a 700-byte 20+20-level BookUpdate over 11 slots is a ~5 µs round
trip: size a ring's slots to its usual message (1 KiB for book diffs, 64 B for orders).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import Protocol

from vajra.shm.ring import RING, Overflow, Ring, RingReader, RingWriter

Buffer = bytes | bytearray | memoryview

_LEN = 4  # bytes of the u32 length at the head of a frame's first slot
_MAX_U32 = 0xFFFF_FFFF


class _Send(Protocol):
    def __call__(self, payload: Buffer, give_up: Callable[[], bool] | None = None) -> bool: ...


def _check_ring(ring: Ring) -> int:
    """The largest payload one frame can carry in `ring`; refuses rings frames cannot use."""
    if ring.policy is not Overflow.REJECT:
        raise ValueError(
            f"ring {ring.name!r}: frames need an Overflow.REJECT ring (an overwritten slot "
            "would tear a frame that spans several)"
        )
    if ring.slot_bytes < 8 or ring.stride % 8:
        raise ValueError(f"ring {ring.name!r}: slots must be 8-byte aligned for the length word")
    return min(ring.capacity * ring.slot_bytes - _LEN, _MAX_U32)


class FrameWriter:
    """The producer end: `send(payload)` publishes one frame. Owned by one thread.

    `send(payload, give_up=None) -> bool` waits while the ring is full (checking `give_up()`,
    if given, between waits: True abandons the frame, nothing of it published, and `send`
    returns False). A payload larger than the ring can ever hold (`max_payload`) raises
    ValueError. `send` is a closure, not a method, for the reason `RingWriter` gives.
    """

    __slots__ = ("_ring", "_state", "_u32", "_w", "backlog", "max_payload", "send")

    def __init__(self, ring: Ring) -> None:
        self.max_payload = _check_ring(ring)
        self._ring = ring
        self._w = ring.writer()
        #: a 'I' view for the length word: one store, no pack, no tuple
        self._u32 = ring.segment.cast(self._w.buf, "I")
        send, backlog, state = _writer_ops(self._w, ring, self._u32, self.max_payload)
        self.send: _Send = send
        #: slots published and not yet consumed (one load of the consumer's `tail` word)
        self.backlog: Callable[[], int] = backlog
        self._state: Callable[[], int] = state

    @property
    def frames(self) -> int:
        """Frames sent by this writer."""
        return self._state()

    def close(self) -> None:
        """Release this end's views (from the owning thread, after its last `send`)."""
        self._u32.release()
        self._w.close()


def _writer_ops(
    w: RingWriter, ring: Ring, u32: memoryview, max_payload: int
) -> tuple[_Send, Callable[[], int], Callable[[], int]]:
    buf, q = w.buf, w.q
    claim, publish = w.claim, w.publish
    claim_batch, publish_batch = w.claim_batch, w.publish_batch
    sb, cap, stride = w.slot_bytes, w.capacity, w.stride
    first_room = sb - _LEN
    tail_w = ring.segment.body // 8 + RING.word("tail")
    sched_yield = os.sched_yield
    head = w.published
    limit = q[tail_w] + cap  # our own copy of the room check: head + k <= limit fits k slots
    frames = 0

    def wait(k: int, give_up: Callable[[], bool] | None) -> bool:
        """Until `k` slots are free (True) or `give_up()` says stop (False)."""
        nonlocal limit
        while True:
            if give_up is not None and give_up():
                return False
            sched_yield()
            limit = q[tail_w] + cap
            if head + k <= limit:
                return True

    def send(payload: Buffer, give_up: Callable[[], bool] | None = None) -> bool:
        """Publish `payload` as one frame. Fast path (fits one slot, ring not full): claim, one
        4-byte store, one slice copy, publish."""
        nonlocal head, limit, frames
        n = len(payload)
        if n > first_room:
            return send_long(payload, n, give_up)
        if head >= limit:
            limit = q[tail_w] + cap
            if head >= limit and not wait(1, give_up):
                return False
        off = claim()  # room checked: cannot fail, counts nothing
        u32[off >> 2] = n
        buf[off + _LEN : off + _LEN + n] = payload
        publish()
        head += 1
        frames += 1
        return True

    def fill(payload: Buffer, n: int, off: int, pos: int, j: int) -> int:
        """Copy payload[pos:] into `j` consecutive slots from payload offset `off`; returns the
        position reached. Cost: ~0.2 µs a slot (a 64-byte slice and its copy into the ring)."""
        full_until = n - sb  # chunks starting below this fill a whole slot
        for _ in range(j):
            if pos < full_until:
                buf[off : off + sb] = payload[pos : pos + sb]
                pos += sb
            else:
                buf[off : off + n - pos] = payload[pos:n]
                pos = n
            off += stride
        return pos

    def send_long(payload: Buffer, n: int, give_up: Callable[[], bool] | None) -> bool:
        """A frame over k > 1 slots: room for all k first, then fill and publish in ring order
        (at most two batches: a batch never wraps past the end of the slot array)."""
        nonlocal head, limit, frames
        if n > max_payload:
            raise ValueError(
                f"frame of {n} bytes exceeds ring {ring.name!r}: at most {max_payload} "
                f"({cap} slots of {sb} bytes, less the {_LEN}-byte length)"
            )
        k = (n + _LEN + sb - 1) // sb
        if head + k > limit:
            limit = q[tail_w] + cap
            if head + k > limit and not wait(k, give_up):
                return False
        m = claim_batch(k)  # room checked: m >= 1, nothing counted
        off = w.batch_offset
        u32[off >> 2] = n
        buf[off + _LEN : off + sb] = payload[:first_room]
        pos = fill(payload, n, off + stride, first_room, m - 1)
        publish_batch()
        if m < k:  # the frame wraps: the rest starts at slot 0
            claim_batch(k - m)
            fill(payload, n, w.batch_offset, pos, k - m)
            publish_batch()
        head += k
        frames += 1
        return True

    def backlog() -> int:
        return head - q[tail_w]

    def state() -> int:
        return frames

    return send, backlog, state


class FrameReader:
    """The consumer end: `take()` returns the next whole frame's payload or None. Owned by one
    thread.

    `take() -> bytes | None`: None when nothing is published, or when the next frame's later
    slots are not all published yet (nothing is consumed then: a later call returns it). A
    length word larger than the ring can hold means a corrupt ring or a peer from another build
    and raises ValueError. `take` is a closure, not a method, for the reason `RingWriter` gives.
    """

    __slots__ = ("_r", "_ring", "_state", "_u32", "max_payload", "take")

    def __init__(self, ring: Ring) -> None:
        self.max_payload = _check_ring(ring)
        self._ring = ring
        self._r = ring.reader()
        self._u32 = ring.segment.cast(self._r.buf, "I")
        take, state = _reader_ops(self._r, ring, self._u32, self.max_payload)
        self.take: Callable[[], bytes | None] = take
        self._state: Callable[[], int] = state

    @property
    def frames(self) -> int:
        """Frames taken by this reader."""
        return self._state()

    def close(self) -> None:
        """Release this end's views (from the owning thread, after its last `take`)."""
        self._u32.release()
        self._r.close()


#: slots gathered by one `unpack_from` (see `_reader_ops`): bounds the cached Structs to
#: GATHER of them, a few KB in all, whatever the ring's capacity
GATHER = 32


def _reader_ops(
    r: RingReader, ring: Ring, u32: memoryview, max_payload: int
) -> tuple[Callable[[], bytes | None], Callable[[], int]]:
    buf, q = r.buf, r.q
    poll, commit, commit_batch = r.poll, r.commit, r.commit_batch
    sb, cap, stride = r.slot_bytes, r.capacity, r.stride
    mask = cap - 1
    first_room = sb - _LEN
    # A frame over several slots is copied out by Structs that read `j` whole slot payloads
    # and skip the sequence words between them ('x' pads): one C call per GATHER slots, ~8x
    # cheaper than a slice per slot. (Readers only: pack_into would zero the pads, trap #1.)
    gathers = [
        struct.Struct(f"<{sb}s" + f"{stride - sb}x{sb}s" * (j - 1)) if j else None
        for j in range(GATHER + 1)
    ]
    big = gathers[GATHER]
    assert big is not None
    big_unpack, big_step = big.unpack_from, GATHER * stride
    tail = r.consumed
    frames = 0

    def gather(parts: list[bytes], off: int, j: int) -> None:
        """Append the payloads of the `j` consecutive slots from payload offset `off`."""
        while j > GATHER:
            parts.extend(big_unpack(buf, off))
            off += big_step
            j -= GATHER
        s = gathers[j]
        assert s is not None
        parts.extend(s.unpack_from(buf, off))

    def take() -> bytes | None:
        """Idle: one `poll()`. One-slot frame: a 4-byte load, a slice copy, one commit."""
        nonlocal tail, frames
        off = poll()
        if off < 0:
            return None
        n = u32[off >> 2]
        if n > first_room:
            return take_long(off, n)
        data = bytes(buf[off + _LEN : off + _LEN + n])
        commit()
        tail += 1
        frames += 1
        return data

    def take_long(off: int, n: int) -> bytes | None:
        nonlocal tail, frames
        if n > max_payload:
            raise ValueError(
                f"ring {ring.name!r}: frame length {n} > {max_payload} at message {tail}: "
                "corrupt ring, or a writer from another build"
            )
        k = (n + _LEN + sb - 1) // sb
        first = tail & mask
        base = off - first * stride  # slot i's payload is at base + i * stride
        last = tail + k
        if q[(base + ((last - 1) & mask) * stride - 8) >> 3] != last:
            return None  # published in order: the last slot there means all of them are
        parts: list[bytes] = []
        if first + k <= cap:
            gather(parts, off, k)
        else:  # the frame wraps past the end of the slot array
            gather(parts, off, cap - first)
            gather(parts, base, first + k - cap)
        data = b"".join(parts)[_LEN : _LEN + n]
        commit_batch(k)
        tail = last
        frames += 1
        return data

    def state() -> int:
        return frames

    return take, state
