"""The SPSC ring: a model-based property test, exact overflow accounting, and 10 M-message
stress runs across threads and across processes (checksummed: nothing lost, duplicated, torn or
reordered)."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import struct
import threading
from collections import deque
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.shm.ring import Overflow, Ring
from vajra.shm.segment import new_run_id

MSG = struct.Struct("<8q")
MAGIC = 0x2545F4914F6CDD1D


def pack(buf: memoryview, off: int, seq: int) -> None:
    # every word depends on seq, and the last is a checksum over the others: a torn or
    # misplaced copy cannot pass `check`
    a, b, c = seq * 3 + 1, seq ^ MAGIC, -seq
    d, e, f = seq << 7, seq + 11, (seq * 2654435761) & 0x7FFFFFFF
    MSG.pack_into(buf, off, seq, a, b, c, d, e, f, seq ^ a ^ b ^ c ^ d ^ e ^ f)


def check(buf: memoryview, off: int) -> int:
    seq, a, b, c, d, e, f, chk = MSG.unpack_from(buf, off)
    if chk != seq ^ a ^ b ^ c ^ d ^ e ^ f or a != seq * 3 + 1 or b != seq ^ MAGIC:
        raise AssertionError(f"torn message at seq {seq}")
    return seq


@pytest.fixture
def run_id() -> Iterator[str]:
    yield new_run_id()


def _pin(cpu: int) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(threading.get_native_id(), {cpus[cpu % len(cpus)]})


# -- model-based property test ------------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(1, 9)),
        st.tuples(st.just("get"), st.integers(1, 9)),
        st.tuples(st.just("putb"), st.integers(1, 12)),
        st.tuples(st.just("getb"), st.integers(1, 12)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(cap_pow=st.integers(1, 4), policy=st.sampled_from(list(Overflow)), script=ops)
def test_ring_matches_a_bounded_queue_model(
    cap_pow: int, policy: Overflow, script: list[tuple[str, int]]
) -> None:
    """Single-threaded interleavings of single and batch operations against a deque model:
    FIFO order, exact rejected count (REJECT), and received + lost == published (OVERWRITE)."""
    cap = 1 << cap_pow
    ring = Ring.create(new_run_id(), "model", cap, 64, policy)
    w, r = ring.writer(), ring.reader()
    model: deque[int] = deque()
    published = rejected = received = 0
    last = -1
    try:
        for op, k in script:
            if op == "put":
                for _ in range(k):
                    off = w.claim()
                    if off < 0:
                        assert policy is Overflow.REJECT and len(model) == cap
                        rejected += 1
                        continue
                    pack(w.buf, off, published)
                    w.publish()
                    model.append(published)
                    published += 1
                    if len(model) > cap:
                        model.popleft()
            elif op == "putb":
                n = w.claim_batch(k)
                if policy is Overflow.REJECT:
                    # batches never wrap: they may stop short at the end of the slot array
                    assert n <= min(k, cap - len(model))
                    assert n >= 1 or len(model) == cap
                else:
                    assert n >= 1
                for i in range(n):
                    pack(w.buf, w.offset_at(i), published + i)
                w.publish_batch()
                for i in range(n):
                    model.append(published + i)
                published += n
                while len(model) > cap:
                    model.popleft()
            elif op == "get":
                for _ in range(k):
                    off = r.poll()
                    if off < 0:
                        assert not model
                        break
                    seq = check(r.buf, off)
                    assert r.commit()
                    assert seq == model.popleft()
                    assert seq > last
                    last = seq
                    received += 1
            else:
                n = r.poll_batch(k)
                assert n <= min(k, len(model))
                if model:
                    assert n >= 1
                for i in range(n):
                    seq = check(r.buf, r.offset_at(i))
                    assert r.still_valid(i)
                    assert seq == model.popleft()
                    assert seq > last
                    last = seq
                    received += 1
                r.commit_batch(n)
        stats = ring.stats()
        assert stats["head"] == published
        if policy is Overflow.REJECT:
            assert stats["rejected"] == rejected
            assert stats["lost"] == 0
        # drain, then the books balance exactly
        while (off := r.poll()) >= 0:
            check(r.buf, off)
            assert r.commit()
            received += 1
        assert received + ring.stats()["lost"] == published
    finally:
        w.close()
        r.close()
        ring.close()
        ring.unlink()


# -- stress: threads ------------------------------------------------------------------------------

N_STRESS = 10_000_000


def _produce(run: str, n: int, batched: bool, cpu: int) -> None:
    _pin(cpu)
    ring = Ring.attach(run, "stress")
    w = ring.writer()
    buf = w.buf
    if batched:
        i = 0
        while i < n:
            k = w.claim_batch(min(64, n - i))
            for j in range(k):
                pack(buf, w.offset_at(j), i + j)
            if k:
                w.publish_batch()
                i += k
    else:
        for i in range(n):
            pack(buf, w.claim_wait(), i)
            w.publish()
    w.close()
    ring.close()


def _consume(run: str, n: int, batched: bool, cpu: int, out: list[int]) -> None:
    _pin(cpu)
    ring = Ring.attach(run, "stress")
    r = ring.reader()
    buf = r.buf
    expect = 0
    bad = 0
    while expect < n:
        if batched:
            k = r.poll_batch(64)
            for j in range(k):
                if check(buf, r.offset_at(j)) != expect:
                    bad += 1
                expect += 1
            if k:
                r.commit_batch(k)
        else:
            off = r.poll()
            if off < 0:
                continue
            if check(buf, off) != expect:
                bad += 1
            r.commit()
            expect += 1
    out.extend([expect, bad, r.poll()])
    r.close()
    ring.close()


@pytest.mark.slow
@pytest.mark.parametrize("batched", [False, True], ids=["single", "batched"])
def test_stress_threads_10m(run_id: str, batched: bool) -> None:
    ring = Ring.create(run_id, "stress", 1024, 64)
    out: list[int] = []
    n = N_STRESS // 2  # two parametrisations: 10 M messages across threads in all
    tc = threading.Thread(target=_consume, args=(run_id, n, batched, 1, out))
    tp = threading.Thread(target=_produce, args=(run_id, n, batched, 0))
    tc.start()
    tp.start()
    tp.join()
    tc.join()
    try:
        assert out == [n, 0, -1], "consumer saw gaps/reorders or extra messages"
        s = ring.stats()
        assert s["head"] == s["tail"] == n
        assert s["rejected"] == s["lost"] == 0
    finally:
        ring.close()
        ring.unlink()


def _consume_proc(run: str, n: int, batched: bool, cpu: int, q: mp.Queue) -> None:  # type: ignore[type-arg]
    out: list[int] = []
    _consume(run, n, batched, cpu, out)
    q.put(out)


@pytest.mark.slow
@pytest.mark.parametrize("batched", [False, True], ids=["single", "batched"])
def test_stress_processes_10m(run_id: str, batched: bool) -> None:
    ring = Ring.create(run_id, "stress", 4096, 64)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    n = N_STRESS // 2
    pc = ctx.Process(target=_consume_proc, args=(run_id, n, batched, 1, q))
    pp = ctx.Process(target=_produce, args=(run_id, n, batched, 0))
    pc.start()
    pp.start()
    try:
        out = q.get(timeout=600)
        pp.join(60)
        pc.join(60)
        assert pp.exitcode == 0 and pc.exitcode == 0
        assert out == [n, 0, -1]
        s = ring.stats()
        assert s["head"] == s["tail"] == n
    finally:
        for p in (pp, pc):
            if p.is_alive():
                p.kill()
        ring.close()
        ring.unlink()


# -- overflow accounting under concurrency -------------------------------------------------------


def test_reject_accounting_exact_under_concurrency(run_id: str) -> None:
    """A producer that never waits against a slower consumer: every offer is either received
    (in order, intact) or counted as rejected; nothing else."""
    n = 300_000
    ring = Ring.create(run_id, "rej", 64, 64, Overflow.REJECT)
    received: list[int] = []
    done = threading.Event()

    def consume() -> None:
        _pin(1)
        r = ring.reader()
        while True:
            off = r.poll()
            if off < 0:
                if done.is_set() and r.poll() < 0:
                    break
                continue
            received.append(check(r.buf, off))
            r.commit()
            for _ in range(20):  # be slower than the producer
                pass
        r.close()

    t = threading.Thread(target=consume)
    t.start()
    _pin(0)
    w = ring.writer()
    accepted = 0
    for _i in range(n):
        off = w.claim()
        if off >= 0:
            pack(w.buf, off, accepted)
            w.publish()
            accepted += 1
    w.close()
    done.set()
    t.join()
    s = ring.stats()
    try:
        assert s["rejected"] > 0, "test needs a ring that actually overflowed"
        assert accepted + s["rejected"] == n
        assert received == list(range(accepted))
    finally:
        ring.close()
        ring.unlink()


def test_overwrite_accounting_exact_under_concurrency(run_id: str) -> None:
    """OVERWRITE: the consumer never accepts a torn message (checksums), sees strictly
    increasing sequence numbers, and received + lost == published exactly."""
    n = 300_000
    ring = Ring.create(run_id, "ovw", 16, 64, Overflow.OVERWRITE)
    got: list[int] = []
    done = threading.Event()

    def consume() -> None:
        _pin(1)
        r = ring.reader()
        raw = bytearray(64)
        while True:
            off = r.poll()
            if off < 0:
                if done.is_set() and r.poll() < 0:
                    break
                continue
            raw[:] = r.buf[off : off + 64]  # copy first, then validate
            if r.commit():
                got.append(check(memoryview(raw), 0))
        r.close()

    t = threading.Thread(target=consume)
    t.start()
    _pin(0)
    w = ring.writer()
    for i in range(n):
        pack(w.buf, w.claim(), i)
        w.publish()
    w.close()
    done.set()
    t.join()
    s = ring.stats()
    try:
        assert all(a < b for a, b in itertools.pairwise(got))
        assert len(got) + s["lost"] == n
        assert s["laps"] >= 1 or s["lost"] == 0
    finally:
        ring.close()
        ring.unlink()


def test_publish_is_a_single_store_trap1(run_id: str) -> None:
    """Trap #1 regression: a reader spinning on a slot's sequence word must only ever see it
    grow. Publishing with struct.pack_into zero-fills first and would show 0 between values."""
    ring = Ring.create(run_id, "trap1", 2, 8)
    stop = threading.Event()
    seen_bad: list[tuple[int, int]] = []

    def spin() -> None:
        _pin(1)
        v = ring.segment.view()
        q = v.cast("q")
        w0 = ring.segment.extra // 8
        last = 0
        while not stop.is_set():
            x = q[w0]
            if x < last:
                seen_bad.append((last, x))
                break
            last = x
        q.release()
        v.release()

    t = threading.Thread(target=spin)
    t.start()
    _pin(0)
    w, r = ring.writer(), ring.reader()
    for _ in range(200_000):  # slot 0 gets sequence words 1, 3, 5, ...
        w.claim()
        w.publish()
        r.poll()
        r.commit()
        w.claim()
        w.publish()
        r.poll()
        r.commit()
    stop.set()
    t.join()
    w.close()
    r.close()
    ring.close()
    ring.unlink()
    assert not seen_bad


def test_geometry_and_attach_errors(run_id: str) -> None:
    with pytest.raises(ValueError, match="power of two"):
        Ring.create(run_id, "bad", 1000, 64)
    with pytest.raises(ValueError, match="multiple of 8"):
        Ring.create(run_id, "bad", 1024, 60)
    ring = Ring.create(run_id, "geo", 8, 24)
    try:
        peer = Ring.attach(run_id, "geo")
        assert (peer.capacity, peer.slot_bytes) == (8, 24)
        w = peer.writer()
        with pytest.raises(ValueError, match="exceeds slot size"):
            w.offer(b"x" * 25)
        assert w.offer(b"hello")
        r = ring.reader()
        off = r.poll()
        assert bytes(r.buf[off : off + 5]) == b"hello"
        w.close()
        r.close()
        peer.close()
        ro = Ring.attach(run_id, "geo", readonly=True)
        with pytest.raises(Exception, match="read-only"):
            ro.writer()
        assert ro.stats()["head"] == 1
        ro.close()
    finally:
        ring.close()
        ring.unlink()


def test_fan_in_keeps_each_producers_order_and_loses_nothing(run_id: str) -> None:
    """Several producers, one consumer: one SPSC ring per producer, polled round-robin."""
    from vajra.shm.ring import FanIn

    n_prod, n = 3, 50_000
    rings = [Ring.create(run_id, f"fan{i}", 256, 64) for i in range(n_prod)]

    def produce(i: int) -> None:
        w = rings[i].writer()
        for k in range(n):
            pack(w.buf, w.claim_wait(), i * 10**9 + k)
            w.publish()
        w.close()

    ts = [threading.Thread(target=produce, args=(i,)) for i in range(n_prod)]
    for t in ts:
        t.start()
    readers = [rg.reader() for rg in rings]
    fan = FanIn(readers)
    nxt = [0] * n_prod
    total = 0
    served_while_busy = set()
    while total < n_prod * n:
        got = fan.poll()
        if got is None:
            continue
        r, off = got
        seq = check(r.buf, off)
        r.commit()
        i, k = divmod(seq, 10**9)
        assert readers[i] is r
        assert k == nxt[i], f"producer {i}: got {k}, expected {nxt[i]}"
        nxt[i] += 1
        total += 1
        if total < n:
            served_while_busy.add(i)
    for t in ts:
        t.join()
    assert fan.poll() is None
    assert nxt == [n] * n_prod
    # round-robin: no producer waited for another to finish before being served
    assert len(served_while_busy) == n_prod
    for r in readers:
        r.close()
    for rg in rings:
        rg.close()
        rg.unlink()
    with pytest.raises(ValueError):
        FanIn([])
