"""HdrHistogram interval logs (.hlog): the V2 compressed histogram encoding and the log format.

Why this format: it is what HdrHistogram's own tools read (HistogramLogProcessor,
HistogramLogAnalyzer, the Java/C/Python/Go ports), so a run's latency record can be analysed
with standard tooling, merged across runs, and compared with other systems' logs.

Encoding (written from the format as HdrHistogram Java produces it; every field big-endian):

    base64( i32 compressed cookie 0x1c849314
            i32 length of the deflated bytes that follow
            zlib( i32 encoding cookie 0x1c849313
                  i32 payload length in bytes
                  i32 normalizing index offset (0)
                  i32 significant value digits
                  i64 lowest discernible value
                  i64 highest trackable value
                  f64 integer-to-double value conversion ratio (1.0)
                  payload: counts[0 .. index of max] as ZigZag LEB128-64b9B varints,
                           a negative number -n standing for n consecutive zero counts ) )

LEB128-64b9B: 7 bits per byte with a continuation bit, but the 9th byte carries a full 8 bits,
so any 64-bit ZigZag value fits in 9 bytes. Like Java, a single zero count is written as 0 and
only runs of two or more zeros as -n; decoders accept either (HdrHistogram_py writes -1).

Nothing here runs on the engine's hot path: the monitor (or a logger thread) encodes an interval
histogram about once per interval.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import compress
from pathlib import Path
from typing import IO, Final, Self

from vajra.shm.histogram import (
    COUNTS_LEN,
    HIGHEST,
    LOWEST,
    SIGNIFICANT_DIGITS,
    HistogramSnapshot,
)

V2_ENCODING_COOKIE: Final = 0x1C849303 | 0x10
V2_COMPRESSED_COOKIE: Final = 0x1C849304 | 0x10
_COOKIE_BASE_MASK: Final = ~0xF0
_OUTER = struct.Struct(">iI")
_HEADER = struct.Struct(">iiiiqqd")  # 40 bytes, the V2 encoding header
_U64: Final = (1 << 64) - 1

LOG_FORMAT_VERSION: Final = "1.3"
LEGEND: Final = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'
#: Ratio the interval max is divided by in each line: ns -> ms, HdrHistogram's default.
DEFAULT_MAX_VALUE_UNIT_RATIO: Final = 1_000_000.0

_TAG_RE = re.compile(r"^[^,\s]+$")
# Our own annotation, a comment line that HdrHistogram readers skip: what the format cannot say.
_VAJRA_NOTE_RE = re.compile(
    r"^#\[Vajra interval: overflow=(\d+) rejected=(\d+)(?: tag=([^,\s\]]+))?\]$"
)


class HlogFormatError(ValueError):
    """Bytes or a log line that are not what this module writes."""


# -- ZigZag LEB128-64b9B --------------------------------------------------------------------------


def _put_varint(out: bytearray, value: int) -> None:
    if not -(1 << 63) <= value < (1 << 63):
        raise OverflowError(f"{value} does not fit a 64-bit ZigZag varint")
    z = (value << 1) & _U64 if value >= 0 else ((-value << 1) - 1) & _U64
    for _ in range(8):
        if z < 0x80:
            out.append(z)
            return
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)  # 9th byte: the remaining 8 bits, no continuation bit


def _get_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    z = 0
    shift = 0
    for k in range(9):
        if pos >= end:
            raise HlogFormatError("truncated varint in histogram payload")
        b = data[pos]
        pos += 1
        if k == 8:
            z |= b << 56
            break
        z |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return (z >> 1) ^ -(z & 1), pos


# -- histogram encoding ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodedHistogram:
    """Every field of a V2 encoded histogram, before any check against our parameters."""

    normalizing_index_offset: int
    significant_digits: int
    lowest: int
    highest: int
    int_to_double_ratio: float
    counts: list[int] = field(repr=False)


def encode_histogram(snap: HistogramSnapshot, *, level: int = -1) -> str:
    """The base64 V2 compressed encoding of `snap` (what an .hlog line carries).

    Only counts up to the highest non-empty slot are encoded, as Java does (an empty histogram
    encodes one zero count). `level` is the zlib level; -1 is Java's Deflater default.
    """
    counts = snap.counts
    nz = list(compress(range(COUNTS_LEN), counts))
    payload = bytearray()
    prev = -1
    for i in nz:
        gap = i - prev - 1
        if gap == 1:
            _put_varint(payload, 0)
        elif gap > 1:
            _put_varint(payload, -gap)
        _put_varint(payload, counts[i])
        prev = i
    if not nz:
        _put_varint(payload, 0)
    header = _HEADER.pack(
        V2_ENCODING_COOKIE, len(payload), 0, SIGNIFICANT_DIGITS, LOWEST, HIGHEST, 1.0
    )
    deflated = zlib.compress(header + payload, level)
    return base64.b64encode(_OUTER.pack(V2_COMPRESSED_COOKIE, len(deflated)) + deflated).decode(
        "ascii"
    )


def decode_payload(text: str) -> DecodedHistogram:
    """Decode any V2 compressed histogram (any parameters) into its header fields and counts."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error as exc:
        raise HlogFormatError(f"histogram is not valid base64: {exc}") from None
    if len(raw) < _OUTER.size:
        raise HlogFormatError("encoded histogram shorter than its 8-byte header")
    cookie, length = _OUTER.unpack_from(raw)
    if cookie & _COOKIE_BASE_MASK != V2_COMPRESSED_COOKIE & _COOKIE_BASE_MASK:
        raise HlogFormatError(
            f"cookie {cookie & 0xFFFFFFFF:#010x} is not a V2 compressed histogram (V0/V1 "
            "encodings are not supported)"
        )
    if length != len(raw) - _OUTER.size:
        raise HlogFormatError(
            f"compressed length field says {length} bytes, {len(raw) - _OUTER.size} follow"
        )
    try:
        data = zlib.decompress(raw[_OUTER.size :])
    except zlib.error as exc:
        raise HlogFormatError(f"histogram does not inflate: {exc}") from None
    if len(data) < _HEADER.size:
        raise HlogFormatError("inflated histogram shorter than the 40-byte V2 header")
    cookie, plen, norm, digits, lowest, highest, ratio = _HEADER.unpack_from(data)
    if cookie & _COOKIE_BASE_MASK != V2_ENCODING_COOKIE & _COOKIE_BASE_MASK:
        raise HlogFormatError(f"inner cookie {cookie & 0xFFFFFFFF:#010x} is not V2")
    end = _HEADER.size + plen
    if plen < 0 or end > len(data):
        raise HlogFormatError(f"payload length {plen} exceeds the {len(data)} inflated bytes")
    counts: list[int] = []
    pos = _HEADER.size
    while pos < end:
        value, pos = _get_varint(data, pos, end)
        if value < 0:
            counts.extend([0] * -value)
        else:
            counts.append(value)
    return DecodedHistogram(norm, digits, lowest, highest, ratio, counts)


def decode_histogram(
    text: str, *, started_ns: int = 0, taken_ns: int = 0, overflow: int = 0, rejected: int = 0
) -> HistogramSnapshot:
    """Decode an encoded histogram written with our parameters into a snapshot.

    Refuses other parameters or a normalizing offset instead of rebucketing: our files never
    contain them, so meeting one means the file is not ours.
    """
    d = decode_payload(text)
    ours = (SIGNIFICANT_DIGITS, LOWEST, HIGHEST)
    if (d.significant_digits, d.lowest, d.highest) != ours:
        raise HlogFormatError(
            f"histogram has digits/lowest/highest {(d.significant_digits, d.lowest, d.highest)}"
            f", ours are {ours}"
        )
    if d.normalizing_index_offset != 0 or d.int_to_double_ratio != 1.0:
        raise HlogFormatError(
            "shifted or double-valued histograms (normalizing offset "
            f"{d.normalizing_index_offset}, ratio {d.int_to_double_ratio}) are not supported"
        )
    if len(d.counts) > COUNTS_LEN:
        raise HlogFormatError(f"{len(d.counts)} counts, ours hold {COUNTS_LEN}")
    counts = d.counts + [0] * (COUNTS_LEN - len(d.counts))
    return HistogramSnapshot(
        counts, overflow=overflow, rejected=rejected, started_ns=started_ns, taken_ns=taken_ns
    )


# -- interval log writer --------------------------------------------------------------------------


def _java_date(epoch_s: float) -> str:
    # java.util.Date.toString(), which the Java writer puts after the StartTime seconds.
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(epoch_s))


class HlogWriter:
    """Writes an HdrHistogram interval log, one flushed line per interval.

    Header as HdrHistogram's writers emit it (format version, StartTime, BaseTime, legend);
    interval timestamps are seconds relative to BaseTime, which is the log's start. The file is
    created exclusively: an existing log of an earlier run is never overwritten.
    Each line is flushed to the OS when written, so an engine crash loses at most the interval
    being collected (not fsynced: a host crash can lose what the page cache held).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        start_ns: int | None = None,
        max_value_unit_ratio: float = DEFAULT_MAX_VALUE_UNIT_RATIO,
        comment: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.start_ns = time.time_ns() if start_ns is None else start_ns
        self.max_value_unit_ratio = max_value_unit_ratio
        # Kept open for the log's lifetime and closed by close()/__exit__.
        self._f: IO[str] | None = open(  # noqa: SIM115
            self.path, "x", encoding="ascii", newline="\n"
        )
        start_s = self.start_ns / 1e9
        lines = []
        if comment is not None:
            lines.append(f"#[{self._one_line(comment)}]")
        lines += [
            f"#[Histogram log format version {LOG_FORMAT_VERSION}]",
            f"#[StartTime: {start_s:.3f} (seconds since epoch), {_java_date(start_s)}]",
            f"#[BaseTime: {start_s:.3f} (seconds since epoch)]",
            LEGEND,
        ]
        self._emit("\n".join(lines) + "\n")

    @staticmethod
    def _one_line(text: str) -> str:
        if "\n" in text or "\r" in text:
            raise ValueError("log comments must be a single line")
        return text

    def _emit(self, text: str) -> None:
        if self._f is None:
            raise ValueError(f"{self.path}: log is closed")
        self._f.write(text)
        self._f.flush()

    def comment(self, text: str) -> None:
        self._emit(f"#{self._one_line(text)}\n")

    def write(
        self,
        snap: HistogramSnapshot,
        *,
        tag: str | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> None:
        """Append one interval; times default to the snapshot's `started_ns`/`taken_ns`.

        Pass interval histograms (`now.subtract(previous)`), not cumulative snapshots: each line
        of an interval log counts only its own interval, and readers add lines up.
        """
        start = snap.started_ns if start_ns is None else start_ns
        end = snap.taken_ns if end_ns is None else end_ns
        if start < self.start_ns:
            raise ValueError(
                f"interval starts {(self.start_ns - start) / 1e9:.3f} s before the log's "
                "BaseTime; open the log with an earlier start_ns"
            )
        if end < start:
            raise ValueError("interval ends before it starts")
        if tag is not None and not _TAG_RE.match(tag):
            raise ValueError(f"tag {tag!r} contains a comma, a space or a line break")
        rel_start = (start - self.start_ns) / 1e9
        length = (end - start) / 1e9
        max_scaled = snap.max / self.max_value_unit_ratio
        prefix = f"Tag={tag}," if tag is not None else ""
        line = f"{prefix}{rel_start:.3f},{length:.3f},{max_scaled:.3f},{encode_histogram(snap)}\n"
        if snap.overflow or snap.rejected:
            # Clamped or refused values are invisible in the standard format: say so.
            note = f"#[Vajra interval: overflow={snap.overflow} rejected={snap.rejected}"
            note += f" tag={tag}]\n" if tag is not None else "]\n"
            line = note + line
        self._emit(line)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- interval log reader --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HlogInterval:
    """One interval line: timestamps in seconds relative to the log's BaseTime, as logged."""

    tag: str | None
    start_s: float
    length_s: float
    max_scaled: float
    snapshot: HistogramSnapshot = field(repr=False)

    @property
    def end_s(self) -> float:
        return self.start_s + self.length_s


@dataclass(frozen=True, slots=True)
class Hlog:
    version: str | None
    start_time_s: float | None
    base_time_s: float
    intervals: list[HlogInterval]

    def tags(self) -> list[str | None]:
        """Tags in order of first appearance (None for untagged lines)."""
        return list(dict.fromkeys(i.tag for i in self.intervals))

    def by_tag(self, tag: str | None) -> list[HlogInterval]:
        return [i for i in self.intervals if i.tag == tag]

    def total(self, tag: str | None) -> HistogramSnapshot:
        """All intervals of one tag merged: the run's histogram for that metric."""
        return HistogramSnapshot.merged(*(i.snapshot for i in self.by_tag(tag)))


_VERSION_RE = re.compile(r"^#\[Histogram log format version ([^\]]+)\]")
_START_RE = re.compile(r"^#\[StartTime: *([\d.]+)")
_BASE_RE = re.compile(r"^#\[BaseTime: *([\d.]+)")


def _ns(seconds: str) -> int:
    """Exact nanoseconds of a logged decimal seconds field (a float would lose ~100 ns)."""
    try:
        return int(Decimal(seconds) * 1_000_000_000)
    except InvalidOperation:
        raise HlogFormatError(f"{seconds!r} is not a number of seconds") from None


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    with open(path, encoding="ascii", newline="\n") as f:
        for n, line in enumerate(f, 1):
            yield n, line.rstrip("\n"), line.endswith("\n")


def read_hlog(path: str | os.PathLike[str]) -> Hlog:
    """Parse an interval log written by `HlogWriter` (or any V2 log with our parameters).

    A last line without its newline is the interval an engine was writing when it died: it is
    ignored if it does not parse. Any other malformed line raises HlogFormatError.
    """
    p = Path(path)
    version: str | None = None
    start: float | None = None
    base: str | None = None
    pending: tuple[int, int, str | None] | None = None
    intervals: list[HlogInterval] = []
    for n, line, complete in _lines(p):
        try:
            if not line:
                continue
            if line.startswith("#"):
                if m := _VERSION_RE.match(line):
                    version = m.group(1)
                elif m := _START_RE.match(line):
                    start = float(m.group(1))
                elif m := _BASE_RE.match(line):
                    base = m.group(1)
                elif m := _VAJRA_NOTE_RE.match(line):
                    pending = (int(m.group(1)), int(m.group(2)), m.group(3))
                continue
            if line.startswith('"StartTimestamp"'):
                continue
            tag: str | None = None
            body = line
            if body.startswith("Tag="):
                tag, _, body = body[4:].partition(",")
            parts = body.split(",", 3)
            if len(parts) != 4:
                raise HlogFormatError("expected start,length,max,histogram")
            start_s, length_s, max_scaled = (float(x) for x in parts[:3])
            if not all(map(math.isfinite, (start_s, length_s, max_scaled))):
                raise HlogFormatError("non-finite timestamp or max")
            overflow = rejected = 0
            if pending is not None and pending[2] == tag:
                overflow, rejected = pending[0], pending[1]
            pending = None
            started = (_ns(base) if base is not None else 0) + _ns(parts[0])
            snap = decode_histogram(
                parts[3],
                started_ns=started,
                taken_ns=started + _ns(parts[1]),
                overflow=overflow,
                rejected=rejected,
            )
            intervals.append(HlogInterval(tag, start_s, length_s, max_scaled, snap))
        except (HlogFormatError, ValueError) as exc:
            if not complete:
                break  # the torn last line of a crashed writer
            raise HlogFormatError(f"{p}:{n}: {exc}") from None
    return Hlog(version, start, float(base) if base is not None else 0.0, intervals)
