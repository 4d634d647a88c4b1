"""Matrix ring (the heatmap's storage): readers get the latest complete rows, never a torn one,
while the writer overwrites the oldest without waiting."""

from __future__ import annotations

import threading

import pytest

from vajra.shm.matrix import MatrixRing
from vajra.shm.segment import new_run_id


def test_rows_in_order_and_wrapping() -> None:
    run = new_run_id()
    m = MatrixRing.create(run, "heat", 8, 3)
    w = m.writer()
    for i in range(20):
        w.append(1000 + i, [float(i), -float(i)])  # shorter than cols: the rest is 0.0
    ro = MatrixRing.attach(run, "heat")
    r = ro.reader()
    rows = r.rows()
    assert [n for n, _, _ in rows] == list(range(12, 20))
    assert rows[-1] == (19, 1019, (19.0, -19.0, 0.0))
    assert [n for n, _, _ in r.rows(last=3)] == [17, 18, 19]
    assert r.written() == 20
    r.close()
    ro.close()
    w.close()
    m.close()
    m.unlink()
    with pytest.raises(ValueError):
        MatrixRing.create(run, "bad", 6, 3)


def test_concurrent_reader_never_sees_a_torn_row() -> None:
    run = new_run_id()
    m = MatrixRing.create(run, "heat", 16, 10)
    stop = threading.Event()
    bad: list[object] = []
    seen = [0]

    def read() -> None:
        r = m.reader()
        while not stop.is_set():
            for n, t, vals in r.rows():
                # the writer puts the row number in t and every value
                if t != n or any(v != float(n) for v in vals):
                    bad.append((n, t, vals))
                seen[0] += 1
        r.close()

    t = threading.Thread(target=read)
    t.start()
    w = m.writer()
    for i in range(100_000):
        w.append(i, [float(i)] * 10)
    stop.set()
    t.join()
    w.close()
    m.close()
    m.unlink()
    assert not bad
    assert seen[0] > 0
