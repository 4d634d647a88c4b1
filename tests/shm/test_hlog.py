"""HdrHistogram V2 encoding and interval logs: byte-level format, round trips, our reader, and an
independent decoder (the `hdrhistogram` package, in a subprocess: its C extension turns the GIL
back on, so it is never imported into the test process)."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.shm.histogram import HIGHEST, HistogramSnapshot, highest_equivalent
from vajra.shm.hlog import (
    LEGEND,
    V2_COMPRESSED_COOKIE,
    V2_ENCODING_COOKIE,
    HlogFormatError,
    HlogWriter,
    _get_varint,
    _put_varint,
    decode_histogram,
    decode_payload,
    encode_histogram,
    read_hlog,
)

SECOND = 1_000_000_000
PERCENTILES = [0.0, 1.0, 10.0, 25.0, 33.3, 40.0, 50.0, 66.7, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0]


def _inflate(encoded: str) -> bytes:
    raw = base64.b64decode(encoded)
    cookie, length = struct.unpack(">iI", raw[:8])
    assert cookie == V2_COMPRESSED_COOKIE == 0x1C849314
    assert length == len(raw) - 8
    return zlib.decompress(raw[8:])


def _varints(data: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(data):
        v, pos = _get_varint(data, pos, len(data))
        out.append(v)
    return out


# -- ZigZag LEB128-64b9B -------------------------------------------------------------------------


def test_varint_known_bytes() -> None:
    cases = {
        0: b"\x00",
        -1: b"\x01",
        1: b"\x02",
        63: b"\x7e",
        -64: b"\x7f",
        64: b"\x80\x01",
        -65: b"\x81\x01",
        8191: b"\xfe\x7f",
    }
    for value, encoded in cases.items():
        buf = bytearray()
        _put_varint(buf, value)
        assert bytes(buf) == encoded, value
    # ZigZag values of 2**56 and up take the 9-byte form whose last byte carries 8 bits.
    buf = bytearray()
    _put_varint(buf, 2**63 - 1)
    assert bytes(buf) == b"\xfe" + b"\xff" * 7 + b"\xff"
    with pytest.raises(OverflowError):
        _put_varint(bytearray(), 2**63)


@given(st.integers(-(2**63), 2**63 - 1))
def test_varint_round_trip(value: int) -> None:
    buf = bytearray()
    _put_varint(buf, value)
    assert len(buf) <= 9
    assert _get_varint(bytes(buf), 0, len(buf)) == (value, len(buf))


# -- V2 encoding ---------------------------------------------------------------------------------


def test_v2_header_and_payload_bytes() -> None:
    # Counts at slots 0, 2 and 10: a single zero is written as 0, a run of 7 zeros as -7,
    # and nothing after the highest non-empty slot.
    snap = HistogramSnapshot.of([0, 0, 0, 2, 10, 10])
    data = _inflate(encode_histogram(snap))
    cookie, plen, norm, digits, lowest, highest, ratio = struct.unpack(">iiiiqqd", data[:40])
    assert cookie == V2_ENCODING_COOKIE == 0x1C849313
    assert (norm, digits, lowest, highest, ratio) == (0, 3, 1, 60_000_000_000, 1.0)
    assert plen == len(data) - 40
    assert _varints(data[40:]) == [3, 0, 1, -7, 2]
    assert data[40:] == bytes([6, 0, 2, 13, 4])


def test_empty_histogram_encodes_one_zero_count_like_java() -> None:
    data = _inflate(encode_histogram(HistogramSnapshot.empty()))
    assert _varints(data[40:]) == [0]
    assert decode_histogram(encode_histogram(HistogramSnapshot.empty())).total == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 5000), st.integers(0, HIGHEST * 2)), max_size=300))
def test_encode_decode_round_trip(values: list[int]) -> None:
    snap = HistogramSnapshot.of(values)
    back = decode_histogram(encode_histogram(snap))
    assert back.counts == snap.counts
    assert back.percentiles(PERCENTILES) == snap.percentiles(PERCENTILES)


def test_decoder_rejects_what_is_not_ours() -> None:
    good = encode_histogram(HistogramSnapshot.of([5]))
    with pytest.raises(HlogFormatError, match="base64"):
        decode_payload("not base64!")
    raw = bytearray(base64.b64decode(good))
    raw[3] ^= 0x01
    with pytest.raises(HlogFormatError, match="V2 compressed"):
        decode_payload(base64.b64encode(raw).decode())
    with pytest.raises(HlogFormatError, match="length"):
        decode_payload(base64.b64encode(base64.b64decode(good) + b"x").decode())
    # A well-formed histogram with other parameters (1 us .. 1 h, 2 digits).
    header = struct.pack(">iiiiqqd", V2_ENCODING_COOKIE, 1, 0, 2, 1000, 3_600_000_000, 1.0)
    body = zlib.compress(header + b"\x02")
    foreign = base64.b64encode(struct.pack(">iI", V2_COMPRESSED_COOKIE, len(body)) + body)
    decoded = decode_payload(foreign.decode())
    assert (decoded.significant_digits, decoded.lowest, decoded.counts) == (2, 1000, [1])
    with pytest.raises(HlogFormatError, match="ours are"):
        decode_histogram(foreign.decode())


# -- the log file --------------------------------------------------------------------------------

T0 = 1_764_115_200 * SECOND  # a fixed epoch time, so the file contents are deterministic


def _intervals() -> list[tuple[str | None, int, list[int]]]:
    """(tag, interval index, values): two tagged metrics and one untagged line."""
    out: list[tuple[str | None, int, list[int]]] = []
    for k in range(3):
        out.append(("oracle.tick_to_signal", k, [900 + 37 * i + k for i in range(400)]))
        out.append(("ring.hop", k, [int(150 * 1.05**i) for i in range(60 + 20 * k)]))
    out.append((None, 3, [5, 6, 7, HIGHEST + 1, -4]))
    return out


def _write_log(path: Path) -> list[tuple[str | None, HistogramSnapshot]]:
    written = []
    with HlogWriter(path, start_ns=T0, comment="vajra test log") as log:
        for tag, k, values in _intervals():
            snap = HistogramSnapshot.of(values)
            log.write(snap, tag=tag, start_ns=T0 + k * SECOND, end_ns=T0 + (k + 1) * SECOND)
            written.append((tag, snap))
    return written


def test_log_layout_matches_hdrhistogram_writers(tmp_path: Path) -> None:
    path = tmp_path / "run.hlog"
    _write_log(path)
    lines = path.read_text().splitlines()
    assert lines[0] == "#[vajra test log]"
    assert lines[1] == "#[Histogram log format version 1.3]"
    assert lines[2].startswith("#[StartTime: 1764115200.000 (seconds since epoch), ")
    assert lines[3] == "#[BaseTime: 1764115200.000 (seconds since epoch)]"
    assert lines[4] == LEGEND
    first = lines[5].split(",")
    assert first[:3] == ["Tag=oracle.tick_to_signal", "0.000", "1.000"]
    assert first[3] == f"{highest_equivalent(900 + 37 * 399) / 1e6:.3f}"
    assert lines[-2] == "#[Vajra interval: overflow=1 rejected=1]"
    assert lines[-1].startswith("3.000,1.000,60028.879,HISTFAAA")


def test_read_hlog_round_trips_our_files(tmp_path: Path) -> None:
    path = tmp_path / "run.hlog"
    written = _write_log(path)
    log = read_hlog(path)
    assert log.version == "1.3"
    assert log.start_time_s == log.base_time_s == T0 / SECOND
    assert log.tags() == ["oracle.tick_to_signal", "ring.hop", None]
    assert len(log.intervals) == len(written)
    for (tag, snap), interval in zip(written, log.intervals, strict=True):
        assert interval.tag == tag
        assert interval.length_s == 1.0
        assert interval.snapshot.same_counts(snap)
        assert interval.snapshot.started_ns == T0 + round(interval.start_s * SECOND)
    total = log.total("ring.hop")
    expected = HistogramSnapshot.merged(*(s for t, s in written if t == "ring.hop"))
    assert total.same_counts(expected)


def test_torn_last_line_is_ignored_but_other_damage_is_not(tmp_path: Path) -> None:
    path = tmp_path / "run.hlog"
    _write_log(path)
    text = path.read_text()
    torn = tmp_path / "torn.hlog"
    torn.write_text(text + "Tag=ring.hop,4.000,1.000,0.150,HISTFAAAACh4nJNpmSzMwMDAxAA")
    assert len(read_hlog(torn).intervals) == len(_intervals())
    broken = tmp_path / "broken.hlog"
    lines = text.splitlines(keepends=True)
    lines[6] = "Tag=ring.hop,0.000,1.000,0.150,HISTFAAAAgarbage\n"
    broken.write_text("".join(lines))
    with pytest.raises(HlogFormatError, match=r"broken\.hlog:7"):
        read_hlog(broken)


def test_writer_refuses_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "run.hlog"
    with HlogWriter(path, start_ns=T0) as log:
        snap = HistogramSnapshot.of([1])
        with pytest.raises(ValueError, match="before the log's BaseTime"):
            log.write(snap, start_ns=T0 - SECOND, end_ns=T0)
        with pytest.raises(ValueError, match="comma"):
            log.write(snap, tag="a,b", start_ns=T0, end_ns=T0)
        with pytest.raises(ValueError, match="ends before"):
            log.write(snap, start_ns=T0 + 2, end_ns=T0 + 1)
    with pytest.raises(FileExistsError):
        HlogWriter(path)  # never overwrite an earlier run's log


def test_interval_lines_from_snapshot_subtraction(tmp_path: Path) -> None:
    # The monitor's way of logging: cumulative snapshots, one subtraction per interval.
    a = HistogramSnapshot.of([10, 20])
    b = HistogramSnapshot.of([10, 20, 30, 40])
    interval = b.subtract(a)
    path = tmp_path / "run.hlog"
    with HlogWriter(path, start_ns=a.taken_ns) as log:
        log.write(interval, tag="x")
    (only,) = read_hlog(path).intervals
    assert only.snapshot.same_counts(HistogramSnapshot.of([30, 40]))


# -- independent decoding with the hdrhistogram package --------------------------------------------

HDRH_PROBE = "import hdrh.histogram, hdrh.log"

HDRH_SCRIPT = """
import json, sys
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

path, ps = sys.argv[1], json.loads(sys.argv[2])
raw_values = json.loads(sys.stdin.read())
reader = HistogramLogReader(path, HdrHistogram(1, 60_000_000_000, 3))
out = {"intervals": [], "raw": []}
while True:
    h = reader.get_next_interval_histogram()
    if h is None:
        break
    out["intervals"].append({
        "tag": h.get_tag(),
        "total": h.get_total_count(),
        "min": h.get_min_value(),
        "max": h.get_max_value(),
        "mean": h.get_mean_value(),
        "start_ms": h.get_start_time_stamp(),
        "end_ms": h.get_end_time_stamp(),
        "p": [h.get_value_at_percentile(p) for p in ps],
    })
reader.close()
# The same raw values recorded by hdrh itself, encoded by its own encoder.
for values in raw_values:
    h = HdrHistogram(1, 60_000_000_000, 3)
    for v in values:
        if v >= 0:
            h.record_value(min(v, 60_000_000_000))
    out["raw"].append(h.encode().decode("ascii"))
print(json.dumps(out))
"""


def _hdrh_env() -> dict[str, str]:
    # pyhdrh does not declare free-threading support; say so explicitly so the child does not
    # print a RuntimeWarning (and never import it in this process: it would enable the GIL here).
    return {**os.environ, "PYTHON_GIL": "1"}


def test_hdrhistogram_package_decodes_our_log_identically(tmp_path: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", HDRH_PROBE],
        env=_hdrh_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(
            f"the `hdrhistogram` package is not importable by {sys.executable} "
            f"(pip install '.[hdr]'): {why}"
        )
    path = tmp_path / "run.hlog"
    written = _write_log(path)
    raw_values = [values for _, _, values in _intervals()]
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(HDRH_SCRIPT), str(path), json.dumps(PERCENTILES)],
        input=json.dumps(raw_values),
        env=_hdrh_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)
    assert "hdrh" not in sys.modules

    assert len(theirs["intervals"]) == len(written) == 7
    for (tag, snap), (_, k, _), got in zip(written, _intervals(), theirs["intervals"], strict=True):
        assert got["tag"] == tag
        assert got["total"] == snap.total > 0
        assert got["min"] == snap.min
        assert got["max"] == snap.max
        assert got["mean"] == pytest.approx(snap.mean, rel=1e-12)
        # The PyPI package ranks percentiles by rounding (like HdrHistogram_c).
        assert got["p"] == [snap.percentile(p, rank="round") for p in PERCENTILES]
        assert got["start_ms"] == pytest.approx((T0 + k * SECOND) / 1e6, abs=1e-3)
        assert got["end_ms"] == pytest.approx((T0 + (k + 1) * SECOND) / 1e6, abs=1e-3)
    # Their encoder's output decodes with ours to the same counts: same buckets, 1:1.
    for (_, snap), encoded in zip(written, theirs["raw"], strict=True):
        assert decode_histogram(encoded).counts == snap.counts
