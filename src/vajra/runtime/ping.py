"""`vajra ping`: a live ring ping-pong between two pinned threads, measured the engine's way.

Until the engine exists this is what `make run` shows, and it exercises the real machinery: a
startup sweep of stale segments, two SPSC rings in shared memory, threads pinned with
`sched_setaffinity` and verified through /proc, one-way latency and round trips recorded into
shared-memory histograms by their single writers, read once a second by the main thread (as the
monitor will) and written as an HdrHistogram interval log.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
import time
from pathlib import Path

from vajra.runtime.pinning import pin_current_thread, read_thread_stats, set_current_thread_name
from vajra.shm.histogram import HistogramSet, HistogramSnapshot
from vajra.shm.hlog import HlogWriter
from vajra.shm.ring import Ring
from vajra.shm.segment import new_run_id, remove_stale

MSG = struct.Struct("<qq")  # seq, sender's perf_counter_ns
NAMES = ("ping.one_way", "ping.rtt")


def _pinger(run: str, cpu: int, stop: threading.Event, tids: list[int]) -> None:
    set_current_thread_name("vajra-pinger")
    tids.append(pin_current_thread(cpu))
    ping, pong = Ring.attach(run, "ping"), Ring.attach(run, "pong")
    hs = HistogramSet.attach(run)
    rtt = hs.writer("ping.rtt")
    w, r = ping.writer(), pong.reader()
    pack, perf, buf = MSG.pack_into, time.perf_counter_ns, w.buf
    seq = 0
    while not stop.is_set():
        for _ in range(256):  # check the stop flag every 256 round trips
            off = w.claim_wait()
            t = perf()
            pack(buf, off, seq, t)
            w.publish()
            while r.poll() < 0:  # busy-spin: the pong comes back in ~2 µs
                pass
            r.commit()
            rtt.record(perf() - t)
            seq += 1
    pack(buf, w.claim_wait(), -1, 0)
    w.publish()
    rtt.release()
    w.close()
    r.close()
    hs.close()
    ping.close()
    pong.close()


def _ponger(run: str, cpu: int, tids: list[int]) -> None:
    set_current_thread_name("vajra-ponger")
    tids.append(pin_current_thread(cpu))
    ping, pong = Ring.attach(run, "ping"), Ring.attach(run, "pong")
    hs = HistogramSet.attach(run)
    one_way = hs.writer("ping.one_way")
    r, w = ping.reader(), pong.writer()
    unpack, pack, perf, rbuf, wbuf = (
        MSG.unpack_from,
        MSG.pack_into,
        time.perf_counter_ns,
        r.buf,
        w.buf,
    )
    while True:
        off = r.poll()
        if off < 0:
            continue
        now = perf()
        seq, t = unpack(rbuf, off)
        r.commit()
        if seq < 0:
            break
        one_way.record(now - t)
        pack(wbuf, w.claim_wait(), seq, now)
        w.publish()
    one_way.release()
    r.close()
    w.close()
    hs.close()
    ping.close()
    pong.close()


def _us(ns: float) -> str:
    return f"{ns / 1000:7.2f}"


def _line(label: str, ow: HistogramSnapshot, rt: HistogramSnapshot) -> str:
    if ow.total == 0:
        return f"{label}  no messages"
    p = ow.percentiles([50, 99, 99.9])
    return (
        f"{label} {ow.total:>9,} msgs  one-way µs p50 {_us(p[50])} p99 {_us(p[99])} "
        f"p99.9 {_us(p[99.9])} max {_us(ow.max)}  |  rtt p50 {_us(rt.percentile(50))}"
    )


def run_ping(seconds: float = 5.0, cpus: str | None = None, hlog_dir: str = "runs") -> int:
    avail = sorted(os.sched_getaffinity(0))
    pair = (
        [int(c) for c in cpus.split(",")]
        if cpus
        else (avail[:2] if len(avail) > 1 else [avail[0], avail[0]])
    )
    if len(pair) != 2 or any(c not in avail for c in pair):
        print(f"vajra ping: --cpus needs two of the allowed CPUs {avail}", file=sys.stderr)
        return 2
    for name in remove_stale():
        print(f"removed stale segment /dev/shm/{name} (a run that died)")
    run = new_run_id()
    rings = [Ring.create(run, "ping", 1024, 16), Ring.create(run, "pong", 1024, 16)]
    hs = HistogramSet.create(run, NAMES)
    out_dir = Path(hlog_dir) / run
    out_dir.mkdir(parents=True, exist_ok=True)
    log = HlogWriter(out_dir / "ping.hlog", comment=f"vajra ping run {run}")
    shared = " (same CPU: expect scheduler-bound latency)" if pair[0] == pair[1] else ""
    print(
        f"run {run}: ping-pong over shared-memory rings, pinger on cpu {pair[0]}, "
        f"ponger on cpu {pair[1]}{shared}, {seconds:g} s"
    )
    stop = threading.Event()
    tids: list[int] = []
    threads = [
        threading.Thread(target=_ponger, args=(run, pair[1], tids), name="ponger"),
        threading.Thread(target=_pinger, args=(run, pair[0], stop, tids), name="pinger"),
    ]
    for t in threads:
        t.start()
    prev = {n: hs.snapshot(n) for n in NAMES}
    t_end = time.monotonic() + seconds
    try:
        while time.monotonic() < t_end:
            time.sleep(min(1.0, max(0.0, t_end - time.monotonic())))
            now = {n: hs.snapshot(n) for n in NAMES}
            iv = {n: now[n].subtract(prev[n]) for n in NAMES}
            for n in NAMES:
                log.write(iv[n], tag=n)
            prev = now
            print(_line(time.strftime("%H:%M:%S"), iv["ping.one_way"], iv["ping.rtt"]), flush=True)
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        stats = []
        for tid in tids:  # sampled while the threads still exist
            try:
                stats.append(read_thread_stats(tid))
            except OSError:
                pass
        stop.set()
        for t in threads:
            t.join()
        try:
            final = {n: hs.snapshot(n) for n in NAMES}
            for n in NAMES:  # the log covers the whole run, up to the threads' last message
                tail_iv = final[n].subtract(prev[n])
                if tail_iv.total:
                    log.write(tail_iv, tag=n)
            print(_line("total   ", final["ping.one_way"], final["ping.rtt"]))
            for st in stats:
                print(
                    f"  thread {st.name:<12} tid {st.tid}: allowed cpus {list(st.cpus_allowed)}, "
                    f"last ran on cpu {st.last_cpu}, {st.cpu_ns / 1e9:.2f} s CPU, "
                    f"{st.nonvoluntary_ctxt_switches} involuntary switches"
                )
            print(
                f"interval log: {out_dir / 'ping.hlog'} (HdrHistogram format, "
                f"tags {', '.join(NAMES)})"
            )
        finally:
            log.close()
            hs.close()
            hs.unlink()
            for r in rings:
                r.close()
                r.unlink()
    return 0
