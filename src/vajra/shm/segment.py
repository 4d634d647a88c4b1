"""Shared-memory segments: deterministic names, a verified header, and one owner who unlinks.

Every segment is `/dev/shm/vajra-<run>-<segment>` and starts with a header (magic, header
version, layout name/version/hash, creator pid and process start time, run id, creation time,
sizes, and a `ready` word written last). A reader verifies all of it before touching the body and
refuses a mismatch with an error that says what differs.

Traps this module exists to avoid (reference/shm-ipc.md):
- #4 `resource_tracker` unlinks segments that a process merely attached to when it exits:
  everything here uses `track=False`, and only the creating `Segment` may `unlink()`.
- #5 `SharedMemory.close()` raises `BufferError` while a view is alive: views handed out by
  `view()`/`cast()` are tracked and released (casts first) before the mapping closes.
- stale segments of runs killed with SIGKILL: `find_stale()`/`remove_stale()` spot them by the
  creator pid *and* its process start time (pids get reused), and startup removes them.

Ownership under free threading: a `Segment` object belongs to the thread that created or attached
it. Other threads take their own views through `view()`; `close()` must run after those threads
stopped using them (releasing a view another thread is reading is unsafe, CPython gh-127716).
"""

from __future__ import annotations

import mmap
import os
import re
import secrets
import struct
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Self

from vajra.shm.layout import LINE, Field, Layout, align_up

SHM_DIR = Path("/dev/shm")
PREFIX = "vajra-"
MAGIC = 0x4D48_5341_524A_4156  # b"VAJRASHM" little-endian
HEADER_VERSION = 1

HEADER = Layout(
    "header",
    HEADER_VERSION,
    (
        Field("magic", doc="b'VAJRASHM'"),
        Field("header_version"),
        Field("layout_hash", doc="Layout.hash of the body"),
        Field("layout_version"),
        Field("creator_pid"),
        Field("creator_start", doc="creator's start time in clock ticks (/proc/pid/stat #22)"),
        Field("created_ns", doc="time.time_ns() at creation"),
        Field("total_size"),
        Field("body_offset"),
        Field("extra_size", doc="bytes after the body layout (ring slots, histogram counts)"),
        Field("ready", doc="1 once the creator finished initialising; written last"),
        Field("run_id", "32s"),
        Field("layout_name", "32s"),
    ),
)
BODY_OFFSET = align_up(HEADER.size, LINE)

_NAME_RE = re.compile(r"^[a-z0-9_.]{1,64}$")
_RUN_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class SegmentError(RuntimeError):
    """A segment is missing, malformed, or not the one the caller expected."""


class LayoutMismatch(SegmentError):
    """The segment exists but was written with a different layout (or is not a Vajra segment)."""


def new_run_id() -> str:
    """Sortable and unique enough for concurrent runs on one host: time plus 16 random bits."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def segment_name(run_id: str, segment: str) -> str:
    if not _RUN_RE.match(run_id):
        raise ValueError(f"invalid run id {run_id!r} (letters, digits, '_', '.', '-'; <= 32)")
    if not _NAME_RE.match(segment):
        raise ValueError(f"invalid segment name {segment!r} (a-z, 0-9, '_', '.'; <= 64)")
    return f"{PREFIX}{run_id}-{segment}"


def process_start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot, or None if it does not exist (or is a
    zombie: a killed engine whose parent has not reaped it yet is dead all the same)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # comm may contain spaces and parentheses: fields resume after the last ')'.
    rest = data[data.rindex(b")") + 2 :].split()
    if rest[0] in (b"Z", b"X"):  # dead, not yet reaped by its parent: gone for our purposes
        return None
    return int(rest[19])  # field 22 overall; rest[0] is field 3


def _pid_alive(pid: int, start_ticks: int) -> bool:
    start = process_start_ticks(pid)
    return start is not None and (start_ticks == 0 or start == start_ticks)


@dataclass(frozen=True, slots=True)
class HeaderInfo:
    name: str
    magic_ok: bool
    header_version: int
    layout_name: str
    layout_version: int
    layout_hash: int
    creator_pid: int
    creator_start: int
    created_ns: int
    total_size: int
    body_offset: int
    extra_size: int
    ready: bool
    run_id: str


def _decode_header(name: str, raw: bytes) -> HeaderInfo:
    if len(raw) < HEADER.size:
        return HeaderInfo(name, False, 0, "", 0, 0, 0, 0, 0, len(raw), 0, 0, False, "")
    w = struct.unpack_from("<11q", raw, 0)
    run = raw[HEADER.offset("run_id") : HEADER.offset("run_id") + 32].rstrip(b"\0")
    lname = raw[HEADER.offset("layout_name") : HEADER.offset("layout_name") + 32].rstrip(b"\0")
    return HeaderInfo(
        name=name,
        magic_ok=w[0] == MAGIC,
        header_version=w[1],
        layout_hash=w[2],
        layout_version=w[3],
        creator_pid=w[4],
        creator_start=w[5],
        created_ns=w[6],
        total_size=w[7],
        body_offset=w[8],
        extra_size=w[9],
        ready=w[10] == 1,
        run_id=run.decode(errors="replace"),
        layout_name=lname.decode(errors="replace"),
    )


def read_header(name: str) -> HeaderInfo:
    """Read a segment's header without mapping it (used by the stale scan and diagnostics)."""
    try:
        fd = os.open(SHM_DIR / name, os.O_RDONLY)
    except FileNotFoundError:
        raise SegmentError(f"shared-memory segment {name!r} does not exist") from None
    try:
        raw = os.pread(fd, HEADER.size, 0)
    finally:
        os.close(fd)
    return _decode_header(name, raw)


class Segment:
    """One mapped segment: a header, a body described by `layout`, and `extra` trailing bytes."""

    def __init__(
        self,
        name: str,
        layout: Layout,
        buf: memoryview,
        closer: SharedMemory | mmap.mmap,
        *,
        owner: bool,
        readonly: bool,
        extra_size: int,
        run_id: str,
    ) -> None:
        self.name = name
        self.layout = layout
        self.owner = owner
        self.readonly = readonly
        self.extra_size = extra_size
        self.run_id = run_id
        self.body = BODY_OFFSET
        #: Byte offset of the trailing region (ring slots, histogram counts).
        self.extra = align_up(BODY_OFFSET + layout.size, LINE)
        self._buf: memoryview | None = buf
        self._closer = closer
        self._views: list[weakref.ref[memoryview]] = []
        self._unlinked = False

    # -- creation and attachment ------------------------------------------------------------

    @classmethod
    def create(cls, run_id: str, segment: str, layout: Layout, extra: int = 0) -> Self:
        """Create and initialise a segment; this object becomes its owner (the only unlinker)."""
        name = segment_name(run_id, segment)
        extra_at = align_up(BODY_OFFSET + layout.size, LINE)
        total = align_up(extra_at + extra, 4096)
        try:
            shm = SharedMemory(name=name, create=True, size=total, track=False)
        except FileExistsError:
            raise SegmentError(
                f"segment {name!r} already exists: another engine with run id {run_id!r} is "
                "running, or a previous one died (run `vajra doctor` / remove_stale())"
            ) from None
        # SharedMemory creates with mode 0600 already; make it explicit for the umask-paranoid.
        os.chmod(SHM_DIR / name, 0o600)
        buf = shm.buf
        assert buf is not None
        seg = cls(
            name, layout, buf, shm, owner=True, readonly=False, extra_size=extra, run_id=run_id
        )
        v = seg.view()
        q = seg.cast(v, "q")
        h = HEADER.word
        q[h("magic")] = MAGIC
        q[h("header_version")] = HEADER_VERSION
        q[h("layout_hash")] = layout.hash
        q[h("layout_version")] = layout.version
        pid = os.getpid()
        q[h("creator_pid")] = pid
        q[h("creator_start")] = process_start_ticks(pid) or 0
        q[h("created_ns")] = time.time_ns()
        q[h("total_size")] = total
        q[h("body_offset")] = BODY_OFFSET
        q[h("extra_size")] = extra
        for fname, text in (("run_id", run_id), ("layout_name", layout.name[:32])):
            off = HEADER.offset(fname)
            raw = text.encode()
            v[off : off + len(raw)] = raw
        q[h("ready")] = 1  # last: a reader that sees ready=1 sees everything above
        q.release()
        v.release()
        return seg

    @classmethod
    def attach(cls, run_id: str, segment: str, layout: Layout, *, readonly: bool = False) -> Self:
        """Map an existing segment after verifying its header against `layout`.

        `readonly=True` maps it PROT_READ (the monitor's way in): a bug there cannot corrupt
        engine memory, and writes raise TypeError instead of silently landing.
        """
        name = segment_name(run_id, segment)
        info = read_header(name)
        cls._verify(info, layout)
        closer: SharedMemory | mmap.mmap
        if readonly:
            fd = os.open(SHM_DIR / name, os.O_RDONLY)
            try:
                closer = mmap.mmap(fd, info.total_size, access=mmap.ACCESS_READ)
            finally:
                os.close(fd)
            buf = memoryview(closer)
        else:
            closer = SharedMemory(name=name, create=False, track=False)
            assert closer.buf is not None
            buf = closer.buf
        return cls(
            name,
            layout,
            buf,
            closer,
            owner=False,
            readonly=readonly,
            extra_size=info.extra_size,
            run_id=run_id,
        )

    @staticmethod
    def _verify(info: HeaderInfo, layout: Layout) -> None:
        where = f"segment {info.name!r}"
        if not info.magic_ok:
            raise LayoutMismatch(f"{where} is not a Vajra segment (bad magic)")
        if info.header_version != HEADER_VERSION:
            raise LayoutMismatch(
                f"{where} has header version {info.header_version}, this code reads "
                f"{HEADER_VERSION}: engine and reader are from different releases"
            )
        if not info.ready:
            raise SegmentError(f"{where} is not initialised yet (creator pid {info.creator_pid})")
        if (
            info.layout_name != layout.name[:32]
            or info.layout_hash != layout.hash
            or (info.layout_version != layout.version)
        ):
            raise LayoutMismatch(
                f"{where} holds layout {info.layout_name!r} v{info.layout_version} "
                f"(hash {info.layout_hash & 0xFFFFFFFFFFFFFFFF:016x}); expected "
                f"{layout.name!r} v{layout.version} (hash {layout.hash & 0xFFFFFFFFFFFFFFFF:016x})"
                ": engine and reader are from different builds"
            )

    # -- views ------------------------------------------------------------------------------

    def view(self) -> memoryview:
        """A fresh memoryview of the whole segment for the calling thread to own."""
        if self._buf is None:
            raise SegmentError(f"segment {self.name!r} is closed")
        v = memoryview(self._buf)
        self._track(v)
        return v

    def cast(self, view: memoryview, fmt: str) -> memoryview:
        """A tracked cast of `view` (e.g. 'q' for 8-byte atomic loads and stores)."""
        c: memoryview = view.cast(fmt)  # type: ignore[call-overload]
        self._track(c)
        return c

    def _track(self, v: memoryview) -> None:
        views = self._views
        if len(views) >= 64:  # prune views that were released and collected
            views[:] = [r for r in views if r() is not None]
        views.append(weakref.ref(v))

    def header(self) -> HeaderInfo:
        assert self._buf is not None
        return _decode_header(self.name, bytes(self._buf[: HEADER.size]))

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Release every tracked view (newest first, so casts go before their bases), then unmap."""
        if self._buf is None:
            return
        for ref in reversed(self._views):
            v = ref()
            if v is not None:
                v.release()
        self._views.clear()
        self._buf = None
        try:
            self._closer.close()
        except BufferError as exc:
            raise SegmentError(
                f"segment {self.name!r}: a memoryview not obtained through Segment.view() is "
                "still alive; release it before close()"
            ) from exc

    def unlink(self) -> None:
        """Remove the name from /dev/shm. Only the creator may: readers never unlink."""
        if not self.owner:
            raise SegmentError(f"segment {self.name!r}: only its creator may unlink it")
        if self._unlinked:
            return
        try:
            os.unlink(SHM_DIR / self.name)
        except FileNotFoundError:
            pass
        self._unlinked = True

    @property
    def closed(self) -> bool:
        return self._buf is None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self.owner:
            self.unlink()

    def __repr__(self) -> str:
        role = "owner" if self.owner else ("reader" if self.readonly else "peer")
        return f"<Segment {self.name} {self.layout.name} v{self.layout.version} {role}>"


# -- discovery and stale cleanup -----------------------------------------------------------


def list_segments(run_id: str | None = None) -> Iterator[HeaderInfo]:
    """Headers of all Vajra segments (of one run, if given), read without mapping them."""
    try:
        names = sorted(os.listdir(SHM_DIR))
    except FileNotFoundError:
        return
    want = f"{PREFIX}{run_id}-" if run_id else PREFIX
    for n in names:
        if n.startswith(want):
            try:
                yield read_header(n)
            except (SegmentError, OSError):
                continue


def find_stale(min_age_s: float = 10.0) -> list[HeaderInfo]:
    """Segments whose creating process is gone (pid dead or reused), or nameless leftovers.

    A segment with a bad magic is only considered stale once older than `min_age_s`, so a
    segment another process is creating this very moment is never taken for garbage.
    """
    stale: list[HeaderInfo] = []
    now = time.time()
    for info in list_segments():
        if info.magic_ok:
            if not _pid_alive(info.creator_pid, info.creator_start):
                stale.append(info)
        else:
            try:
                age = now - (SHM_DIR / info.name).stat().st_mtime
            except OSError:
                continue
            if age >= min_age_s:
                stale.append(info)
    return stale


def remove_stale(min_age_s: float = 10.0) -> list[str]:
    """Unlink segments left by dead runs; returns their names (the caller logs them)."""
    removed = []
    for info in find_stale(min_age_s):
        try:
            os.unlink(SHM_DIR / info.name)
            removed.append(info.name)
        except FileNotFoundError:
            pass
    return removed
