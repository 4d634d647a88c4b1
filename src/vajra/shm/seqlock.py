"""Seqlocked state blocks: one writer, any number of readers that never see a torn state.

For state that is overwritten in place (module status, gauges, counters) a ring is the wrong tool:
readers want the latest value, not every value. The writer makes the sequence word odd, writes
the fields, then makes it even again; a reader copies the fields between two reads of the
sequence and retries if they differ or are odd. The writer never waits for readers, so a slow
or dead monitor cannot stall the engine; a reader can only be delayed by a writer that is mid-write.

Ordering: x86-64 keeps stores in program order and loads in program order, and each 'q' item
access is one aligned 8-byte load or store, so no fences are needed (see `vajra.shm.ring`).

Float fields ('d') share the same words: the writer stores them through a 'd' cast of its own
view; readers copy raw words and decode them by the layout, so a copy is always 8-byte loads.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Sequence
from typing import Protocol

from vajra.shm.layout import LINE, Field, Layout


class _Words(Protocol):
    def __getitem__(self, i: int, /) -> int: ...
    def __setitem__(self, i: int, v: int, /) -> None: ...


def seqlocked(name: str, version: int, fields: Sequence[Field]) -> Layout:
    """A layout whose first word is the sequence, on its own line, followed by 8-byte fields."""
    for f in fields:
        if f.fmt not in ("q", "d") or f.count != 1:
            raise ValueError(f"seqlocked field {f.name!r} must be a single 'q' or 'd'")
    return Layout(name, version, (Field("seq", align=LINE, doc="odd while writing"), *fields))


class TornRead(RuntimeError):
    """The writer stayed mid-write for longer than a reader is willing to retry (it may be dead)."""


class SeqlockWriter:
    """The single writer of one block. Hot path: `begin()`, `q[w] = v` / `d[w] = x`, `end()`."""

    __slots__ = ("_seq", "_seq_w", "d", "first", "layout", "q")

    def __init__(self, buf: memoryview, offset: int, layout: Layout) -> None:
        if offset % 8:
            raise ValueError("seqlock block offset must be 8-byte aligned")
        self.layout = layout
        self.q = buf.cast("q")
        self.d = buf.cast("d")
        self._seq_w = offset // 8 + layout.word("seq")
        #: word index of the first field; field k (0-based, after seq) is at first + k
        self.first = self._seq_w + 1
        s = self.q[self._seq_w]
        self._seq = s + 1 if s & 1 else s  # a crashed writer left it odd: finish that write

    def word(self, name: str) -> int:
        return self._seq_w + self.layout.word(name)

    def begin(self) -> None:
        s = self._seq + 1
        self._seq = s
        self.q[self._seq_w] = s

    def end(self) -> None:
        s = self._seq + 1
        self._seq = s
        self.q[self._seq_w] = s

    def write(self, values: Sequence[int | float]) -> None:
        """Write all fields in declaration order (convenience; allocation-free for ints)."""
        self.begin()
        q, d, w = self.q, self.d, self.first
        for i, f in enumerate(self.layout.fields[1:]):
            if f.fmt == "d":
                d[w + i] = float(values[i])
            else:
                q[w + i] = int(values[i])
        self.end()

    def close(self) -> None:
        self.d.release()
        self.q.release()


class SeqlockReader:
    """Any number of these, in any thread or process; each holds its own views."""

    __slots__ = ("_n", "_seq_w", "_struct", "layout", "q", "retries")

    def __init__(self, q: _Words, offset: int, layout: Layout) -> None:
        """`q` is a 'q' cast of the reader's own view (or any int64 word indexer)."""
        self.layout = layout
        self.q = q
        self._seq_w = offset // 8 + layout.word("seq")
        self._n = len(layout.fields) - 1
        self._struct = struct.Struct("<" + "".join(f.fmt for f in layout.fields[1:]))
        #: total retries so far (contention or a slow writer shows up here)
        self.retries = 0

    @classmethod
    def from_view(cls, buf: memoryview, offset: int, layout: Layout) -> SeqlockReader:
        return cls(buf.cast("q"), offset, layout)

    def read_words(self, out: list[int], max_tries: int = 1000, timeout_s: float = 0.5) -> int:
        """Copy the raw field words into `out` (len >= fields); returns the sequence read.

        Spins for `max_tries` attempts, then yields the CPU between attempts (a writer that was
        preempted mid-write needs the CPU back to finish), and raises TornRead once the writer
        has stayed mid-write for `timeout_s` (it died, or is stopped in a debugger).
        """
        q, sw, n = self.q, self._seq_w, self._n
        tries = 0
        deadline = 0
        while True:
            s1 = q[sw]
            if not s1 & 1:
                for i in range(n):
                    out[i] = q[sw + 1 + i]
                if q[sw] == s1:
                    return s1
            self.retries += 1
            tries += 1
            if tries >= max_tries:
                now = time.monotonic_ns()
                if deadline == 0:
                    deadline = now + int(timeout_s * 1e9)
                elif now > deadline:
                    raise TornRead(
                        f"seqlock {self.layout.name!r}: writer mid-write for {timeout_s} s"
                    )
                os.sched_yield()

    def read(self) -> dict[str, int | float]:
        """A consistent snapshot decoded by the layout (allocates; for monitors, not hot loops)."""
        words = [0] * self._n
        self.read_words(words)
        raw = struct.pack(f"<{self._n}q", *words)
        values = self._struct.unpack(raw)
        return {f.name: v for f, v in zip(self.layout.fields[1:], values, strict=True)}

    def sequence(self) -> int:
        """Writes so far x2 (even when stable): cheap change detection for pollers."""
        return self.q[self._seq_w]
