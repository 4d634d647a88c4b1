"""Matrix ring: the last R rows of a fixed-width float matrix, one writer, any number of readers.

For time-by-level pictures (the WOBI heatmap): every reader wants the most recent rows, many
readers look at once (monitor, tests, tools), and none of them may slow the writer. So unlike the
SPSC ring there is no consumer cursor: the writer overwrites the oldest row, and each row carries
its own sequence word, `-(n+1)` while row n is being written and `n+1` once complete: a per-row
seqlock. A reader copies a row and keeps it only if the sequence word was `n+1` both
before and after the copy.

Row layout: [seq][t_ns][v0 .. v(cols-1) as float64]; `t_ns` is the writer's timestamp for it.
"""

from __future__ import annotations

import struct
from typing import Self

from vajra.shm.layout import Field, Layout, line_fields
from vajra.shm.segment import Segment, SegmentError

MATRIX = Layout(
    "matrix",
    1,
    (
        Field("rows", doc="capacity in rows, a power of two"),
        Field("cols", doc="float64 values per row"),
        *line_fields("written", doc="writer-owned: rows written so far"),
    ),
)


class MatrixRing:
    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        v = segment.view()
        q = segment.cast(v, "q")
        base = segment.body // 8
        self.rows = q[base + MATRIX.word("rows")]
        self.cols = q[base + MATRIX.word("cols")]
        q.release()
        v.release()
        self.row_words = 2 + self.cols
        if segment.extra_size < self.rows * self.row_words * 8:
            raise SegmentError(f"{segment.name}: row region smaller than declared")
        self.written_w = base + MATRIX.word("written")
        self.row0 = segment.extra // 8

    @classmethod
    def create(cls, run_id: str, name: str, rows: int, cols: int) -> Self:
        if rows < 2 or rows & (rows - 1):
            raise ValueError(f"matrix rows must be a power of two >= 2, got {rows}")
        if not 1 <= cols <= 4096:
            raise ValueError(f"matrix cols must be within 1..4096, got {cols}")
        seg = Segment.create(run_id, name, MATRIX, extra=rows * (2 + cols) * 8)
        v = seg.view()
        q = seg.cast(v, "q")
        base = seg.body // 8
        q[base + MATRIX.word("rows")] = rows
        q[base + MATRIX.word("cols")] = cols
        q.release()
        v.release()
        return cls(seg)

    @classmethod
    def attach(cls, run_id: str, name: str, *, readonly: bool = True) -> Self:
        return cls(Segment.attach(run_id, name, MATRIX, readonly=readonly))

    def writer(self) -> MatrixWriter:
        return MatrixWriter(self)

    def reader(self) -> MatrixReader:
        return MatrixReader(self)

    def close(self) -> None:
        self.segment.close()

    def unlink(self) -> None:
        self.segment.unlink()


class MatrixWriter:
    """The single writer. `append(t_ns, values)`: ~1 store per value plus 3 control stores."""

    __slots__ = ("_d", "_n", "_q", "_v", "cols", "mask", "row0", "row_words", "written_w")

    def __init__(self, m: MatrixRing) -> None:
        if m.segment.readonly:
            raise SegmentError(f"{m.segment.name}: cannot write through a read-only attachment")
        self._v = m.segment.view()
        self._q = m.segment.cast(self._v, "q")
        self._d: memoryview[float] = m.segment.cast(self._v, "d")  # type: ignore[assignment]
        self.cols, self.mask = m.cols, m.rows - 1
        self.row0, self.row_words, self.written_w = m.row0, m.row_words, m.written_w
        self._n = self._q[self.written_w]

    def append(self, t_ns: int, values: list[float]) -> None:
        """Write the next row (values beyond `cols` are ignored, missing ones are 0.0)."""
        n = self._n
        q, d, cols = self._q, self._d, self.cols
        w = self.row0 + (n & self.mask) * self.row_words
        q[w] = -(n + 1)  # in progress
        q[w + 1] = t_ns
        k = len(values) if len(values) < cols else cols
        for i in range(k):
            d[w + 2 + i] = values[i]
        for i in range(k, cols):
            d[w + 2 + i] = 0.0
        q[w] = n + 1
        self._n = n + 1
        q[self.written_w] = n + 1

    def close(self) -> None:
        self._d.release()
        self._q.release()
        self._v.release()


class MatrixReader:
    """Any number, in any thread or process (each with its own views)."""

    __slots__ = ("_q", "_row", "_v", "cols", "mask", "row0", "row_words", "torn", "written_w")

    def __init__(self, m: MatrixRing) -> None:
        self._v = m.segment.view()
        self._q = m.segment.cast(self._v, "q")
        self.cols, self.mask = m.cols, m.rows - 1
        self.row0, self.row_words, self.written_w = m.row0, m.row_words, m.written_w
        self._row = struct.Struct(f"<qq{self.cols}d")
        #: rows skipped because the writer was rewriting them during the copy
        self.torn = 0

    def written(self) -> int:
        return int(self._q[self.written_w])

    def rows(self, last: int = 0) -> list[tuple[int, int, tuple[float, ...]]]:
        """The most recent complete rows, oldest first, as (row number, t_ns, values).
        `last` limits how many (0: as many as the ring holds)."""
        q = self._q
        n = q[self.written_w]
        cap = self.mask + 1
        want = cap if not last else min(last, cap)
        first = max(0, n - want)
        out = []
        for r in range(first, n):
            w = self.row0 + (r & self.mask) * self.row_words
            if q[w] != r + 1:
                self.torn += 1
                continue
            seq, t_ns, *vals = self._row.unpack_from(self._v, w * 8)
            if q[w] != r + 1 or seq != r + 1:
                self.torn += 1
                continue
            out.append((r, t_ns, tuple(vals)))
        return out

    def close(self) -> None:
        self._q.release()
        self._v.release()
