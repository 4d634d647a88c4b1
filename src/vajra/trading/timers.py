"""A hashed timing wheel for order timers (the 200 ms passive-order cancel).

Why a wheel: every resting order carries a deadline, most orders end (filled, cancelled, re-
quoted) before it, and the Execution loop asks "what is due?" on every iteration. A wheel makes
scheduling O(1), cancelling O(1) (lazy: a generation number, no search), and the due check
O(slots passed + timers due), independent of how many timers are pending. A heap would be
O(log n) per operation and keep dead timers until they surface.

Resolution: `tick_ns` (default 250 µs) is the wheel's granularity; a timer fires on the first
`expire(now_ns)` call whose `now_ns` reaches its slot, so its lateness is at most one tick plus
the caller's loop period. Deadlines beyond the wheel's span (`slots * tick_ns`) wait in their
slot for as many extra rotations as they need (`rounds`), the classic hashed wheel.

Owned by one thread (the Execution thread). All times are `perf_counter_ns` values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Timer:
    deadline_ns: int
    key: int
    gen: int


class TimerWheel:
    """Timers keyed by an int (a client order id). One live timer per key: scheduling a key
    again replaces its previous timer."""

    __slots__ = ("_cursor", "_gen", "_live", "_mask", "_slots", "_tick", "fired")

    def __init__(self, start_ns: int, tick_ns: int = 250_000, slots: int = 2048) -> None:
        if tick_ns <= 0 or slots <= 0 or slots & (slots - 1):
            raise ValueError("tick_ns must be > 0 and slots a power of two")
        self._tick = tick_ns
        self._mask = slots - 1
        self._slots: list[list[_Timer]] = [[] for _ in range(slots)]
        #: the first tick not yet fully processed (its slot is revisited on the next call)
        self._cursor = start_ns // tick_ns
        self._gen = 0
        #: key -> generation of its live timer
        self._live: dict[int, int] = {}
        self.fired = 0

    def __len__(self) -> int:
        return len(self._live)

    def schedule(self, key: int, deadline_ns: int) -> None:
        """Fire `key` at `deadline_ns` (replacing any timer it had). A deadline already past
        fires on the next `expire`. A deadline more than one rotation ahead waits in its slot
        and is passed over (deadline not reached) until its rotation comes."""
        self._gen += 1
        gen = self._gen
        self._live[key] = gen
        t = deadline_ns // self._tick
        if t < self._cursor:
            t = self._cursor
        self._slots[t & self._mask].append(_Timer(deadline_ns, key, gen))

    def cancel(self, key: int) -> bool:
        """Forget `key`'s timer (O(1): its entry is dropped when its slot comes round)."""
        return self._live.pop(key, None) is not None

    def pending(self, key: int) -> bool:
        return key in self._live

    def expire(self, now_ns: int, out: list[tuple[int, int]]) -> int:
        """Append `(key, deadline_ns)` for every timer due at `now_ns` to `out` (slot order,
        then scheduling order); returns how many. Cost: one step per tick passed since the
        last call (at most one rotation), plus one per timer in the slots passed."""
        end = now_ns // self._tick
        cur = self._cursor
        if end < cur:
            return 0
        slots, mask, live = self._slots, self._mask, self._live
        last = end if end - cur <= mask else cur + mask  # one rotation covers every slot
        n = 0
        while cur <= last:
            slot = slots[cur & mask]
            if slot:
                keep: list[_Timer] = []
                for tm in slot:
                    if live.get(tm.key) != tm.gen:
                        continue  # cancelled or replaced
                    if tm.deadline_ns <= now_ns:
                        del live[tm.key]
                        out.append((tm.key, tm.deadline_ns))
                        n += 1
                    else:
                        keep.append(tm)  # later in this tick, or a later rotation
                slot[:] = keep
            cur += 1
        self._cursor = end
        self.fired += n
        return n
