"""Wait strategies: a parked consumer is woken by its producer (no lost wake-ups over many
rounds), a missed wake costs at most the park timeout, and each strategy is chosen by name."""

from __future__ import annotations

import os
import threading
import time

from vajra.runtime.coreplan import WaitKind
from vajra.runtime.wait import (
    BusySpin,
    SpinPark,
    SpinYield,
    Waker,
    full_fence,
    make_wait,
    new_eventfd,
)
from vajra.shm.ring import RING, Ring
from vajra.shm.segment import new_run_id


def test_spin_park_consumer_receives_everything_and_parks() -> None:
    run = new_run_id()
    ring = Ring.create(run, "park", 64, 16)
    efd = new_eventfd()
    n = 2000
    got: list[int] = []
    strategies: list[SpinPark] = []

    def consume() -> None:
        r = ring.reader()
        q, pw = r.q, r.parked_w
        wait = SpinPark(
            efd,
            lambda v: q.__setitem__(pw, v),
            lambda: r.pending() > 0,
            spins=10,
            yields=5,
            park_timeout_s=2.0,
        )
        strategies.append(wait)
        deadline = time.monotonic() + 60
        while len(got) < n and time.monotonic() < deadline:
            off = r.poll()
            if off < 0:
                wait.idle()
                continue
            wait.reset()
            got.append(int.from_bytes(r.buf[off : off + 8], "little"))
            r.commit()
        r.close()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    w = ring.writer()
    rq = ring.segment.view().cast("q")
    parked_w = ring.segment.body // 8 + RING.word("parked")
    waker = Waker(efd, lambda: rq[parked_w])
    t0 = time.monotonic()
    for i in range(n):
        off = w.claim_wait()
        w.buf[off : off + 8] = i.to_bytes(8, "little")
        w.publish()
        waker.wake()
        if i % 50 == 0:
            time.sleep(0.002)  # let the consumer go idle long enough to park
    t.join(30)
    elapsed = time.monotonic() - t0
    w.close()
    rq.release()
    ring.close()
    ring.unlink()
    os.close(efd)
    assert got == list(range(n))
    sp = strategies[0]
    assert sp.parks > 0, "the consumer never parked: the test did not exercise parking"
    assert waker.wakes > 0
    # every park ended by a wake (or rarely a timeout); with a 2 s timeout, lost wake-ups would
    # have made this take minutes
    assert elapsed < 20
    assert sp.timeouts <= 2


def test_park_timeout_bounds_a_missed_wake() -> None:
    efd = new_eventfd()
    flag = [0]
    sp = SpinPark(
        efd, lambda v: flag.__setitem__(0, v), lambda: False, spins=0, yields=0, park_timeout_s=0.02
    )
    t0 = time.perf_counter()
    sp.idle()  # nobody will wake us
    dt = time.perf_counter() - t0
    os.close(efd)
    assert sp.timeouts == 1 and sp.parks == 1
    assert flag[0] == 0  # cleared after waking
    assert dt >= 0.015


def test_make_wait_by_name_and_kinds() -> None:
    assert isinstance(make_wait("busy-spin"), BusySpin)
    assert isinstance(make_wait(WaitKind.SPIN_YIELD, spins=3), SpinYield)
    y = SpinYield(spins=2)
    for _ in range(5):
        y.idle()
    assert y.idles == 5
    y.reset()
    assert y.idles == 0
    full_fence()
