"""Shared-memory latency histogram: HdrHistogram bucketing, precision against exact percentiles,
snapshot algebra, overflow/rejected accounting, a concurrent writer/reader, and a second process
recording into a HistogramSet."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.shm.histogram import (
    BUCKET_COUNT,
    COUNTS_LEN,
    EMPTY_MIN,
    HIGHEST,
    HISTOGRAM_SIZE,
    LAYOUT,
    MAX_HISTOGRAMS,
    SET_LAYOUT,
    SUB_BUCKET_COUNT,
    SUB_BUCKET_HALF_COUNT,
    SUB_BUCKET_HALF_COUNT_MAGNITUDE,
    SUB_BUCKET_MASK,
    UNIT_MAGNITUDE,
    HistogramSet,
    HistogramSnapshot,
    HistogramWriter,
    PercentileRank,
    counts_index,
    format_histogram,
    highest_equivalent,
    lowest_equivalent,
    median_equivalent,
    read_snapshot,
    size_of_equivalent_range,
    value_from_index,
)
from vajra.shm.layout import LINE
from vajra.shm.segment import SHM_DIR, Segment, SegmentError, list_segments, new_run_id

# Values across the whole trackable range with a log-uniform-ish spread: uniform integers
# would almost all land in the top two buckets.
values_in_range = st.one_of(
    st.integers(1, 2_048),
    st.integers(1, 1_000_000),
    st.integers(1, HIGHEST),
    st.integers(0, 40).map(lambda e: min(HIGHEST, 1 << e)),
)
any_value = st.one_of(values_in_range, st.integers(-(10**12), -1), st.integers(HIGHEST + 1, 2**62))
PERCENTILES = [
    0.0,
    0.1,
    1.0,
    10.0,
    25.0,
    33.3,
    40.0,
    50.0,
    66.7,
    75.0,
    90.0,
    99.0,
    99.9,
    99.99,
    100.0,
]


@pytest.fixture
def run_id() -> Iterator[str]:
    run = new_run_id()
    yield run
    for h in list_segments(run):
        os.unlink(SHM_DIR / h.name)


def _exact_rank(p: float, n: int, rank: str) -> int:
    """1-based rank of the value at percentile p among n sorted values, per the rule named."""
    if rank == "ceil":
        return max(1, math.ceil((math.nextafter(p, -math.inf) * n) / 100.0))
    return max(1, int(p * n / 100 + 0.5))


# -- HdrHistogram parameters and bucketing ------------------------------------------------------


def test_parameters_match_hdrhistogram_for_1ns_to_60s_3_digits() -> None:
    assert (SUB_BUCKET_COUNT, SUB_BUCKET_HALF_COUNT, SUB_BUCKET_HALF_COUNT_MAGNITUDE) == (
        2048,
        1024,
        10,
    )
    assert UNIT_MAGNITUDE == 0
    assert SUB_BUCKET_MASK == 2047
    assert BUCKET_COUNT == 26
    assert COUNTS_LEN == 27648
    assert LAYOUT.offset("counts") == LINE  # the writer's header line is alone on its line
    assert LAYOUT.get_field("counts").count == COUNTS_LEN
    assert HISTOGRAM_SIZE % LINE == 0
    assert LAYOUT.size <= HISTOGRAM_SIZE


def test_small_values_are_exact_and_buckets_double() -> None:
    for v in (0, 1, 2, 1000, 2047):
        assert counts_index(v) == v
        assert lowest_equivalent(v) == highest_equivalent(v) == v
    # 2048..4095 share slots two wide, 4096..8191 four wide, and so on.
    assert counts_index(2048) == counts_index(2049) == 2048
    assert (lowest_equivalent(2049), highest_equivalent(2048)) == (2048, 2049)
    assert size_of_equivalent_range(4096) == 4
    assert median_equivalent(4096) == 4098
    assert counts_index(HIGHEST) < COUNTS_LEN
    # The last slot of the counts array still maps onto the last bucket.
    assert counts_index(highest_equivalent(value_from_index(COUNTS_LEN - 1))) == COUNTS_LEN - 1


@given(values_in_range)
def test_equivalence_ranges_bound_the_value_within_precision(v: int) -> None:
    lo, hi = lowest_equivalent(v), highest_equivalent(v)
    assert lo <= v <= hi
    assert value_from_index(counts_index(v)) == lo
    assert hi - lo + 1 == size_of_equivalent_range(v)
    assert (hi - lo) / max(lo, 1) < 1 / 1000
    assert counts_index(v) <= counts_index(v + 1) <= counts_index(v) + 1


# -- precision against an exact sort ------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.lists(values_in_range, min_size=1, max_size=400), st.lists(st.floats(0.0, 100.0), max_size=5)
)
def test_percentiles_within_declared_precision_of_exact_sort(
    data: list[int], extra_ps: list[float]
) -> None:
    snap = HistogramSnapshot.of(data)
    ordered = sorted(data)
    n = len(ordered)
    ranks: tuple[PercentileRank, ...] = ("ceil", "round")
    for rank in ranks:
        for p in PERCENTILES + extra_ps:
            got = snap.percentile(p, rank=rank)
            exact = ordered[_exact_rank(p, n, rank) - 1]
            # Same slot as the exact value, reported at its top (bottom for p == 0).
            assert lowest_equivalent(got) == lowest_equivalent(exact)
            assert got == (lowest_equivalent(exact) if p == 0 else highest_equivalent(exact))
            assert abs(got - exact) <= exact / 1000
    assert snap.total == n
    assert snap.min == lowest_equivalent(ordered[0])
    assert snap.max == highest_equivalent(ordered[-1])
    assert abs(snap.mean - sum(data) / n) <= (sum(data) / n) / 1000 + 1
    assert snap.writer_min == ordered[0] and snap.writer_max == ordered[-1]
    assert snap.writer_mean == pytest.approx(sum(data) / n)


def test_ceil_and_round_ranks_differ_as_documented() -> None:
    snap = HistogramSnapshot.of([10, 20, 30])
    assert snap.percentile(40) == 20  # ceil(1.2) = 2nd value: 40% of values are <= 20
    assert snap.percentile(40, rank="round") == 10  # round(1.2) = 1st value
    assert snap.percentile(50) == snap.percentile(50, rank="round") == 20
    # 99.9 of 1000 values is the 999th, not the max (Java's one-ulp nudge).
    thousand = HistogramSnapshot.of(range(1, 1001))
    assert thousand.percentile(99.9) == 999
    assert thousand.percentiles([50, 100]) == {50: 500, 100: 1000}


def test_empty_snapshot_and_argument_checks() -> None:
    empty = HistogramSnapshot.of([])
    assert (empty.total, empty.min, empty.max, empty.mean) == (0, 0, 0, 0.0)
    assert empty.percentile(99) == 0
    assert empty.writer_min is None and empty.writer_max is None and empty.writer_mean is None
    assert empty.buckets() == []
    with pytest.raises(ValueError):
        empty.percentile(101)
    with pytest.raises(ValueError):
        HistogramSnapshot.of([1]).percentile(-0.5)
    with pytest.raises(ValueError):
        HistogramSnapshot([0] * (COUNTS_LEN - 1))
    with pytest.raises(ValueError):
        HistogramSnapshot([-1] + [0] * (COUNTS_LEN - 1))


def test_buckets_list_non_empty_slots() -> None:
    snap = HistogramSnapshot.of([5, 5, 3000, 3001, 10**9])
    assert snap.buckets() == [
        (5, 5, 2),
        (3000, 3001, 2),
        (lowest_equivalent(10**9), highest_equivalent(10**9), 1),
    ]
    assert snap.count_at(3001) == 2


# -- algebra and accounting ---------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(any_value, max_size=200), st.lists(any_value, max_size=200))
def test_merge_equals_histogram_of_concatenation_and_subtract_inverts_it(
    a: list[int], b: list[int]
) -> None:
    ha, hb, hab = HistogramSnapshot.of(a), HistogramSnapshot.of(b), HistogramSnapshot.of(a + b)
    merged = ha.merge(hb)
    assert merged.same_counts(hab)
    assert (merged.writer_total, merged.writer_sum) == (hab.writer_total, hab.writer_sum)
    assert (merged.writer_min, merged.writer_max) == (hab.writer_min, hab.writer_max)
    assert HistogramSnapshot.merged(ha, hb, HistogramSnapshot.empty()).same_counts(hab)
    back = merged.subtract(ha)
    assert back.same_counts(hb)
    assert (back.writer_total, back.writer_sum) == (hb.writer_total, hb.writer_sum)
    assert back.percentiles(PERCENTILES) == hb.percentiles(PERCENTILES)


def test_subtract_refuses_a_snapshot_that_is_not_earlier() -> None:
    with pytest.raises(ValueError, match="not an earlier snapshot"):
        HistogramSnapshot.of([1, 2]).subtract(HistogramSnapshot.of([1, 3]))


@settings(max_examples=100, deadline=None)
@given(st.lists(any_value, max_size=300))
def test_overflow_and_rejected_accounting_is_exact(data: list[int]) -> None:
    snap = HistogramSnapshot.of(data)
    kept = [min(v, HIGHEST) for v in data if v >= 0]
    assert snap.overflow == sum(v > HIGHEST for v in data)
    assert snap.rejected == sum(v < 0 for v in data)
    assert snap.total == snap.writer_total == len(kept)
    assert snap.writer_sum == sum(kept)
    assert snap.count_at(HIGHEST) >= snap.overflow  # clamped values are counted, not dropped
    if kept:
        assert (snap.writer_min, snap.writer_max) == (min(kept), max(kept))
        assert snap.max <= highest_equivalent(HIGHEST)


def test_record_n_equals_repeated_record() -> None:
    buf = bytearray(HISTOGRAM_SIZE)
    with HistogramWriter(buf) as w:
        w.record_n(1234, 5)
        w.record_n(-3, 2)
        w.record_n(HIGHEST * 2, 3)
        w.record_n(7, 0)
        with pytest.raises(ValueError):
            w.record_n(7, -1)
    want = HistogramSnapshot.of([1234] * 5 + [-3] * 2 + [HIGHEST * 2] * 3)
    got = read_snapshot(buf)
    assert got.same_counts(want)
    assert (got.writer_total, got.writer_sum) == (want.writer_total, want.writer_sum)


# -- writer and buffer handling ------------------------------------------------------------------


def test_histograms_at_offsets_share_one_buffer_and_a_writer_continues() -> None:
    buf = bytearray(2 * HISTOGRAM_SIZE)
    with HistogramWriter(buf, 0) as a, HistogramWriter(buf, HISTOGRAM_SIZE) as b:
        a.record(10)
        b.record(20)
        b.record(30)
    assert read_snapshot(buf, 0).total == 1
    assert read_snapshot(buf, HISTOGRAM_SIZE).total == 2
    with HistogramWriter(buf, HISTOGRAM_SIZE) as again:  # formatted memory: keeps counting
        again.record(40)
        assert again.snapshot().total == 3


def test_buffer_checks() -> None:
    with pytest.raises(ValueError, match="multiple of 128"):
        HistogramWriter(bytearray(2 * HISTOGRAM_SIZE), 8)
    with pytest.raises(ValueError, match="no room"):
        HistogramWriter(bytearray(HISTOGRAM_SIZE - 8), 0)
    with pytest.raises(ValueError, match="no histogram was formatted"):
        read_snapshot(bytearray(HISTOGRAM_SIZE), 0)
    bad = bytearray(HISTOGRAM_SIZE)
    format_histogram(bad, 0)
    bad[LAYOUT.offset("highest") : LAYOUT.offset("highest") + 8] = (10**6).to_bytes(8, "little")
    with pytest.raises(ValueError, match="formatted with"):
        HistogramWriter(bad, 0)
    with pytest.raises(ValueError, match="formatted with"):
        read_snapshot(bad, 0)


def test_reset_is_local_only(run_id: str) -> None:
    buf = bytearray(HISTOGRAM_SIZE)
    with HistogramWriter(buf) as w:
        w.record(5)
        w.record(-5)
        w.reset()
        s = w.snapshot()
    assert (s.total, s.rejected, s.writer_total, s.writer_min) == (0, 0, 0, None)
    raw = memoryview(buf).cast("q")
    assert raw[LAYOUT.word("min")] == EMPTY_MIN
    raw.release()
    with HistogramSet.create(run_id, ["x"]) as hs:
        w = hs.writer("x")
        w.record(5)
        with pytest.raises(SegmentError, match="monotonic"):
            w.reset()
        assert hs.snapshot("x").total == 1


# -- concurrent writer and reader ---------------------------------------------------------------


def test_snapshots_taken_while_a_thread_records_are_monotonic(run_id: str) -> None:
    values = [((i * 2_654_435_761) % 50_000_000) + (i % 7) for i in range(150_000)]
    values += [HIGHEST + 5, -1] * 50
    with HistogramSet.create(run_id, ["ring.hop"]) as hs:
        writer = hs.writer("ring.hop")
        offset = hs.offset("ring.hop")
        started = threading.Event()
        done = threading.Event()
        snaps: list[HistogramSnapshot] = []
        errors: list[BaseException] = []

        def write() -> None:
            try:
                started.wait()
                for v in values:
                    writer.record(v)
            except BaseException as exc:  # surfaced by the main thread
                errors.append(exc)
            finally:
                done.set()

        def read() -> None:
            view = hs.segment.view()  # this thread's own view
            try:
                started.set()
                while not done.is_set():
                    snaps.append(read_snapshot(view, offset))
                snaps.append(read_snapshot(view, offset))
            except BaseException as exc:
                errors.append(exc)
            finally:
                view.release()

        threads = [threading.Thread(target=write), threading.Thread(target=read)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        exact = HistogramSnapshot.of(values)
        assert any(0 < s.total < exact.total for s in snaps), "reader never overlapped writer"
        prev = HistogramSnapshot.empty()
        for s in snaps:
            assert all(a <= b for a, b in zip(prev.counts, s.counts, strict=True))
            assert s.overflow >= prev.overflow and s.rejected >= prev.rejected
            assert s.writer_total is not None and prev.writer_total is not None
            assert s.writer_total >= prev.writer_total
            # The writer's words are read after the counts: at most one record behind them.
            assert s.total <= s.writer_total + 1
            prev = s
        final = snaps[-1]
        assert final.same_counts(exact)
        assert (final.writer_total, final.writer_sum, final.writer_min, final.writer_max) == (
            exact.writer_total,
            exact.writer_sum,
            exact.writer_min,
            exact.writer_max,
        )
        # Intervals between consecutive snapshots add back up to the whole.
        intervals = [b.subtract(a) for a, b in itertools.pairwise(snaps)]
        assert HistogramSnapshot.merged(snaps[0], *intervals).same_counts(exact)


# -- HistogramSet -------------------------------------------------------------------------------


def test_histogram_set_names_writers_and_readers(run_id: str) -> None:
    names = ["oracle.tick_to_signal", "ring.hop", "exec.rtt"]
    with HistogramSet.create(run_id, names) as hs:
        assert hs.names() == names
        w = hs.writer("ring.hop")
        w.record(1500)
        with pytest.raises(SegmentError, match="already has a writer"):
            hs.writer("ring.hop")
        with pytest.raises(KeyError, match="no histogram 'nope'"):
            hs.writer("nope")
        offsets = [hs.offset(n) for n in names]
        assert offsets == [hs.segment.extra + i * HISTOGRAM_SIZE for i in range(3)]
        assert all(o % LINE == 0 for o in offsets)

        reader = HistogramSet.attach(run_id, readonly=True)
        try:
            assert reader.names() == names
            assert reader.snapshot("ring.hop").percentile(50) == 1500
            assert reader.snapshot("exec.rtt").total == 0
            assert set(reader.snapshots()) == set(names)
            with pytest.raises(SegmentError, match="read-only"):
                reader.writer("exec.rtt")
        finally:
            reader.close()
    assert not list(list_segments(run_id))  # the owner's exit unlinked it


def test_histogram_set_rejects_bad_names(run_id: str) -> None:
    with pytest.raises(ValueError, match="invalid histogram name"):
        HistogramSet.create(run_id, ["Has Space"])
    with pytest.raises(ValueError, match="duplicate"):
        HistogramSet.create(run_id, ["a", "a"])
    with pytest.raises(ValueError, match="at most"):
        HistogramSet.create(run_id, [f"h{i}" for i in range(MAX_HISTOGRAMS + 1)])
    with pytest.raises(ValueError, match="at least one"):
        HistogramSet.create(run_id, [])
    assert not list(list_segments(run_id))


def test_histogram_set_refuses_histograms_of_another_layout(run_id: str) -> None:
    # The set's own layout matches, but the histogram layout hash it records does not (here 0):
    # a reader built with different histogram parameters must not read these counts.
    seg = Segment.create(run_id, "histograms", SET_LAYOUT, extra=HISTOGRAM_SIZE)
    try:
        with pytest.raises(SegmentError, match="different builds"):
            HistogramSet.attach(run_id, readonly=True)
    finally:
        seg.close()
        seg.unlink()


CHILD = """
import json, sys
from vajra.shm.histogram import HistogramSet

run_id, values = sys.argv[1], json.loads(sys.stdin.read())
hs = HistogramSet.attach(run_id)
w = hs.writer("oracle.tick_to_signal")
for v in values:
    w.record(v)
print(json.dumps({"names": hs.names(), "pid": __import__("os").getpid()}))
hs.close()
"""


def test_a_second_process_records_and_the_parent_reads_the_same_percentiles(run_id: str) -> None:
    values = [int(1_000 * 1.013**i) for i in range(900)] + [HIGHEST * 3, -7, 0]
    names = ["oracle.tick_to_signal", "ring.hop"]
    with HistogramSet.create(run_id, names) as hs:
        before = hs.snapshot("oracle.tick_to_signal")
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(CHILD), run_id],
            input=json.dumps(values),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        reply = json.loads(proc.stdout)
        assert reply["names"] == names  # discovered from the segment, not passed in
        assert reply["pid"] != os.getpid()
        after = hs.snapshot("oracle.tick_to_signal")
        expected = HistogramSnapshot.of(values)
        assert before.total == 0
        assert after.same_counts(expected)
        assert after.percentiles(PERCENTILES) == expected.percentiles(PERCENTILES)
        ordered = sorted(min(v, HIGHEST) for v in values if v >= 0)
        assert after.percentile(50) == highest_equivalent(
            ordered[_exact_rank(50, len(ordered), "ceil") - 1]
        )
        assert (after.overflow, after.rejected) == (1, 1)
        assert (after.writer_min, after.writer_max) == (0, HIGHEST)
        assert hs.snapshot("ring.hop").total == 0
