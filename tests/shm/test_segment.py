"""Segment lifecycle and the shared-memory traps that apply to it (reference/shm-ipc.md):
#4 resource-tracker unlink, #5 BufferError on close, header/layout mismatch, and stale segments
after `kill -9`."""

from __future__ import annotations

import itertools
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vajra.shm.layout import LINE, Field, Layout, line_fields
from vajra.shm.segment import (
    HEADER,
    SHM_DIR,
    LayoutMismatch,
    Segment,
    SegmentError,
    find_stale,
    list_segments,
    new_run_id,
    read_header,
    remove_stale,
    segment_name,
)

DEMO = Layout("demo", 1, (Field("a"), *line_fields("b", "c"), Field("blob", "16s")))


@pytest.fixture
def run_id() -> Iterator[str]:
    run = new_run_id()
    yield run
    for h in list_segments(run):
        os.unlink(SHM_DIR / h.name)


def _child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_layout_offsets_alignment_and_hash() -> None:
    assert DEMO.offset("a") == 0
    assert DEMO.offset("b") == LINE  # a new writer's line starts 128 bytes in
    assert DEMO.offset("c") == LINE + 8
    assert DEMO.offset("blob") == LINE + 16
    assert DEMO.word("c") == (LINE + 8) // 8
    same = Layout("demo", 1, (Field("a"), *line_fields("b", "c"), Field("blob", "16s")))
    assert same.hash == DEMO.hash
    assert Layout("demo", 2, DEMO.fields).hash != DEMO.hash  # version bump
    assert Layout("demo", 1, (Field("a"), Field("b"), Field("c"))).hash != DEMO.hash  # shape
    with pytest.raises(ValueError, match="duplicate"):
        Layout("x", 1, (Field("a"), Field("a")))
    with pytest.raises(ValueError, match="8-aligned"):
        Layout("x", 1, (Field("a", align=4),))
    with pytest.raises(KeyError, match="no field"):
        DEMO.offset("zzz")


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["q", "d", "8s", "24s"]),
            st.integers(1, 3),
            st.sampled_from([8, 16, 64, 128]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_layout_fields_never_overlap(spec: list[tuple[str, int, int]]) -> None:
    lay = Layout("p", 1, tuple(Field(f"f{i}", fmt, n, al) for i, (fmt, n, al) in enumerate(spec)))
    spans = sorted((lay.offset(f.name), lay.offset(f.name) + f.size, f.align) for f in lay.fields)
    for (a0, a1, al), (b0, _, _) in itertools.pairwise(spans):
        assert a1 <= b0
        assert a0 % al == 0
    assert lay.size >= spans[-1][1]


def test_create_attach_header_and_mode(run_id: str) -> None:
    seg = Segment.create(run_id, "demo", DEMO, extra=1000)
    try:
        assert seg.name == segment_name(run_id, "demo") == f"vajra-{run_id}-demo"
        st_ = os.stat(SHM_DIR / seg.name)
        assert stat.S_IMODE(st_.st_mode) == 0o600
        h = read_header(seg.name)
        assert h.magic_ok and h.ready and h.layout_name == "demo" and h.layout_hash == DEMO.hash
        assert h.creator_pid == os.getpid() and h.run_id == run_id and h.extra_size == 1000
        assert abs(h.created_ns - time.time_ns()) < 60e9
        peer = Segment.attach(run_id, "demo", DEMO)
        v = peer.view()
        q = peer.cast(v, "q")
        q[peer.body // 8 + DEMO.word("c")] = 42
        mine = seg.view()
        assert mine.cast("q")[seg.body // 8 + DEMO.word("c")] == 42
        mine.release()
        assert peer.extra % LINE == 0 and peer.extra >= peer.body + DEMO.size
        peer.close()
    finally:
        seg.close()
        seg.unlink()
    assert not (SHM_DIR / seg.name).exists()


def test_layout_mismatch_refused_with_clear_error(run_id: str) -> None:
    seg = Segment.create(run_id, "demo", DEMO)
    try:
        other = Layout("demo", 2, DEMO.fields)
        with pytest.raises(LayoutMismatch, match=r"v1 .*expected 'demo' v2"):
            Segment.attach(run_id, "demo", other)
        with pytest.raises(LayoutMismatch, match="different builds"):
            Segment.attach(run_id, "demo", Layout("demo", 1, (Field("a"),)))
        # a corrupted header: not a Vajra segment
        v = seg.view()
        v.cast("q")[HEADER.word("magic")] = 0
        v.release()
        with pytest.raises(LayoutMismatch, match="bad magic"):
            Segment.attach(run_id, "demo", DEMO)
    finally:
        seg.close()
        seg.unlink()
    with pytest.raises(SegmentError, match="does not exist"):
        Segment.attach(run_id, "demo", DEMO)


def test_duplicate_create_and_bad_names(run_id: str) -> None:
    seg = Segment.create(run_id, "demo", DEMO)
    try:
        with pytest.raises(SegmentError, match="already exists"):
            Segment.create(run_id, "demo", DEMO)
        with pytest.raises(ValueError, match="invalid segment name"):
            Segment.create(run_id, "Bad-Name", DEMO)
        with pytest.raises(ValueError, match="invalid run id"):
            segment_name("a/b", "x")
    finally:
        seg.close()
        seg.unlink()


def test_readonly_attach_cannot_write(run_id: str) -> None:
    seg = Segment.create(run_id, "demo", DEMO)
    try:
        ro = Segment.attach(run_id, "demo", DEMO, readonly=True)
        v = ro.view()
        assert v.readonly
        with pytest.raises(TypeError):
            v[0] = 1
        with pytest.raises(SegmentError, match="only its creator"):
            ro.unlink()
        ro.close()
    finally:
        seg.close()
        seg.unlink()


def test_trap4_attacher_exit_does_not_unlink(run_id: str) -> None:
    """A process that merely attaches and exits must not take the segment with it."""
    seg = Segment.create(run_id, "demo", DEMO)
    try:
        r = _child(
            """
            import sys
            from vajra.shm.segment import Segment
            from tests.shm.test_segment import DEMO
            s = Segment.attach(sys.argv[1], "demo", DEMO)
            v = s.view(); v.cast("q")[s.body // 8] = 7
            s.close()
        """,
            run_id,
        )
        assert r.returncode == 0, r.stderr
        time.sleep(0.2)  # the resource tracker, had it been involved, acts at child exit
        assert (SHM_DIR / seg.name).exists()
        again = Segment.attach(run_id, "demo", DEMO)
        v = again.view()
        assert v.cast("q")[again.body // 8] == 7
        again.close()
    finally:
        seg.close()
        seg.unlink()


def test_trap5_close_releases_tracked_views(run_id: str) -> None:
    seg = Segment.create(run_id, "demo", DEMO)
    v = seg.view()
    q = seg.cast(v, "q")
    d = seg.cast(v, "d")
    q[0] = 1
    seg.close()  # would raise BufferError if the casts were still exported
    assert seg.closed
    with pytest.raises(ValueError):
        q[0]
    with pytest.raises(ValueError):
        d[0]
    with pytest.raises(SegmentError, match="closed"):
        seg.view()
    seg.unlink()


def test_trap5_untracked_view_gives_clear_error(run_id: str) -> None:
    seg = Segment.create(run_id, "demo", DEMO)
    v = seg.view()
    rogue = v.cast("B")  # not obtained through Segment.cast()
    with pytest.raises(SegmentError, match="still alive"):
        seg.close()
    rogue.release()
    seg.unlink()


def test_stale_segment_after_kill9_is_found_and_removed(run_id: str) -> None:
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
            import sys, time
            from vajra.shm.segment import Segment
            from tests.shm.test_segment import DEMO
            Segment.create(sys.argv[1], "demo", DEMO)
            print("ready", flush=True)
            time.sleep(60)
        """),
            run_id,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    name = segment_name(run_id, "demo")
    live = Segment.create(run_id, "live", DEMO)
    try:
        assert name not in {s.name for s in find_stale()}  # creator alive: not stale
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert (SHM_DIR / name).exists()  # SIGKILL leaves it behind...
        stale = {s.name for s in find_stale()}
        assert name in stale
        assert live.name not in stale  # ...and our own live segment is never taken for it
        removed = remove_stale()
        assert name in removed
        assert not (SHM_DIR / name).exists()
        assert (SHM_DIR / live.name).exists()
        # restart under the same run id now works
        Segment.create(run_id, "demo", DEMO).__exit__(None, None, None)
    finally:
        live.close()
        live.unlink()


def test_garbage_file_with_our_prefix_is_stale_only_when_old(run_id: str) -> None:
    path = SHM_DIR / f"vajra-{run_id}-junk"
    path.write_bytes(b"not a header")
    try:
        assert path.name not in {s.name for s in find_stale(min_age_s=10)}
        old = time.time() - 60
        os.utime(path, (old, old))
        assert path.name in {s.name for s in find_stale(min_age_s=10)}
    finally:
        path.unlink(missing_ok=True)
