"""Wait strategies for ring consumers: what a consumer does when a poll finds nothing.

The Disruptor's lesson: the wait policy is a per-consumer choice, not a property of the ring.
- `BusySpin`: lowest latency (~1 us hop) and a whole core burnt; only on a dedicated core.
- `SpinYield`: spin a while, then `os.sched_yield()` (~0.3 us) per idle poll, so a consumer that
  shares its core lets the other thread run. Latency stays in microseconds when the core is free.
- `SpinPark`: spin, yield, then block on an eventfd until the producer wakes it (or a timeout).
  Costs nothing when idle; the first message after a park pays the wake-up (35-75 us, trap #7).
  `first_after_park_ns` records that cost so it is reported, not hidden.

Every strategy has the same two calls: the consumer calls `idle()` after each empty poll and
`reset()` after each non-empty one; the producer side calls `Waker.wake()` after publishing when
its consumer may park.

Parking and the lost wake-up: the consumer stores `parked=1`, re-polls, then sleeps; the producer
publishes, then loads `parked`. On x86 a store followed by a load to a different location can be
reordered (store buffer), so both sides could miss each other (Dekker). Both sides therefore run
a full fence between their store and their load: acquiring and releasing an uncontended
`threading.Lock` executes a locked instruction (an x86 full barrier, ~40 ns). The park is also
bounded by `park_timeout_s`, so even a missed wake costs at most that.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable

from vajra.runtime.coreplan import WaitKind

_fence_lock = threading.Lock()


def full_fence() -> None:
    """A full memory barrier on x86-64: lock/unlock of an uncontended PyMutex (lock cmpxchg)."""
    _fence_lock.acquire()
    _fence_lock.release()


class WaitStrategy:
    """Base: `idle()` after an empty poll, `reset()` after a productive one."""

    __slots__ = ("idles",)
    kind: WaitKind

    def __init__(self) -> None:
        self.idles = 0

    def idle(self) -> None:
        self.idles += 1

    def reset(self) -> None:
        self.idles = 0

    def close(self) -> None:
        pass


class BusySpin(WaitStrategy):
    """Return at once: the caller polls again (cost: one method call)."""

    __slots__ = ()
    kind = WaitKind.BUSY_SPIN

    def idle(self) -> None:
        pass

    def reset(self) -> None:
        pass


class SpinYield(WaitStrategy):
    __slots__ = ("spins",)
    kind = WaitKind.SPIN_YIELD

    def __init__(self, spins: int = 200) -> None:
        super().__init__()
        self.spins = spins

    def idle(self) -> None:
        i = self.idles + 1
        self.idles = i
        if i > self.spins:
            os.sched_yield()


class SpinPark(WaitStrategy):
    """Spin, then yield, then park on an eventfd.

    `parked_flag` sets or clears the consumer's `parked` word in shared memory (e.g.
    `lambda v: reader.q.__setitem__(reader.parked_w, v)`) and `ready` re-polls the ring without
    consuming. The eventfd must be shared with the producer (`Waker`): threads share it directly;
    processes inherit it (`pass_fds`).
    """

    __slots__ = (
        "_efd",
        "_poller",
        "_ready",
        "_set_parked",
        "first_after_park_ns",
        "park_timeout_ms",
        "parks",
        "spins",
        "timeouts",
        "woken_at",
        "yields",
    )
    kind = WaitKind.SPIN_PARK

    def __init__(
        self,
        efd: int,
        set_parked: Callable[[int], None],
        ready: Callable[[], bool],
        spins: int = 200,
        yields: int = 50,
        park_timeout_s: float = 0.05,
    ) -> None:
        super().__init__()
        self._efd = efd
        self._set_parked = set_parked
        self._ready = ready
        self.spins = spins
        self.yields = yields
        self.park_timeout_ms = max(1, int(park_timeout_s * 1000))
        self._poller = select.poll()
        self._poller.register(efd, select.POLLIN)
        self.parks = 0
        self.timeouts = 0
        self.woken_at = 0
        #: ns from the wake-up to the first message handled after it (the cost of parking).
        self.first_after_park_ns = 0

    def idle(self) -> None:
        i = self.idles + 1
        self.idles = i
        if i <= self.spins:
            return
        if i <= self.spins + self.yields:
            os.sched_yield()
            return
        self._set_parked(1)
        full_fence()
        if not self._ready():
            self.parks += 1
            if self._poller.poll(self.park_timeout_ms):
                try:
                    os.eventfd_read(self._efd)
                except BlockingIOError:
                    pass
            else:
                self.timeouts += 1
            self.woken_at = time.perf_counter_ns()
        self._set_parked(0)

    def reset(self) -> None:
        if self.woken_at:
            self.first_after_park_ns = time.perf_counter_ns() - self.woken_at
            self.woken_at = 0
        self.idles = 0


class Waker:
    """Producer side of `SpinPark`: after publishing, wake the consumer if it may be parked.

    Cost when the consumer is not parked: one fence (~40 ns) and one shared load.
    """

    __slots__ = ("_efd", "_is_parked", "wakes")

    def __init__(self, efd: int, is_parked: Callable[[], int]) -> None:
        self._efd = efd
        self._is_parked = is_parked
        self.wakes = 0

    def wake(self) -> None:
        full_fence()
        if self._is_parked():
            self.wakes += 1
            os.eventfd_write(self._efd, 1)


def new_eventfd() -> int:
    """Non-blocking, close-on-exec eventfd for one consumer's parking spot."""
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)


def make_wait(kind: WaitKind | str, **kw: object) -> WaitStrategy:
    """Build a strategy by name (the core plan decides which one each module gets)."""
    k = WaitKind(kind)
    if k is WaitKind.BUSY_SPIN:
        return BusySpin()
    if k is WaitKind.SPIN_YIELD:
        return SpinYield(**kw)  # type: ignore[arg-type]
    return SpinPark(**kw)  # type: ignore[arg-type]
