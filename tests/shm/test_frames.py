"""Frames over an SPSC ring: exact payloads at every size boundary, wrap-around, a model of
all-or-nothing back-pressure, a frame whose later slots are not published yet is not taken,
give_up, size limits, and frames in order and intact across threads and across processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.shm.frames import FrameReader, FrameWriter
from vajra.shm.ring import Overflow, Ring
from vajra.shm.segment import new_run_id

SLOT = 64


@pytest.fixture
def ring() -> Iterator[Ring]:
    r = Ring.create(new_run_id(), "frames", 8, SLOT)
    yield r
    r.close()
    r.unlink()


def payload(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


def slots_for(n: int) -> int:
    return (n + 4 + SLOT - 1) // SLOT


def test_sizes_at_every_boundary(ring: Ring) -> None:
    w, r = FrameWriter(ring), FrameReader(ring)
    rng = random.Random(1)
    try:
        assert w.max_payload == r.max_payload == 8 * SLOT - 4
        assert r.take() is None
        sizes = [0, 1, 59, 60, 61, 123, 124, 125, 200, 8 * SLOT - 5, 8 * SLOT - 4]
        for n in sizes * 3:  # three passes: frames start at every slot and wrap
            p = payload(rng, n)
            assert w.send(p)
            assert w.backlog() == slots_for(n)
            assert r.take() == p
            assert r.take() is None
            assert w.backlog() == 0
        assert w.frames == r.frames == len(sizes) * 3
        s = ring.stats()
        assert s["rejected"] == 0 and s["head"] == s["tail"] == sum(map(slots_for, sizes)) * 3
    finally:
        w.close()
        r.close()


def test_payload_types(ring: Ring) -> None:
    w, r = FrameWriter(ring), FrameReader(ring)
    try:
        for p in (b"abc", bytearray(b"defg" * 30), memoryview(b"hij" * 50)):
            assert w.send(p)
            got = r.take()
            assert type(got) is bytes and got == bytes(p)
    finally:
        w.close()
        r.close()


def test_frame_bigger_than_ring_raises(ring: Ring) -> None:
    w, r = FrameWriter(ring), FrameReader(ring)
    try:
        with pytest.raises(ValueError, match="exceeds ring"):
            w.send(bytes(w.max_payload + 1))
        assert w.backlog() == 0 and w.frames == 0
        big = bytes(range(256)) * 2
        assert w.send(big[: w.max_payload])  # exactly the whole ring
        assert r.take() == big[: w.max_payload]
    finally:
        w.close()
        r.close()


def test_overwrite_rings_are_refused() -> None:
    ring = Ring.create(new_run_id(), "ovw", 8, SLOT, Overflow.OVERWRITE)
    try:
        with pytest.raises(ValueError, match="REJECT"):
            FrameWriter(ring)
        with pytest.raises(ValueError, match="REJECT"):
            FrameReader(ring)
    finally:
        ring.close()
        ring.unlink()


def test_give_up_when_the_consumer_never_reads(ring: Ring) -> None:
    w, r = FrameWriter(ring), FrameReader(ring)
    try:
        for i in range(8):
            assert w.send(bytes([i]) * 10)
        calls = 0

        def give_up() -> bool:
            nonlocal calls
            calls += 1
            return calls >= 3

        t0 = time.monotonic()
        assert not w.send(b"late", give_up)
        assert calls == 3 and time.monotonic() - t0 < 1
        assert not w.send(b"late", give_up=lambda: True)
        assert w.frames == 8 and w.backlog() == 8
        assert ring.stats()["rejected"] == 0  # waiting never counts a rejected message
        assert [r.take() for _ in range(9)] == [bytes([i]) * 10 for i in range(8)] + [None]
        assert w.send(b"late", give_up=lambda: True)  # room now: give_up is not consulted
        assert r.take() == b"late"
    finally:
        w.close()
        r.close()


def test_a_frame_is_published_whole_or_not_at_all(ring: Ring) -> None:
    """6 of 8 slots used: a 3-slot frame must not publish its first 2 slots and then wait."""
    w, r = FrameWriter(ring), FrameReader(ring)
    try:
        for i in range(6):
            assert w.send(bytes([i]))
        assert not w.send(bytes(150), give_up=lambda: True)
        assert ring.stats()["head"] == 6
        assert [r.take() for _ in range(7)] == [bytes([i]) for i in range(6)] + [None]
        assert w.send(bytes(150), give_up=lambda: True)  # it wraps: slots 6, 7, 0
        assert r.take() == bytes(150)
    finally:
        w.close()
        r.close()


def test_frame_with_unpublished_continuation_is_not_taken(ring: Ring) -> None:
    """Publish a 3-slot frame one slot at a time through the raw ring writer: the reader sees
    nothing (and consumes nothing) until the last slot is published."""
    rng = random.Random(7)
    p = payload(rng, 150)  # 60 + 64 + 26 bytes
    chunks = [p[:60], p[60:124], p[124:]]
    rw = ring.writer()
    r = FrameReader(ring)
    try:
        for i, chunk in enumerate(chunks):
            off = rw.claim()
            assert off >= 0
            if i == 0:
                struct.pack_into("<I", rw.buf, off, len(p))
                rw.buf[off + 4 : off + 4 + len(chunk)] = chunk
            else:
                rw.buf[off : off + len(chunk)] = chunk
            rw.publish()
            if i < 2:
                assert r.take() is None
                assert ring.stats()["tail"] == 0 and r.frames == 0
        assert r.take() == p
        assert ring.stats()["tail"] == 3 and r.frames == 1
    finally:
        rw.close()
        r.close()


@settings(max_examples=100, deadline=None)
@given(
    script=st.lists(
        st.one_of(st.integers(0, 8 * SLOT - 4), st.just(-1)),  # -1: take; n: send n bytes
        max_size=60,
    )
)
def test_matches_a_queue_model(script: list[int]) -> None:
    """Single-threaded sends (never waiting) and takes against a deque of frames: a send
    succeeds exactly when all its slots are free, takes come out in order and intact."""
    ring = Ring.create(new_run_id(), "model", 8, SLOT)
    w, r = FrameWriter(ring), FrameReader(ring)
    rng = random.Random(len(script))
    model: deque[bytes] = deque()
    used = 0
    try:
        for op in script:
            if op < 0:
                got = r.take()
                if model:
                    want = model.popleft()
                    assert got == want
                    used -= slots_for(len(want))
                else:
                    assert got is None
            else:
                p = payload(rng, op)
                fits = used + slots_for(op) <= 8
                assert w.send(p, give_up=lambda: True) is fits
                if fits:
                    model.append(p)
                    used += slots_for(op)
            assert w.backlog() == used
        assert ring.stats()["rejected"] == 0
    finally:
        w.close()
        r.close()
        ring.close()
        ring.unlink()


# -- concurrency -------------------------------------------------------------------------------


def _frames(seed: int, count: int, max_size: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    for i in range(count):
        n = rng.choice((rng.randint(1, 60), rng.randint(61, max_size)))
        yield i.to_bytes(4, "little") + rng.randbytes(max(0, n - 4))


def test_threads_preserve_order_and_content(ring: Ring) -> None:
    """Producer and consumer threads through an 8-slot ring: frames of 1 byte to the whole
    ring, the producer constantly back-pressured."""
    count = 20_000
    deadline = time.monotonic() + 20
    got: list[bytes] = []
    sent: list[bool] = []

    def consume() -> None:
        r = FrameReader(ring)
        while len(got) < count and time.monotonic() < deadline:
            f = r.take()
            if f is None:
                os.sched_yield()
                continue
            got.append(f)
        r.close()

    def produce() -> None:
        w = FrameWriter(ring)
        for f in _frames(11, count, 8 * SLOT - 4):
            if not w.send(f, give_up=lambda: time.monotonic() > deadline):
                sent.append(False)
                break
        w.close()

    threads = [threading.Thread(target=consume), threading.Thread(target=produce)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not sent, "producer gave up: consumer stalled"
    want = list(_frames(11, count, 8 * SLOT - 4))
    assert len(got) == count
    for i, (g, f) in enumerate(zip(got, want, strict=True)):
        assert g == f, f"frame {i} differs"
    s = ring.stats()
    assert s["rejected"] == 0 and s["head"] == s["tail"]


def _child_send(run_id: str, count: int) -> None:
    ring = Ring.attach(run_id, "xproc")
    w = FrameWriter(ring)
    deadline = time.monotonic() + 30
    for f in _frames(23, count, 16 * SLOT - 4):
        if not w.send(f, give_up=lambda: time.monotonic() > deadline):
            raise SystemExit(3)
    w.close()
    ring.close()


def test_across_processes() -> None:
    run_id = new_run_id()
    ring = Ring.create(run_id, "xproc", 16, SLOT)
    r = FrameReader(ring)
    count = 20_000
    p = mp.get_context("spawn").Process(target=_child_send, args=(run_id, count))
    p.start()
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            f = r.take()
            if f is None:
                os.sched_yield()
                continue
            got.append(f)
        p.join(10)
        assert p.exitcode == 0
        assert got == list(_frames(23, count, 16 * SLOT - 4))
        assert r.take() is None
        s = ring.stats()
        assert s["rejected"] == 0 and s["head"] == s["tail"]
    finally:
        if p.is_alive():
            p.kill()
        r.close()
        ring.close()
        ring.unlink()
