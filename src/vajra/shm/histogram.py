"""Latency histograms in shared memory, bucket-for-bucket compatible with HdrHistogram.

Why HdrHistogram's bucketing: its counts array is the de facto interchange format for latency
distributions (interval logs, HistogramLogAnalyzer, every language port). Keeping our counts 1:1
with its counts array means an interval is encoded by walking our array, and any HdrHistogram tool
reads our `.hlog` files without conversion or loss.

Parameters (lowest discernible value 1 ns, highest trackable 60 s, 3 significant digits) are
fixed at module level and every derived constant is computed from them with HdrHistogram's own
formulas (AbstractHistogram.init / getBucketsNeededToCoverValue), so changing one parameter
changes the layout hash and a stale reader refuses the segment instead of misreading it.

Concurrency model (reference/shm-ipc.md):
- one writer per histogram, wait-free: `record()` is a handful of 8-byte stores through the
  writer's own `memoryview.cast('q')` (trap #1: never `pack_into` for live words);
- readers never write and never wait: they copy the counts with one aligned 8-byte load per
  counter. Counters only grow, which is what makes a copy taken while the writer runs meaningful
  (see `read_snapshot`) and what makes interval histograms a plain subtraction.
"""

from __future__ import annotations

import math
import mmap
import re
import struct
import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import accumulate, compress
from typing import Final, Literal, Self

from vajra.shm.layout import LINE, Field, Layout, align_up
from vajra.shm.segment import Segment, SegmentError

# -- HdrHistogram parameters and the constants derived from them ----------------------------------

#: Lowest discernible value, ns.
LOWEST: Final = 1
#: Highest trackable value, ns (60 s). Larger values are clamped to it and counted in `overflow`.
HIGHEST: Final = 60_000_000_000
#: Decimal digits of value resolution kept across the whole range.
SIGNIFICANT_DIGITS: Final = 3


def _buckets_needed(highest: int, sub_bucket_count: int, unit_magnitude: int) -> int:
    """HdrHistogram's getBucketsNeededToCoverValue, including its int64 overflow guard."""
    smallest_untrackable = sub_bucket_count << unit_magnitude
    buckets = 1
    while smallest_untrackable <= highest:
        if smallest_untrackable > (2**63 - 1) // 2:
            return buckets + 1
        smallest_untrackable <<= 1
        buckets += 1
    return buckets


def _check_parameters(lowest: int, highest: int, digits: int) -> None:
    # The same preconditions AbstractHistogram's constructor enforces.
    if lowest < 1:
        raise ValueError("lowest discernible value must be >= 1")
    if highest < 2 * lowest:
        raise ValueError("highest trackable value must be >= 2 * lowest discernible value")
    if not 0 <= digits <= 5:
        raise ValueError("significant digits must be in 0..5")


_check_parameters(LOWEST, HIGHEST, SIGNIFICANT_DIGITS)

#: floor(log2(LOWEST)), exact for integers.
UNIT_MAGNITUDE: Final = LOWEST.bit_length() - 1
# ceil(log2(2 * 10**digits)): the smallest power of two giving single-unit resolution up to the
# largest value that must keep all its significant digits.
_SUB_BUCKET_COUNT_MAGNITUDE: Final = (2 * 10**SIGNIFICANT_DIGITS - 1).bit_length()
SUB_BUCKET_HALF_COUNT_MAGNITUDE: Final = max(_SUB_BUCKET_COUNT_MAGNITUDE, 1) - 1
SUB_BUCKET_COUNT: Final = 1 << (SUB_BUCKET_HALF_COUNT_MAGNITUDE + 1)
SUB_BUCKET_HALF_COUNT: Final = SUB_BUCKET_COUNT // 2
SUB_BUCKET_MASK: Final = (SUB_BUCKET_COUNT - 1) << UNIT_MAGNITUDE
BUCKET_COUNT: Final = _buckets_needed(HIGHEST, SUB_BUCKET_COUNT, UNIT_MAGNITUDE)
COUNTS_LEN: Final = (BUCKET_COUNT + 1) * SUB_BUCKET_HALF_COUNT
if UNIT_MAGNITUDE + SUB_BUCKET_HALF_COUNT_MAGNITUDE > 61:
    raise ValueError("lowest discernible value too large for the requested precision")

# counts index = (t << SUB_BUCKET_HALF_COUNT_MAGNITUDE) + (v >> t) - _INDEX_ADJUST with
# t = bucket index + unit magnitude = bit_length(v | mask) - _T_SHIFT. This is HdrHistogram's
# countsArrayIndex with the bucket base and sub-bucket offset folded into one expression.
_T_SHIFT: Final = SUB_BUCKET_HALF_COUNT_MAGNITUDE + 1
_INDEX_ADJUST: Final = UNIT_MAGNITUDE << SUB_BUCKET_HALF_COUNT_MAGNITUDE

# -- shared-memory layout -------------------------------------------------------------------------

#: Sentinel in the `min` word while nothing was recorded (every real value is below it).
EMPTY_MIN: Final = 2**63 - 1

LAYOUT: Final = Layout(
    "histogram",
    1,
    (
        # One 128-byte line, written only by the histogram's single writer.
        Field("total_count", align=LINE, doc="values counted into `counts` (clamped included)"),
        Field("min", doc="exact smallest value recorded; EMPTY_MIN while empty"),
        Field("max", doc="exact largest value recorded (after clamping)"),
        Field("sum", doc="sum of values recorded (after clamping), for an exact mean"),
        Field("overflow", doc="values above HIGHEST, recorded as HIGHEST"),
        Field("rejected", doc="negative values, not recorded"),
        Field("started_ns", doc="time.time_ns() when formatted or last reset"),
        Field("lowest", doc="LOWEST at format time; 0 means unformatted memory"),
        Field("highest", doc="HIGHEST at format time"),
        Field("significant_digits", doc="SIGNIFICANT_DIGITS at format time"),
        Field("counts_len", doc="COUNTS_LEN at format time"),
        # The counts start on their own line so the hot header line never shares one with them.
        Field(
            "counts",
            "q",
            count=COUNTS_LEN,
            align=LINE,
            doc="HdrHistogram counts array, index i covers value_from_index(i)",
        ),
    ),
)
#: Bytes one histogram occupies (a multiple of LINE, so histograms can be packed back to back).
HISTOGRAM_SIZE: Final = align_up(LAYOUT.size, LINE)

_W_TOTAL: Final = LAYOUT.word("total_count")
_W_MIN: Final = LAYOUT.word("min")
_W_MAX: Final = LAYOUT.word("max")
_W_SUM: Final = LAYOUT.word("sum")
_W_OVERFLOW: Final = LAYOUT.word("overflow")
_W_REJECTED: Final = LAYOUT.word("rejected")
_W_STARTED: Final = LAYOUT.word("started_ns")
_W_LOWEST: Final = LAYOUT.word("lowest")
_W_HIGHEST: Final = LAYOUT.word("highest")
_W_DIGITS: Final = LAYOUT.word("significant_digits")
_W_COUNTS_LEN: Final = LAYOUT.word("counts_len")
_W_COUNTS: Final = LAYOUT.word("counts")
# Word index of the counter for value v, minus the (t << HALF_MAG) + (v >> t) part.
_COUNTS_BASE: Final = _W_COUNTS - _INDEX_ADJUST

# -- HdrHistogram value <-> index arithmetic ------------------------------------------------------


def counts_index(value: int) -> int:
    """Index into the counts array for `value` (HdrHistogram's countsArrayIndex)."""
    if value < 0:
        raise ValueError(f"negative value {value}")
    t = (value | SUB_BUCKET_MASK).bit_length() - _T_SHIFT
    return (t << SUB_BUCKET_HALF_COUNT_MAGNITUDE) + (value >> t) - _INDEX_ADJUST


def value_from_index(index: int) -> int:
    """Lowest value counted at `index` (HdrHistogram's valueFromIndex)."""
    bucket = (index >> SUB_BUCKET_HALF_COUNT_MAGNITUDE) - 1
    sub_bucket = (index & (SUB_BUCKET_HALF_COUNT - 1)) + SUB_BUCKET_HALF_COUNT
    if bucket < 0:
        sub_bucket -= SUB_BUCKET_HALF_COUNT
        bucket = 0
    return sub_bucket << (bucket + UNIT_MAGNITUDE)


def _bucket_and_sub_bucket(value: int) -> tuple[int, int]:
    if value < 0:
        raise ValueError(f"negative value {value}")
    bucket = (value | SUB_BUCKET_MASK).bit_length() - _T_SHIFT - UNIT_MAGNITUDE
    return bucket, value >> (bucket + UNIT_MAGNITUDE)


def size_of_equivalent_range(value: int) -> int:
    """Width of the range of values counted together with `value`."""
    bucket, sub_bucket = _bucket_and_sub_bucket(value)
    if sub_bucket >= SUB_BUCKET_COUNT:
        bucket += 1
    return 1 << (UNIT_MAGNITUDE + bucket)


def lowest_equivalent(value: int) -> int:
    """Smallest value counted in the same slot as `value`."""
    bucket, sub_bucket = _bucket_and_sub_bucket(value)
    return sub_bucket << (bucket + UNIT_MAGNITUDE)


def highest_equivalent(value: int) -> int:
    """Largest value counted in the same slot as `value` (what percentiles report)."""
    return lowest_equivalent(value) + size_of_equivalent_range(value) - 1


def median_equivalent(value: int) -> int:
    """Middle of `value`'s slot (what HdrHistogram's mean weights each slot by)."""
    return lowest_equivalent(value) + (size_of_equivalent_range(value) >> 1)


# -- buffers --------------------------------------------------------------------------------------


def _own_view(buf: memoryview | bytearray, offset: int, what: str) -> memoryview:
    """A new byte view of exactly one histogram, so the caller owns (and releases) it."""
    whole = memoryview(buf)
    try:
        if whole.ndim != 1 or whole.itemsize != 1 or not whole.c_contiguous:
            raise ValueError(
                f"{what}: expected a contiguous byte buffer, got format "
                f"{whole.format!r} ndim {whole.ndim}"
            )
        if offset < 0 or offset % LINE:
            raise ValueError(f"{what}: offset {offset} is not a non-negative multiple of {LINE}")
        if offset + LAYOUT.size > whole.nbytes:
            raise ValueError(
                f"{what}: buffer of {whole.nbytes} bytes has no room for a "
                f"{LAYOUT.size}-byte histogram at offset {offset}"
            )
        return whole[offset : offset + LAYOUT.size]
    finally:
        whole.release()


def _check_format(q: memoryview, what: str) -> None:
    found = (q[_W_LOWEST], q[_W_HIGHEST], q[_W_DIGITS], q[_W_COUNTS_LEN])
    expected = (LOWEST, HIGHEST, SIGNIFICANT_DIGITS, COUNTS_LEN)
    if found != expected:
        if found == (0, 0, 0, 0):
            raise ValueError(f"{what}: no histogram was formatted here")
        raise ValueError(
            f"{what}: histogram was formatted with lowest/highest/digits/counts_len {found}, "
            f"this code uses {expected}"
        )


def format_histogram(buf: memoryview | bytearray, offset: int) -> None:
    """Make the memory at `offset` an empty histogram (zero counts, parameters stamped).

    Stamping the parameters lets a reader that finds this memory verify it was written with the
    same bucketing before trusting a single count. Not for memory a writer is using: it zeroes.
    """
    view = _own_view(buf, offset, "format_histogram")
    try:
        view[:] = bytes(LAYOUT.size)
        q = view.cast("q")
        try:
            q[_W_MIN] = EMPTY_MIN
            q[_W_STARTED] = time.time_ns()
            q[_W_HIGHEST] = HIGHEST
            q[_W_DIGITS] = SIGNIFICANT_DIGITS
            q[_W_COUNTS_LEN] = COUNTS_LEN
            q[_W_LOWEST] = LOWEST  # last: non-zero `lowest` marks the memory as formatted
        finally:
            q.release()
    finally:
        view.release()


# -- writer ---------------------------------------------------------------------------------------


class HistogramWriter:
    """The single writer of one histogram.

    Exactly one writer (thread or process) may record into a histogram: `record()` updates
    counters with a load and a store, not an atomic read-modify-write, so two writers lose
    counts. Readers are unlimited and never block it (they only load; at most the writer's
    next store to a line a reader just copied pays a cache miss).

    On zeroed memory (a fresh segment or `bytearray(HISTOGRAM_SIZE)`) the writer formats it;
    on formatted memory it continues from the counts already there (a restarted writer keeps
    the run's cumulative histogram).
    """

    __slots__ = ("_q", "_view", "offset")

    def __init__(self, buf: memoryview | bytearray, offset: int = 0) -> None:
        view = _own_view(buf, offset, "HistogramWriter")
        q = view.cast("q")
        if q[_W_LOWEST] == 0 and q[_W_COUNTS_LEN] == 0:
            q.release()
            view.release()
            format_histogram(buf, offset)
            view = _own_view(buf, offset, "HistogramWriter")
            q = view.cast("q")
        try:
            _check_format(q, "HistogramWriter")
        except ValueError:
            q.release()
            view.release()
            raise
        self._view = view
        self._q = q
        self.offset = offset

    def record(self, ns: int) -> None:
        """Count one value in nanoseconds. Wait-free, and raises for no int value (the int64
        `sum` word would need ~292 years of recorded nanoseconds to overflow).

        Cost: ~450 ns on 3.13t (measured on this repo's unoptimised 3.13t build; ~420 ns on
        3.13): one bit_length, four shifts/adds, 4 'q' loads and 3-5 'q' stores, 9-11 global
        lookups (dict probes: 3.13t has no specialising interpreter), no containers built.
        CPython still creates transient ints for arithmetic on values above 256.
        """
        q = self._q
        if ns > HIGHEST:
            q[_W_OVERFLOW] += 1
            ns = HIGHEST
        elif ns < 0:
            q[_W_REJECTED] += 1
            return
        t = (ns | SUB_BUCKET_MASK).bit_length() - _T_SHIFT
        # The count first, the header words after: on x86 a reader that copied this count and
        # then reads the header sees this record's total/sum unless it is still in flight.
        q[_COUNTS_BASE + (t << SUB_BUCKET_HALF_COUNT_MAGNITUDE) + (ns >> t)] += 1
        q[_W_TOTAL] += 1
        q[_W_SUM] += ns
        if ns < q[_W_MIN]:
            q[_W_MIN] = ns
        if ns > q[_W_MAX]:
            q[_W_MAX] = ns

    def record_n(self, ns: int, count: int) -> None:
        """Count `count` occurrences of one value (e.g. a batch that shared one latency).

        Cost: as `record()` plus the argument checks (~500 ns on 3.13t).
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if count == 0:
            return
        q = self._q
        if ns > HIGHEST:
            q[_W_OVERFLOW] += count
            ns = HIGHEST
        elif ns < 0:
            q[_W_REJECTED] += count
            return
        t = (ns | SUB_BUCKET_MASK).bit_length() - _T_SHIFT
        q[_COUNTS_BASE + (t << SUB_BUCKET_HALF_COUNT_MAGNITUDE) + (ns >> t)] += count
        q[_W_TOTAL] += count
        q[_W_SUM] += ns * count
        if ns < q[_W_MIN]:
            q[_W_MIN] = ns
        if ns > q[_W_MAX]:
            q[_W_MAX] = ns

    def reset(self) -> None:
        """Empty the histogram. Local (bytearray) histograms only.

        Refused on shared memory: readers rely on counters never decreasing (a snapshot taken
        across a reset would be garbage, and `subtract` of interval histograms would go
        negative). Shared histograms are cumulative; take intervals with `subtract`.
        """
        if isinstance(self._view.obj, mmap.mmap):
            raise SegmentError(
                "reset() on a shared-memory histogram: readers rely on monotonic counters; "
                "use snapshot subtraction for intervals"
            )
        self._view[:] = bytes(LAYOUT.size)
        q = self._q
        q[_W_MIN] = EMPTY_MIN
        q[_W_STARTED] = time.time_ns()
        q[_W_HIGHEST] = HIGHEST
        q[_W_DIGITS] = SIGNIFICANT_DIGITS
        q[_W_COUNTS_LEN] = COUNTS_LEN
        q[_W_LOWEST] = LOWEST

    def snapshot(self) -> HistogramSnapshot:
        """A snapshot through the writer's own view (for the writer's thread, e.g. at exit)."""
        return read_snapshot(self._view, 0)

    def release(self) -> None:
        """Release the writer's views (required before the segment can be closed, trap #5)."""
        self._q.release()
        self._view.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- snapshots ------------------------------------------------------------------------------------

PercentileRank = Literal["ceil", "round"]


def _target_count(percentile: float, total: int, rank: PercentileRank) -> int:
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be within [0, 100], got {percentile}")
    if rank == "ceil":
        # HdrHistogram (Java) getValueAtPercentile, operation for operation: one ulp down so that
        # e.g. 99.9 (stored as 99.900000000000006) over 1000 values asks for 999, not 1000.
        requested = min(max(math.nextafter(percentile, -math.inf), 0.0), 100.0)
        count = math.ceil((requested * total) / 100.0)
    elif rank == "round":
        # HdrHistogram_c / HdrHistogram_py (the `hdrhistogram` PyPI package): round half up.
        count = int((min(percentile, 100.0) * total / 100) + 0.5)
    else:
        raise ValueError(f"rank must be 'ceil' or 'round', got {rank!r}")
    return max(count, 1)


class HistogramSnapshot:
    """An immutable copy of a histogram's counts plus what its writer reported.

    `total`, `min`, `max`, `mean` and every percentile are derived from `counts`, so they agree
    with each other even when the copy was taken while the writer ran. `writer_*`, `overflow`
    and `rejected` are the writer's own exact words, read after the counts: they may include
    records that landed during the copy (they are reported as read, not reconciled).
    `writer_min`/`writer_max` are None when unknown (decoded from a log, or an interval whose
    exact extremes the cumulative words cannot tell) or when nothing was recorded.
    """

    __slots__ = (
        "_cum",
        "_nz_count",
        "_nz_index",
        "counts",
        "max",
        "min",
        "overflow",
        "rejected",
        "started_ns",
        "taken_ns",
        "total",
        "writer_max",
        "writer_min",
        "writer_sum",
        "writer_total",
    )

    counts: tuple[int, ...]
    total: int
    min: int
    max: int

    def __init__(
        self,
        counts: Iterable[int],
        *,
        overflow: int = 0,
        rejected: int = 0,
        started_ns: int = 0,
        taken_ns: int = 0,
        writer_total: int | None = None,
        writer_sum: int | None = None,
        writer_min: int | None = None,
        writer_max: int | None = None,
    ) -> None:
        c = tuple(counts)
        if len(c) != COUNTS_LEN:
            raise ValueError(f"expected {COUNTS_LEN} counts, got {len(c)}")
        # C-speed scan (~0.4 ms for 27648 counts): everything below works on non-empty slots.
        nz_index = list(compress(range(COUNTS_LEN), c))
        nz_count = [c[i] for i in nz_index]
        if any(n < 0 for n in nz_count):
            raise ValueError("negative count in histogram")
        cum = list(accumulate(nz_count))
        self.counts = c
        self._nz_index = nz_index
        self._nz_count = nz_count
        self._cum = cum
        self.total = cum[-1] if cum else 0
        self.min = value_from_index(nz_index[0]) if nz_index else 0
        self.max = highest_equivalent(value_from_index(nz_index[-1])) if nz_index else 0
        self.overflow = overflow
        self.rejected = rejected
        self.started_ns = started_ns
        self.taken_ns = taken_ns
        self.writer_total = writer_total
        self.writer_sum = writer_sum
        self.writer_min = writer_min
        self.writer_max = writer_max

    # -- construction helpers -----------------------------------------------------------------

    @staticmethod
    def empty() -> HistogramSnapshot:
        return HistogramSnapshot((0,) * COUNTS_LEN, writer_total=0, writer_sum=0)

    @staticmethod
    def of(values: Iterable[int]) -> HistogramSnapshot:
        """Histogram of `values` under exactly the writer's rules (clamping, rejection)."""
        buf = bytearray(HISTOGRAM_SIZE)
        with HistogramWriter(buf, 0) as w:
            for v in values:
                w.record(v)
        return read_snapshot(buf, 0)

    # -- statistics -----------------------------------------------------------------------------

    @property
    def mean(self) -> float:
        """HdrHistogram's mean: each slot weighted at its median-equivalent value."""
        if not self.total:
            return 0.0
        weighted = sum(
            n * median_equivalent(value_from_index(i))
            for i, n in zip(self._nz_index, self._nz_count, strict=True)
        )
        return weighted / self.total

    @property
    def writer_mean(self) -> float | None:
        """Exact mean from the writer's sum (clamped values count as HIGHEST), if known."""
        if not self.writer_total or self.writer_sum is None:
            return None
        return self.writer_sum / self.writer_total

    def percentile(self, p: float, *, rank: PercentileRank = "ceil") -> int:
        """Value at percentile `p` in [0, 100]; 0 for an empty histogram.

        The value is the highest-equivalent value of the first slot where the running count
        reaches the target count (the lowest-equivalent one for p == 0). The target is
        `rank="ceil"`: ceil(p/100 * total), HdrHistogram Java's rule (at least p% of the values
        are <= the answer), or `rank="round"`: round-half-up, the rule of HdrHistogram_c and the
        `hdrhistogram` PyPI package. They differ when p/100*total has a fraction below 0.5,
        e.g. p40 of 3 values: "ceil" reports the 2nd value, "round" the 1st.
        """
        if not self.total:
            _target_count(p, 0, rank)  # still validate the arguments
            return 0
        target = _target_count(p, self.total, rank)
        j = bisect_left(self._cum, target)
        value = value_from_index(self._nz_index[j])
        return highest_equivalent(value) if p else value

    def percentiles(
        self, ps: Iterable[float], *, rank: PercentileRank = "ceil"
    ) -> dict[float, int]:
        return {p: self.percentile(p, rank=rank) for p in ps}

    def buckets(self) -> list[tuple[int, int, int]]:
        """Non-empty slots as (lowest_equivalent, highest_equivalent, count), ascending."""
        out = []
        for i, n in zip(self._nz_index, self._nz_count, strict=True):
            v = value_from_index(i)
            out.append((v, highest_equivalent(v), n))
        return out

    def count_at(self, value: int) -> int:
        """Count in the slot that `value` falls into."""
        return self.counts[counts_index(min(value, HIGHEST))]

    # HdrHistogram's per-value helpers, as methods for code that holds a snapshot.
    @staticmethod
    def value_from_index(index: int) -> int:
        return value_from_index(index)

    @staticmethod
    def lowest_equivalent(value: int) -> int:
        return lowest_equivalent(value)

    @staticmethod
    def highest_equivalent(value: int) -> int:
        return highest_equivalent(value)

    @staticmethod
    def median_equivalent(value: int) -> int:
        return median_equivalent(value)

    # -- algebra --------------------------------------------------------------------------------

    def merge(self, other: HistogramSnapshot) -> HistogramSnapshot:
        """Histogram of both snapshots' values together (e.g. the same metric from two engines)."""
        return HistogramSnapshot.merged(self, other)

    @staticmethod
    def merged(*snaps: HistogramSnapshot) -> HistogramSnapshot:
        if not snaps:
            return HistogramSnapshot.empty()
        out = list(snaps[0].counts)
        for s in snaps[1:]:
            for i, n in zip(s._nz_index, s._nz_count, strict=True):
                out[i] += n
        known = all(s.writer_total is not None for s in snaps)
        non_empty = [s for s in snaps if s.writer_total]
        mins = [s.writer_min for s in non_empty]
        maxs = [s.writer_max for s in non_empty]
        starts = [s.started_ns for s in snaps if s.started_ns]
        return HistogramSnapshot(
            out,
            overflow=sum(s.overflow for s in snaps),
            rejected=sum(s.rejected for s in snaps),
            started_ns=min(starts) if starts else 0,
            taken_ns=max(s.taken_ns for s in snaps),
            writer_total=sum(s.writer_total or 0 for s in snaps) if known else None,
            writer_sum=(
                sum(s.writer_sum or 0 for s in snaps)
                if known and all(s.writer_sum is not None for s in snaps)
                else None
            ),
            writer_min=(
                min(m for m in mins if m is not None)
                if known and non_empty and None not in mins
                else None
            ),
            writer_max=(
                max(m for m in maxs if m is not None)
                if known and non_empty and None not in maxs
                else None
            ),
        )

    def subtract(self, earlier: HistogramSnapshot) -> HistogramSnapshot:
        """The interval histogram: values recorded after `earlier` was taken, up to this one.

        Shared histograms are cumulative (never reset), so an interval is a difference of two
        snapshots of the same histogram. Raises ValueError if any slot would go negative:
        `earlier` is then not an earlier snapshot of this histogram.
        """
        out = list(self.counts)
        for i, n in zip(earlier._nz_index, earlier._nz_count, strict=True):
            out[i] -= n
            if out[i] < 0:
                raise ValueError(
                    f"subtract: slot {i} ({value_from_index(i)} ns) would go negative; the "
                    "argument is not an earlier snapshot of the same histogram"
                )
        total = sub_sum = None
        if self.writer_total is not None and earlier.writer_total is not None:
            total = self.writer_total - earlier.writer_total
        if self.writer_sum is not None and earlier.writer_sum is not None:
            sub_sum = self.writer_sum - earlier.writer_sum
        fresh = earlier.writer_total == 0  # then the cumulative extremes are the interval's
        return HistogramSnapshot(
            out,
            overflow=self.overflow - earlier.overflow,
            rejected=self.rejected - earlier.rejected,
            started_ns=earlier.taken_ns,
            taken_ns=self.taken_ns,
            writer_total=total,
            writer_sum=sub_sum,
            writer_min=self.writer_min if fresh else None,
            writer_max=self.writer_max if fresh else None,
        )

    def same_counts(self, other: HistogramSnapshot) -> bool:
        """Same recorded distribution and the same overflow/rejected accounting."""
        return (
            self.counts == other.counts
            and self.overflow == other.overflow
            and self.rejected == other.rejected
        )

    def __repr__(self) -> str:
        return (
            f"<HistogramSnapshot total={self.total} min={self.min} max={self.max} "
            f"overflow={self.overflow} rejected={self.rejected}>"
        )


def read_snapshot(buf: memoryview | bytearray, offset: int = 0) -> HistogramSnapshot:
    """Copy the histogram at `offset`; the writer is never blocked (the reader only loads).

    Consistency, precisely:
    - each counter is read with one aligned 8-byte load (`memoryview.tolist()` on a 'q' cast),
      which x86-64 performs atomically, so no counter is ever torn;
    - counters only increase, so the copy lies between the histogram's state when the copy
      started and its state when it ended, counter by counter. It is not a point-in-time image:
      values recorded during the copy (~0.1 ms) are included if their slot had not been copied
      yet. Successive snapshots are therefore monotonic, counter by counter;
    - `total`, `min`, `max`, `mean` and percentiles are derived from the copied counts and agree
      with each other;
    - the writer's own words (total, sum, exact min/max, overflow, rejected) are read after the
      counts. On x86 (stores become visible in program order, and the writer stores a count
      before the words describing it) they cover at least every record the copy contains,
      except the one record possibly between its count store and its header stores, whose
      min/max may not be in `writer_min`/`writer_max` yet.

    Cost: ~0.1 ms for the copy (27648 loads in C), ~0.5 ms more to index the non-empty slots
    (3.13t); meant for a monitor polling a few times a second, not for the engine's loop.
    """
    view = _own_view(buf, offset, "read_snapshot")
    q = view.cast("q")
    try:
        _check_format(q, "read_snapshot")
        with q[_W_COUNTS : _W_COUNTS + COUNTS_LEN] as cq:
            counts = cq.tolist()
        with q[:_W_COUNTS] as hq:
            head = hq.tolist()
    finally:
        q.release()
        view.release()
    taken = time.time_ns()
    total = head[_W_TOTAL]
    return HistogramSnapshot(
        counts,
        overflow=head[_W_OVERFLOW],
        rejected=head[_W_REJECTED],
        started_ns=head[_W_STARTED],
        taken_ns=taken,
        writer_total=total,
        writer_sum=head[_W_SUM],
        # EMPTY_MIN with total > 0: the first record is between its total and min stores.
        writer_min=head[_W_MIN] if total and head[_W_MIN] != EMPTY_MIN else None,
        writer_max=head[_W_MAX] if total else None,
    )


# -- a segment of named histograms ----------------------------------------------------------------

#: Most histograms one HistogramSet can name (size of its names table).
MAX_HISTOGRAMS: Final = 64
#: Bytes per name in the names table.
NAME_BYTES: Final = 64
_NAME_RE = re.compile(r"^[a-z0-9_.]{1,64}$")

SET_LAYOUT: Final = Layout(
    "histogram_set",
    1,
    (
        Field("count", align=LINE, doc="number of histograms; names[0:count] are in use"),
        Field("stride", doc="bytes from one histogram to the next in the extra region"),
        Field("histogram_layout_hash", doc="LAYOUT.hash of every histogram in the set"),
        Field(
            "names",
            f"{NAME_BYTES}s",
            count=MAX_HISTOGRAMS,
            align=LINE,
            doc="NUL-padded ASCII names; name i is histogram i",
        ),
    ),
)
_S_COUNT: Final = SET_LAYOUT.word("count")
_S_STRIDE: Final = SET_LAYOUT.word("stride")
_S_HASH: Final = SET_LAYOUT.word("histogram_layout_hash")


class HistogramSet:
    """Named histograms in one segment; the names table lives in the segment itself.

    The engine creates the set with all its metric names; any process attaches by run id and
    discovers the names (the monitor needs no configuration of its own). Histogram i sits at
    `segment.extra + i * HISTOGRAM_SIZE`.

    Threading: like `Segment`, a HistogramSet belongs to the thread that made it (`snapshot()`
    uses one view of that thread). Writers handed out by `writer()` are owned by whichever
    thread records into them; `close()` releases them, so it must run after those threads stop.
    """

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self._writers: dict[str, HistogramWriter] = {}
        self._rview = segment.view()
        q = segment.cast(self._rview, "q")
        try:
            base = segment.body // 8
            count = q[base + _S_COUNT]
            stride = q[base + _S_STRIDE]
            layout_hash = q[base + _S_HASH]
        finally:
            q.release()
        if not 0 <= count <= MAX_HISTOGRAMS or count * stride > segment.extra_size:
            self.close()
            raise SegmentError(
                f"segment {segment.name!r}: names {count} histograms of {stride} bytes but "
                f"holds {segment.extra_size} bytes for them"
            )
        if layout_hash != LAYOUT.hash or stride != HISTOGRAM_SIZE:
            self.close()
            raise SegmentError(
                f"segment {segment.name!r}: histograms were written with another histogram "
                f"layout (hash {layout_hash & (2**64 - 1):016x}, stride {stride}): engine and "
                "reader are from different builds"
            )
        names_at = segment.body + SET_LAYOUT.offset("names")
        names: list[str] = []
        for i in range(count):
            raw = bytes(self._rview[names_at + i * NAME_BYTES : names_at + (i + 1) * NAME_BYTES])
            names.append(raw.rstrip(b"\0").decode("ascii"))
        self._names = names
        self._index = {n: i for i, n in enumerate(names)}

    @classmethod
    def create(cls, run_id: str, names: Sequence[str], segment: str = "histograms") -> Self:
        """Create the segment, format every histogram, and write the names table."""
        names = list(names)
        if not names:
            raise ValueError("a HistogramSet needs at least one histogram name")
        if len(names) > MAX_HISTOGRAMS:
            raise ValueError(f"{len(names)} histograms; at most {MAX_HISTOGRAMS} fit the table")
        for n in names:
            if not _NAME_RE.match(n):
                raise ValueError(f"invalid histogram name {n!r} (a-z, 0-9, '_', '.'; <= 64)")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate histogram names in {names}")
        seg = Segment.create(run_id, segment, SET_LAYOUT, extra=len(names) * HISTOGRAM_SIZE)
        try:
            v = seg.view()
            for i in range(len(names)):
                format_histogram(v, seg.extra + i * HISTOGRAM_SIZE)
            names_at = seg.body + SET_LAYOUT.offset("names")
            for i, n in enumerate(names):
                raw = n.encode("ascii")
                v[names_at + i * NAME_BYTES : names_at + i * NAME_BYTES + len(raw)] = raw
            q = seg.cast(v, "q")
            base = seg.body // 8
            q[base + _S_STRIDE] = HISTOGRAM_SIZE
            q[base + _S_HASH] = LAYOUT.hash
            q[base + _S_COUNT] = len(names)
            q.release()
            v.release()
            return cls(seg)
        except BaseException:
            seg.close()
            seg.unlink()
            raise

    @classmethod
    def attach(cls, run_id: str, segment: str = "histograms", *, readonly: bool = False) -> Self:
        """Attach to a running engine's set; `readonly=True` for monitors (cannot write)."""
        return cls(Segment.attach(run_id, segment, SET_LAYOUT, readonly=readonly))

    def names(self) -> list[str]:
        return list(self._names)

    def offset(self, name: str) -> int:
        """Byte offset of histogram `name` within the segment."""
        try:
            i = self._index[name]
        except KeyError:
            raise KeyError(
                f"no histogram {name!r} in {self.segment.name!r}; it has {self._names}"
            ) from None
        return self.segment.extra + i * HISTOGRAM_SIZE

    def writer(self, name: str) -> HistogramWriter:
        """The writer for `name`; one per name per set, as histograms allow a single writer."""
        if self.segment.readonly:
            raise SegmentError(f"{self.segment.name!r} is attached read-only")
        if name in self._writers:
            raise SegmentError(f"histogram {name!r} already has a writer in this process")
        off = self.offset(name)
        v = self.segment.view()
        try:
            w = HistogramWriter(v, off)
        finally:
            v.release()
        self._writers[name] = w
        return w

    def snapshot(self, name: str) -> HistogramSnapshot:
        return read_snapshot(self._rview, self.offset(name))

    def snapshots(self) -> dict[str, HistogramSnapshot]:
        return {n: self.snapshot(n) for n in self._names}

    def total(self, name: str) -> int:
        """The writer's record count: one load, so a poller can skip an unchanged histogram
        instead of copying its 27,648 counters (~0.9 ms each on 3.13t)."""
        return int(struct.unpack_from("<q", self._rview, self.offset(name) + 8 * _W_TOTAL)[0])

    def close(self) -> None:
        """Release the writers handed out, then the segment (see the class doc on threads)."""
        for w in self._writers.values():
            w.release()
        self._writers.clear()
        self.segment.close()

    def unlink(self) -> None:
        self.segment.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self.segment.owner:
            self.unlink()

    def __repr__(self) -> str:
        return f"<HistogramSet {self.segment.name} {self._names}>"
