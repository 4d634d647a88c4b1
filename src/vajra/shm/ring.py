"""SPSC lock-free ring over shared memory: per-slot sequence numbers, padded cursors, batches.

Protocol (one producer, one consumer; threads of one process or two processes):

- Capacity is a power of two; message `n` lives in slot `n & mask`. Each slot is an 8-byte
  sequence word followed by the payload. The producer writes the payload first and then
  publishes by storing `n + 1` into the slot's sequence word through a memoryview cast to 'q'
  (one aligned 8-byte store; `struct.pack_into` would zero-fill first and tear, trap #1).
- The consumer spins on the sequence word of the *next* slot only: publication needs no shared
  cursor load, so the producer's cursor line is not dragged across cores on every poll.
- `head` (producer line) and `tail` (consumer line) are cursors 128 bytes apart, one writer
  each. The producer caches `tail` and re-reads it only when the ring looks full (Aeron's trick);
  `head` is for monitors (ring depth) and for the consumer to recover after being lapped.
- x86-64 (TSO) keeps store->store and load->load order, and CPython emits no fences, so this is
  correct on x86-64 only; `vajra.runtime.gil.check_platform` refuses to start elsewhere.

Overflow is a per-ring policy and never silent:
- `REJECT`: a full ring refuses the message (`claim()` returns -1) and counts it in `rejected`.
- `OVERWRITE`: the producer never waits; it marks a slot in progress (`-(n+1)`) before writing
  and the consumer re-checks the sequence after copying a payload (a per-slot seqlock). A consumer
  that finds itself lapped jumps to the oldest intact message and adds what it skipped to `lost`
  and one to `laps`, so `received + lost == published` holds exactly.

Several producers feeding one consumer (Sentinel, the journal) use fan-in: one SPSC ring per
producer, polled in turn (`FanIn`). Why not MPSC: a multi-producer claim needs an atomic
fetch-and-add or CAS on shared memory, which pure Python cannot issue; fan-in keeps every word
single-writer, costs the consumer one load per idle ring, and keeps per-producer order.

Ownership: a `RingWriter` belongs to the one thread that publishes, a `RingReader` to the one
thread that consumes; each holds its own memoryviews (trap #6).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from typing import Self

from vajra.shm.layout import Field, Layout, line_fields
from vajra.shm.segment import Segment, SegmentError


class Overflow(enum.IntEnum):
    REJECT = 0
    OVERWRITE = 1


RING = Layout(
    "ring",
    1,
    (
        Field("capacity", doc="slots; a power of two"),
        Field("slot_bytes", doc="payload bytes per slot"),
        Field("stride", doc="bytes from one slot to the next (sequence word + padded payload)"),
        Field("policy", doc="Overflow: 0 reject-and-count, 1 overwrite-oldest"),
        *line_fields(
            "head",
            "rejected",
            "overwritten",
            "producer_pid",
            doc="producer-owned: messages published, refused, overwritten unread",
        ),
        *line_fields(
            "tail",
            "laps",
            "lost",
            "parked",
            "consumer_pid",
            doc="consumer-owned: messages consumed, laps detected, messages lost, "
            "1 while the consumer is about to block (spin-then-park)",
        ),
    ),
)


def _check_geometry(capacity: int, slot_bytes: int) -> None:
    if capacity < 2 or capacity & (capacity - 1):
        raise ValueError(f"ring capacity must be a power of two >= 2, got {capacity}")
    if slot_bytes < 8 or slot_bytes % 8:
        raise ValueError(f"ring slot_bytes must be a positive multiple of 8, got {slot_bytes}")


class Ring:
    """A ring segment. Create it in the owner, attach in peers; take one writer and one reader."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        v = segment.view()
        q = segment.cast(v, "q")
        base = segment.body // 8
        self.capacity = q[base + RING.word("capacity")]
        self.slot_bytes = q[base + RING.word("slot_bytes")]
        self.stride = q[base + RING.word("stride")]
        self.policy = Overflow(q[base + RING.word("policy")])
        segment.release(q)
        segment.release(v)
        if segment.extra_size < self.capacity * self.stride:
            raise SegmentError(f"{segment.name}: slot region smaller than its declared geometry")
        self.name = segment.name

    @classmethod
    def create(
        cls,
        run_id: str,
        name: str,
        capacity: int,
        slot_bytes: int = 64,
        policy: Overflow = Overflow.REJECT,
        *,
        slot_align: int = 8,
    ) -> Self:
        """`slot_align` 64 puts each slot on its own cache line(s): less false sharing between
        the slot being written and the one being read, more memory (see bench results)."""
        _check_geometry(capacity, slot_bytes)
        stride = (8 + slot_bytes + slot_align - 1) & ~(slot_align - 1)
        seg = Segment.create(run_id, name, RING, extra=capacity * stride)
        v = seg.view()
        q = seg.cast(v, "q")
        base = seg.body // 8
        q[base + RING.word("capacity")] = capacity
        q[base + RING.word("slot_bytes")] = slot_bytes
        q[base + RING.word("stride")] = stride
        q[base + RING.word("policy")] = int(policy)
        seg.release(q)
        seg.release(v)
        return cls(seg)

    @classmethod
    def attach(cls, run_id: str, name: str, *, readonly: bool = False) -> Self:
        return cls(Segment.attach(run_id, name, RING, readonly=readonly))

    def writer(self) -> RingWriter:
        """The producer endpoint; call from the producing thread (it takes its own views)."""
        return RingWriter(self)

    def reader(self) -> RingReader:
        """The consumer endpoint; call from the consuming thread (it takes its own views)."""
        return RingReader(self)

    def stats(self) -> dict[str, int]:
        """Counters for monitors (any thread; each value is one atomic load)."""
        v = self.segment.view()
        q = self.segment.cast(v, "q")
        base = self.segment.body // 8
        out = {
            n: q[base + RING.word(n)]
            for n in ("head", "tail", "rejected", "overwritten", "laps", "lost", "parked")
        }
        out["depth"] = max(0, out["head"] - out["tail"])
        out["capacity"] = self.capacity
        self.segment.release(q)
        self.segment.release(v)
        return out

    def close(self) -> None:
        self.segment.close()

    def unlink(self) -> None:
        self.segment.unlink()


class RingWriter:
    """Producer endpoint. Hot path: `claim()` -> write payload at the returned offset -> `publish()`.

    `buf` is this endpoint's own byte view of the segment: write payloads into it with a
    precompiled `struct.Struct.pack_into(w.buf, off, ...)`; `q` is its 'q' cast for 8-byte fields.
    `claim` is bound at construction to the policy's implementation, so the hot path carries no
    policy branch.
    """

    __slots__ = (
        "_claimed",
        "_head",
        "_head_w",
        "_mask",
        "_n",
        "_overw_w",
        "_overwrite",
        "_rej_w",
        "_ring",
        "_slot0",
        "_stride_w",
        "_tail",
        "_tail_w",
        "batch_offset",
        "buf",
        "capacity",
        "claim",
        "q",
        "slot_bytes",
        "stride",
    )

    def __init__(self, ring: Ring) -> None:
        seg = ring.segment
        if seg.readonly:
            raise SegmentError(f"{ring.name}: cannot write through a read-only attachment")
        self._ring = ring
        self.buf = seg.view()
        self.q = seg.cast(self.buf, "q")
        base = seg.body // 8
        self._head_w = base + RING.word("head")
        self._tail_w = base + RING.word("tail")
        self._rej_w = base + RING.word("rejected")
        self._overw_w = base + RING.word("overwritten")
        self._slot0 = seg.extra // 8
        self._stride_w = ring.stride // 8
        #: bytes between consecutive slots: batch payload i is at batch_offset + i * stride
        self.stride = ring.stride
        self._mask = ring.capacity - 1
        self.capacity = ring.capacity
        self.slot_bytes = ring.slot_bytes
        self._overwrite = ring.policy is Overflow.OVERWRITE
        self.claim = self._claim_overwrite if self._overwrite else self._claim_reject
        self._head = self.q[self._head_w]  # resume after a producer restart
        self._tail = self.q[self._tail_w]
        self._claimed = -1
        self._n = 0
        self.batch_offset = -1
        self.q[base + RING.word("producer_pid")] = os.getpid()

    def _claim_reject(self) -> int:
        """Byte offset in `buf` of the next slot's payload, or -1 (counted) if the ring is full.

        Cost: ~5 attribute loads and no shared load while the cached tail says there is room.
        """
        head = self._head
        if head - self._tail >= self.capacity:
            self._tail = self.q[self._tail_w]
            if head - self._tail >= self.capacity:
                self.q[self._rej_w] += 1
                return -1
        w = self._slot0 + (head & self._mask) * self._stride_w
        self._claimed = w
        return (w + 1) << 3

    def _claim_overwrite(self) -> int:
        head = self._head
        if head - self._tail >= self.capacity:
            self._tail = self.q[self._tail_w]
            if head - self._tail >= self.capacity:
                self.q[self._overw_w] += 1
        w = self._slot0 + (head & self._mask) * self._stride_w
        self.q[w] = -(head + 1)  # in progress: a reader of the old message sees it change
        self._claimed = w
        return (w + 1) << 3

    def claim_wait(self) -> int:
        """Like `claim()`, but back-pressure instead of rejecting: spin until the consumer frees
        a slot (for producers that must not drop: benchmarks, the journal feed). Nothing is
        counted as rejected. Under OVERWRITE it is plain `claim()`."""
        head = self._head
        if head - self._tail >= self.capacity:
            if self._overwrite:
                return self._claim_overwrite()
            q, tw, cap = self.q, self._tail_w, self.capacity
            t = q[tw]
            while head - t >= cap:  # cost: one shared load per spin
                t = q[tw]
            self._tail = t
        w = self._slot0 + (head & self._mask) * self._stride_w
        if self._overwrite:
            self.q[w] = -(head + 1)
        self._claimed = w
        return (w + 1) << 3

    def publish(self) -> None:
        """Make the claimed slot visible: the payload is already written (TSO keeps the order).
        Cost: two 8-byte stores (slot sequence, then the head cursor for monitors)."""
        head = self._head + 1
        self.q[self._claimed] = head
        self._head = head
        self.q[self._head_w] = head

    def offer(self, payload: bytes | bytearray | memoryview) -> bool:
        """Copy `payload` (<= slot_bytes) into the next slot and publish it. Allocates a slice
        view: convenient, not for the hottest path (use claim/pack_into/publish there)."""
        n = len(payload)
        if n > self.slot_bytes:
            raise ValueError(f"payload of {n} bytes exceeds slot size {self.slot_bytes}")
        off = self.claim()
        if off < 0:
            return False
        self.buf[off : off + n] = payload
        self.publish()
        return True

    def claim_batch(self, n: int) -> int:
        """Claim up to `n` consecutive slots; returns how many. A batch never wraps around the
        end of the slot array, so payload i sits at `batch_offset + i * stride` (plain
        arithmetic in the caller's loop). Under REJECT, 0 means full; a shortfall is NOT counted
        as rejected: the caller retries, or drops and calls `reject()`.
        Fill the slots, then `publish_batch()`."""
        head = self._head
        cap = self.capacity
        to_end = cap - (head & self._mask)
        if n > to_end:
            n = to_end
        if not self._overwrite:
            room = cap - (head - self._tail)
            if room < n:
                self._tail = self.q[self._tail_w]
                room = cap - (head - self._tail)
                if n > room:
                    n = room
        else:
            lost = head + n - self._tail - cap
            if lost > 0:
                self._tail = self.q[self._tail_w]
                lost = min(n, head + n - self._tail - cap)
                if lost > 0:
                    self.q[self._overw_w] += lost
            q, w, sw = self.q, self._slot0 + (head & self._mask) * self._stride_w, self._stride_w
            for s in range(head + 1, head + n + 1):
                q[w] = -s
                w += sw
        self._n = n
        self.batch_offset = (self._slot0 + (head & self._mask) * self._stride_w + 1) << 3
        return n

    def offset_at(self, i: int) -> int:
        """Payload byte offset of the i-th slot of the current batch."""
        return self.batch_offset + i * self.stride

    def publish_batch(self) -> None:
        """Publish the whole batch: one sequence store per slot, one head store per batch."""
        head, n = self._head, self._n
        q, sw = self.q, self._stride_w
        w = self._slot0 + (head & self._mask) * sw
        for s in range(head + 1, head + n + 1):  # cost: one store and one add per message
            q[w] = s
            w += sw
        self._head = head + n
        q[self._head_w] = head + n
        self._n = 0

    def reject(self, n: int = 1) -> None:
        """Count messages the caller dropped after a short `claim_batch` (never silent)."""
        self.q[self._rej_w] += n

    @property
    def published(self) -> int:
        return self._head

    def close(self) -> None:
        """Release this endpoint's views; call from the owning thread."""
        self.q.release()
        self.buf.release()


class RingReader:
    """Consumer endpoint. Hot path: `poll()` -> read payload at the offset -> `commit()`.

    Under OVERWRITE, copy the payload out *before* `commit()` and trust it only if `commit()`
    returns True (the slot was not overwritten while you read it).
    """

    __slots__ = (
        "_cur",
        "_head_w",
        "_laps_w",
        "_lost_w",
        "_mask",
        "_overwrite",
        "_ring",
        "_slot0",
        "_stride_w",
        "_tail",
        "_tail_w",
        "batch_offset",
        "buf",
        "capacity",
        "parked_w",
        "q",
        "slot_bytes",
        "stride",
    )

    def __init__(self, ring: Ring) -> None:
        seg = ring.segment
        if seg.readonly:
            raise SegmentError(f"{ring.name}: a consumer writes its cursor; attach read-write")
        self._ring = ring
        self.buf = seg.view()
        self.q = seg.cast(self.buf, "q")
        base = seg.body // 8
        self._head_w = base + RING.word("head")
        self._tail_w = base + RING.word("tail")
        self._laps_w = base + RING.word("laps")
        self._lost_w = base + RING.word("lost")
        self.parked_w = base + RING.word("parked")
        self._slot0 = seg.extra // 8
        self._stride_w = ring.stride // 8
        self.stride = ring.stride
        self._mask = ring.capacity - 1
        self.capacity = ring.capacity
        self.slot_bytes = ring.slot_bytes
        self._overwrite = ring.policy is Overflow.OVERWRITE
        self._tail = self.q[self._tail_w]
        self._cur = -1
        self.batch_offset = -1
        self.q[base + RING.word("consumer_pid")] = os.getpid()

    def poll(self) -> int:
        """Byte offset of the next message's payload, or -1 if none is published yet.

        Cost when empty: 4 attribute loads and 1 shared load (the slot's sequence word).
        """
        tail = self._tail
        w = self._slot0 + (tail & self._mask) * self._stride_w
        s = self.q[w]
        if s == tail + 1:
            self._cur = w
            return (w + 1) << 3
        if self._overwrite and (s > tail + 1 or s < -(tail + 1)):
            self._recover()
            return self.poll()
        return -1

    def commit(self) -> bool:
        """Mark the polled message consumed. Returns False under OVERWRITE if it was overwritten
        while being read (discard the copy; it is counted in `lost`)."""
        tail = self._tail + 1
        if self._overwrite and self.q[self._cur] != tail:
            self.q[self._lost_w] += 1
            self._tail = tail
            self.q[self._tail_w] = tail
            return False
        self._tail = tail
        self.q[self._tail_w] = tail
        return True

    def poll_batch(self, max_n: int) -> int:
        """How many consecutive messages are ready (<= max_n, never wrapping past the end of the
        slot array); message i is at `batch_offset + i * stride`.

        Under REJECT this is one load of the producer's head cursor (stored after the slots it
        covers); under OVERWRITE each slot's sequence is checked.
        """
        tail = self._tail
        slot = tail & self._mask
        to_end = self.capacity - slot
        if max_n > to_end:
            max_n = to_end
        self.batch_offset = (self._slot0 + slot * self._stride_w + 1) << 3
        if not self._overwrite:
            n = self.q[self._head_w] - tail
            return n if n < max_n else max_n
        q, w, sw = self.q, self._slot0 + slot * self._stride_w, self._stride_w
        n = 0
        while n < max_n and q[w] == tail + n + 1:
            n += 1
            w += sw
        if n == 0:
            s = q[self._slot0 + slot * sw]
            if s > tail + 1 or s < -(tail + 1):
                self._recover()
                return self.poll_batch(max_n)
        return n

    def offset_at(self, i: int) -> int:
        return self.batch_offset + i * self.stride

    def still_valid(self, i: int) -> bool:
        """OVERWRITE: the i-th message of the batch was not overwritten since `poll_batch`
        (copy it out first, then ask). Always True under REJECT."""
        t = self._tail + i
        return self.q[self._slot0 + (t & self._mask) * self._stride_w] == t + 1

    def commit_batch(self, n: int) -> None:
        """Mark `n` messages consumed with one cursor store (count invalid ones via `drop`)."""
        self._tail += n
        self.q[self._tail_w] = self._tail

    def drop(self, n: int = 1) -> None:
        """Count messages found overwritten during a batch read as lost."""
        self.q[self._lost_w] += n

    def _recover(self) -> None:
        """Lapped under OVERWRITE: skip to the oldest message that may still be intact (the next poll re-checks its sequence and recovers again if the producer got there first)."""
        head = self.q[self._head_w]
        new_tail = max(self._tail + 1, head - self.capacity)
        self.q[self._lost_w] += new_tail - self._tail
        self.q[self._laps_w] += 1
        self._tail = new_tail
        self.q[self._tail_w] = new_tail

    @property
    def consumed(self) -> int:
        return self._tail

    def pending(self) -> int:
        """Messages published but not consumed (one load of the producer's cursor)."""
        return self.q[self._head_w] - self._tail

    def close(self) -> None:
        self.q.release()
        self.buf.release()


class FanIn:
    """Several SPSC rings consumed by one thread, polled round-robin from where it last found
    data (so a busy producer cannot starve the others)."""

    __slots__ = ("_i", "readers")

    def __init__(self, readers: Sequence[RingReader]) -> None:
        if not readers:
            raise ValueError("FanIn needs at least one ring")
        self.readers = tuple(readers)
        self._i = 0

    def poll(self) -> tuple[RingReader, int] | None:
        """The next (reader, payload offset), or None when every ring is empty.

        Cost when idle: one `poll()` per ring. Allocates one tuple per message.
        """
        rs = self.readers
        n = len(rs)
        i = self._i
        for _ in range(n):
            r = rs[i]
            off = r.poll()
            if off >= 0:
                self._i = i
                return r, off
            i = i + 1 if i + 1 < n else 0
        return None
