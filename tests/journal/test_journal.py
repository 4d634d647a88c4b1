"""The journal: every record kind round-trips, seqs are continuous across writers and reopens,
`durable_seq` moves only after a commit, a full ring spills without losing or reordering, kill -9
at random points loses nothing acknowledged, recovery finds open orders and orphans, and export
writes one CSV row per event."""

from __future__ import annotations

import csv
import inspect
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.journal import export
from vajra.journal.journal import (
    COLUMNS,
    KIND_OF,
    Entry,
    Journal,
    JournalError,
    JournalLocked,
    KillAction,
    KillCommand,
    Kind,
    Record,
    Refused,
    RiskChange,
    Sent,
    _to_row,
    decode_row,
    encode,
    last_seq,
    read_entries,
)
from vajra.journal.recover import Replay, Status, reconcile, replay
from vajra.market.events import Side
from vajra.shm.segment import SHM_DIR, list_segments
from vajra.venues.base import (
    Ack,
    CancelAck,
    CancelReject,
    CancelRequest,
    Expired,
    Fill,
    ModifyAck,
    ModifyRequest,
    PlaceRequest,
    Reject,
    RejectReason,
    TimeInForce,
)

LONG = "Order price is outside the LPP range; " * 12 + "ünïcødé ₹ ✓"  # spans several slots

ONE_OF_EACH: list[Record] = [
    PlaceRequest(7, 256265, Side.BID, 2_450_05, 75, TimeInForce.DAY, "strat-1"),
    PlaceRequest(8, 738561, Side.ASK, 1_000_00, 1, TimeInForce.IOC, ""),
    Sent(7, Kind.PLACE),
    Ack(7, "241126000012345", 1_000_001),
    Reject(8, RejectReason.PRICE_BAND, LONG, 1_000_002, retry_after_ns=0),
    Reject(9, RejectReason.RATE_LIMITED, "Too many requests", 1_000_003, 1_000_000_000),
    ModifyRequest(7, 2_450_10, 50),
    Sent(7, Kind.MODIFY),
    ModifyAck(7, 2_450_10, 50, 1_000_004),
    Fill(7, "T000000123456", 2_450_10, 25, 1_000_005),
    CancelRequest(7),
    Sent(7, Kind.CANCEL),
    CancelReject(7, RejectReason.ALREADY_DONE, "order already filled", 1_000_006),
    CancelAck(7, 1_000_007),
    Expired(8, 1_000_008),
    Refused(10, 2, 6),  # a place the gateway refused (RISK: the position limit)
    RiskChange(2, 0, "drawdown 1.2% > 1%"),
    KillCommand(KillAction.KILL, 3, "sentinel@host", "operator pressed kill"),
    KillCommand(KillAction.REARM, 3, "", ""),
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


def _segments(run_id: str) -> list[str]:
    return [h.name for h in list_segments(run_id)]


# -- round trips -------------------------------------------------------------------------------


def test_every_record_kind_round_trips_through_the_database(db: Path) -> None:
    assert {KIND_OF[type(r)] for r in ONE_OF_EACH} == set(Kind), "covers every kind"
    with Journal(db) as j:
        w = j.writer()
        tickets = [w.append(r, 1_000 + i) for i, r in enumerate(ONE_OF_EACH)]
        assert tickets == list(range(1, len(ONE_OF_EACH) + 1))
        assert w.flush()
        assert j.durable_seq == len(ONE_OF_EACH)
        assert w.durable == len(ONE_OF_EACH)
    got = list(read_entries(db))
    assert [e.seq for e in got] == list(range(1, len(ONE_OF_EACH) + 1))
    for i, (e, r) in enumerate(zip(got, ONE_OF_EACH, strict=True)):
        assert e.record == r and type(e.record) is type(r)
        assert e.t_ns == 1_000 + i
        assert e.kind == KIND_OF[type(r)]
        assert e.wall_ns > 0
    # columns a kind does not use are NULL, not 0
    con = sqlite3.connect(db)
    place = con.execute(
        "SELECT ref, ev_ns, detail, side, code FROM events WHERE seq = 1"
    ).fetchone()
    assert place == (None, None, None, 1, 0)
    risk = con.execute("SELECT client_id, code, ref, detail FROM events WHERE kind = 20").fetchone()
    assert risk == (None, 2, 0, "drawdown 1.2% > 1%")
    con.close()


i64 = st.integers(-(2**63), 2**63 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
txt = st.text(max_size=300)
records = st.one_of(
    st.builds(
        PlaceRequest, i64, i64, st.sampled_from(Side), i64, i64, st.sampled_from(TimeInForce), txt
    ),
    st.builds(ModifyRequest, i64, i64, i64),
    st.builds(CancelRequest, i64),
    st.builds(Sent, i64, st.sampled_from([Kind.PLACE, Kind.MODIFY, Kind.CANCEL])),
    st.builds(Ack, i64, txt, i64),
    st.builds(Reject, i64, st.sampled_from(RejectReason), txt, i64, i64),
    st.builds(ModifyAck, i64, i64, i64, i64),
    st.builds(Fill, i64, txt, i64, i64, i64),
    st.builds(CancelAck, i64, i64),
    st.builds(CancelReject, i64, st.sampled_from(RejectReason), txt, i64),
    st.builds(Expired, i64, i64),
    st.builds(RiskChange, i32, i64, txt),
    st.builds(KillCommand, st.sampled_from(KillAction), i64, txt, txt),
)


@settings(max_examples=400, deadline=None)
@given(rec=records, t=i64, seq=st.integers(1, 2**62))
def test_encoding_round_trips_any_record(rec: Record, t: int, seq: int) -> None:
    """Pure: ring bytes -> database row -> record, for any field values the types allow."""
    data = encode(rec, t)
    e = decode_row(_to_row(seq, 5, bytearray(data), 0))
    assert e == Entry(seq, e.kind, t, rec, 5)


def test_append_refuses_what_it_cannot_record(db: Path) -> None:
    with Journal(db) as j:
        w = j.writer()
        with pytest.raises(TypeError):
            w.append("not a record", 0)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            w.append(RiskChange(1, 0, "x" * 70_000), 0)
        assert w.appended == 0


# -- sequence, batching, durability ------------------------------------------------------------


def test_seq_is_continuous_across_writers_threads_and_reopen(db: Path) -> None:
    per = 20_000
    for round_ in range(2):
        with Journal(db) as j:
            ws = [j.writer(f"w{i}") for i in range(2)]

            def produce(i: int, w: Any, round_: int = round_) -> None:
                base = (round_ * 2 + i) * 1_000_000
                for k in range(per):
                    w.append(CancelRequest(base + k), k)
                assert w.flush(30)

            ts = [threading.Thread(target=produce, args=(i, ws[i])) for i in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert j.durable_seq == (round_ + 1) * 2 * per
            st_ = j.stats()
            assert int(st_["commits"]) < int(st_["records"]) == 2 * per  # batched
        assert _segments(j.run_id) == []  # close unlinked the rings
    got = list(read_entries(db))
    assert [e.seq for e in got] == list(range(1, 4 * per + 1))
    # each writer's records appear in its own order, all of them
    for src in range(4):
        ids = [
            e.record.client_id
            for e in got
            if isinstance(e.record, CancelRequest) and e.record.client_id // 1_000_000 == src
        ]
        assert ids == [src * 1_000_000 + k for k in range(per)]


def test_durable_seq_never_runs_ahead_of_the_database(db: Path) -> None:
    """Any time durable_seq reads d, another connection already sees seq d committed."""
    with Journal(db) as j:
        w = j.writer()
        done = threading.Event()
        n = 60_000

        def produce() -> None:
            for k in range(n):
                w.append(Sent(k, Kind.CANCEL), k)
            w.flush(30)
            done.set()

        t = threading.Thread(target=produce)
        t.start()
        con = sqlite3.connect(db)
        checks = 0
        while not done.is_set():
            d = j.durable_seq
            (m,) = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
            assert m >= d
            checks += 1
        t.join()
        con.close()
        assert j.durable_seq == n and checks > 10


def test_a_commit_that_cannot_happen_holds_durable_seq_then_retries_with_the_same_seqs(
    db: Path,
) -> None:
    with Journal(db, busy_timeout_s=0.02) as j:
        w = j.writer()
        for k in range(10):
            w.append(CancelRequest(k), k)
        assert w.flush()
        assert j.durable_seq == 10
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: commits must fail
        for k in range(10, 30):
            w.append(CancelRequest(k), k)
        time.sleep(0.3)
        assert j.durable_seq == 10 and w.durable == 10  # drained, numbered, not committed
        assert int(j.stats()["errors"]) > 0 and "locked" in str(j.stats()["last_error"])
        blocker.execute("ROLLBACK")
        blocker.close()
        assert w.flush()
        assert j.durable_seq == 30
    assert [e.record for e in read_entries(db)] == [CancelRequest(k) for k in range(30)]


def test_a_full_ring_spills_and_loses_or_reorders_nothing(db: Path) -> None:
    recs: list[Record] = []
    for k in range(5000):
        recs.append(Reject(k, RejectReason.INPUT, LONG[: k % 400], k) if k % 3 else Ack(k, "v", k))
    with Journal(db, capacity=16) as j:
        w = j.writer()
        for i, r in enumerate(recs):
            w.append(r, i)
        assert w.spilled > 0  # the 16-slot ring was full: records waited in memory
        assert w.flush(30)
        assert w.backlog == 0
        st_ = j.stats()
        assert st_["spilled"] == w.spilled and st_["backlog"] == 0
    got = list(read_entries(db))
    assert [e.record for e in got] == recs
    assert [e.t_ns for e in got] == list(range(len(recs)))


def test_one_process_per_journal_file(db: Path, tmp_path: Path) -> None:
    with Journal(db), pytest.raises(JournalLocked):
        Journal(db)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.close()
    with pytest.raises(JournalError, match="not a Vajra journal"):
        Journal(other)


# -- kill -9 -------------------------------------------------------------------------------------


def make_record(seq: int) -> tuple[Record, int]:
    """The deterministic record at `seq` (also run inside the child process): order c's place,
    write and ack (or reject) in block c, a fill and a modify in block c + 1, its end in block
    c + 2, with risk and kill records where no order fits. Content depends on seq only."""
    b, pos = divmod(seq - 1, 8)
    c = b + 1
    t = 1_700_000_000_000_000_000 + seq * 1_000

    def price(o: int) -> int:
        return 100_000 + 5 * (o % 97)

    def valid(o: int) -> bool:
        return o >= 1 and o % 7 != 0

    d, e = c - 1, c - 2
    if pos == 0:
        side = Side.BID if c % 2 else Side.ASK
        tif = TimeInForce.IOC if c % 11 == 0 else TimeInForce.DAY
        return PlaceRequest(c, 256265 + c % 3, side, price(c), 10, tif, f"s{c % 5}"), t
    if pos == 1:
        return Sent(c, Kind.PLACE), t
    if pos == 2:
        if c % 7 == 0:
            msg = "price outside the band " + "x" * (c % 200) + " ₹"
            return Reject(c, RejectReason.PRICE_BAND, msg, t + 1), t
        return Ack(c, f"2411{c:012d}", t + 1), t
    if pos == 3:
        if valid(d):
            return Fill(d, f"F{d}a", price(d), 4, t + 1), t
        return RiskChange(c % 3, (c + 1) % 3, f"r{c}"), t
    if pos == 4:
        if valid(d):
            return ModifyRequest(d, price(d) + 5, 10), t
        return KillCommand(KillAction.KILL, c, "sentinel", "test"), t
    if pos == 5:
        if valid(d):
            return ModifyAck(d, price(d) + 5, 10, t + 1), t
        return RiskChange(0, 2, "calm"), t
    if not valid(e):
        if pos == 6:
            return KillCommand(KillAction.REARM, c, "operator", ""), t
        return RiskChange(0, 1, "rearmed"), t
    how = e % 3
    if pos == 6:
        if how == 0:
            return Fill(e, f"F{e}b", price(e) + 5, 6, t + 1), t
        if how == 1:
            return CancelRequest(e), t
        return Fill(e, f"F{e}b", price(e) + 5, 2, t + 1), t
    if how == 0:
        return CancelReject(e, RejectReason.ALREADY_DONE, "already filled", t + 1), t
    if how == 1:
        return CancelAck(e, t + 1), t
    return Expired(e, t + 1), t


def expected_open(n: int) -> list[int]:
    """Orders open after seqs 1..n of `make_record`, by the generator's own rules."""
    out = []
    for c in range(1, (n - 1) // 8 + 2 if n else 1):
        if 8 * (c - 1) + 1 > n:
            continue
        if c % 7 == 0:
            ended = 8 * (c - 1) + 3 <= n
        elif c % 3 == 0:
            ended = 8 * (c + 1) + 7 <= n
        else:
            ended = 8 * (c + 1) + 8 <= n
        if not ended:
            out.append(c)
    return out


CHILD = (
    """
from __future__ import annotations
import sys
from vajra.journal.journal import Journal, KillAction, KillCommand, Kind, RiskChange, Sent
from vajra.market.events import Side
from vajra.venues.base import (Ack, CancelAck, CancelReject, CancelRequest, Expired, Fill,
    ModifyAck, ModifyRequest, PlaceRequest, Reject, RejectReason, TimeInForce)
"""
    + inspect.getsource(make_record)
    + """
j = Journal(sys.argv[1], run_id=sys.argv[2])
seq = last = j.last_seq_at_open
w = j.writer("kill")
j.start()
out = sys.stdout
out.write(f"ready {seq}\\n")
out.flush()
append = w.append
while True:
    seq += 1
    rec, t = make_record(seq)
    append(rec, t)
    d = j.durable_seq
    if d != last:
        out.write(f"{d}\\n")
        out.flush()
        last = d
"""
)


@pytest.mark.slow
def test_kill_9_at_random_points_loses_nothing_acknowledged(db: Path) -> None:
    rng = random.Random(20241126)
    runs = 24
    prev = 0
    rep = Replay()
    ids: list[str] = []
    for run in range(runs):
        run_id = f"jk{os.getpid()}-{run}"
        ids.append(run_id)
        p = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), run_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert p.stdout is not None
        ready = p.stdout.readline()
        assert ready.startswith("ready"), (ready, p.stderr.read() if p.stderr else "")
        assert int(ready.split()[1]) == prev, "the child continues after the last seq"
        time.sleep(rng.uniform(0.05, 0.3))
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=10)
        assert p.returncode == -signal.SIGKILL, err
        for name in _segments(run_id):  # what a dead engine leaves: startup's remove_stale
            (SHM_DIR / name).unlink()
        printed = [int(x) for x in out.splitlines() if x.strip().isdigit()]
        acked = max(printed, default=prev)

        con = sqlite3.connect(db)
        n, lo, hi = con.execute("SELECT count(*), min(seq), max(seq) FROM events").fetchone()
        con.close()
        assert (lo, hi) == (1, n), f"run {run}: seqs not continuous 1..{n}: {lo}..{hi}"
        assert n >= acked, f"run {run}: acknowledged seq {acked} lost (journal ends at {n})"
        assert printed == sorted(printed)
        new = list(read_entries(db, after_seq=prev))
        assert [e.seq for e in new] == list(range(prev + 1, n + 1))
        for e in new:  # every row, acknowledged or not, has exactly what was appended
            rec, t = make_record(e.seq)
            assert (e.record, e.t_ns) == (rec, t), f"run {run}: seq {e.seq} differs"
            rep.apply(e)
        if os.environ.get("JOURNAL_KILL_DEBUG"):
            print(f"run {run}: {n - prev} rows, acked {acked}, journal ends at {n}")
        prev = n

        state = rep.state()
        assert state.last_seq == n and not state.gaps and not state.anomalies
        want_open = expected_open(n)
        assert list(state.open) == want_open, f"run {run} at seq {n}"
        assert state.client_id_hwm == (n - 1) // 8 + 1
        # the venue: one expected order ended while we were down, one the journal saw end is
        # still listed, and one we never placed
        done = [c for c, o in state.orders.items() if o.status is Status.DONE]
        venue = set(want_open[1:]) | set(done[:1]) | {10**9}
        rec_ = reconcile(state, venue)
        assert set(rec_.cancel) == venue  # every order resting at the venue is cancelled
        assert rec_.expected == tuple(want_open[1:])
        assert rec_.lost == tuple(want_open[:1])
        assert rec_.stale == tuple(done[:1])
        assert rec_.unknown == (10**9,)
        assert rec_.next_client_id == 10**9 + 1
    assert prev > 10_000, "the children got some work done"
    assert last_seq(db) == prev
    for run_id in ids:
        assert _segments(run_id) == []


# -- recovery (pure) -------------------------------------------------------------------------------


def _entries(recs: list[Record]) -> Iterator[Entry]:
    for i, r in enumerate(recs, 1):
        yield decode_row(_to_row(i, 0, encode(r, i), 0))


def test_recovery_finds_open_orders_and_what_to_do_about_the_venue() -> None:
    recs: list[Record] = [
        # 1: placed, acked, partly filled (a duplicate fill counts once): open
        PlaceRequest(1, 10, Side.BID, 100, 10, TimeInForce.DAY, ""),
        Sent(1, Kind.PLACE),
        Ack(1, "v1", 0),
        Fill(1, "a", 100, 4, 0),
        Fill(1, "a", 100, 4, 0),
        # 2: a modify rejected: still open; 3: rejected at place: done
        PlaceRequest(2, 10, Side.ASK, 101, 5, TimeInForce.DAY, ""),
        Ack(2, "v2", 0),
        ModifyRequest(2, 102, 5),
        Reject(2, RejectReason.PRICE_BAND, "", 0),
        PlaceRequest(3, 10, Side.BID, 99, 5, TimeInForce.DAY, ""),
        Sent(3, Kind.PLACE),
        Reject(3, RejectReason.PRICE_BAND, "", 0),
        # 4: filled before its ack, then the rest: done; 5: modify down to what was filled: done
        PlaceRequest(4, 10, Side.BID, 99, 5, TimeInForce.IOC, ""),
        Fill(4, "b", 99, 2, 0),
        Ack(4, "v4", 0),
        Fill(4, "c", 99, 3, 0),
        PlaceRequest(5, 10, Side.BID, 99, 5, TimeInForce.DAY, ""),
        Ack(5, "v5", 0),
        Fill(5, "d", 99, 3, 0),
        ModifyAck(5, 99, 3, 0),
        # 6: cancel refused (already done): the venue decides; 7: cancelled; 8: expired
        PlaceRequest(6, 10, Side.BID, 99, 5, TimeInForce.DAY, ""),
        Ack(6, "v6", 0),
        CancelRequest(6),
        CancelReject(6, RejectReason.ALREADY_DONE, "", 0),
        PlaceRequest(7, 10, Side.BID, 99, 5, TimeInForce.DAY, ""),
        Ack(7, "v7", 0),
        CancelRequest(7),
        CancelAck(7, 0),
        PlaceRequest(8, 10, Side.BID, 99, 5, TimeInForce.IOC, ""),
        Ack(8, "v8", 0),
        Expired(8, 0),
        # 9: intent journaled, never written (crash between intent and write)
        PlaceRequest(9, 10, Side.BID, 99, 5, TimeInForce.DAY, ""),
        RiskChange(2, 0, "halt"),
        KillCommand(KillAction.KILL, 4, "sentinel", ""),
        # anomalies: an event for an order never placed, a fill after the end
        Ack(42, "v42", 0),
        Fill(7, "late", 99, 1, 0),
    ]
    s = replay(_entries(recs))
    assert s.last_seq == len(recs) and s.gaps == ()
    assert s.open == (1, 2, 6, 9)
    assert s.orders[1].filled == 4 and s.orders[1].venue_id == "v1"
    assert s.orders[2].status is Status.OPEN and s.orders[2].price == 101
    assert [s.orders[c].ended_by for c in (3, 4, 5, 7, 8)] == [
        Kind.REJECT,
        Kind.FILL,
        Kind.FILL,
        Kind.CANCEL_ACK,
        Kind.EXPIRED,
    ]
    assert s.orders[9].status is Status.PENDING and not s.orders[9].sent
    assert s.risk == RiskChange(2, 0, "halt") and s.kill is not None and s.kill.kill_seq == 4
    assert s.client_id_hwm == 42
    assert len(s.anomalies) == 2

    # the venue lists 1 and 2 (expected), 7 (the journal saw it cancelled), 77 (not ours);
    # 6 ended while we were down, 9 never reached it
    r = reconcile(s, [2, 1, 7, 77, 2])
    assert r.cancel == (1, 2, 7, 77)
    assert r.expected == (1, 2) and r.stale == (7,) and r.unknown == (77,)
    assert r.lost == (6, 9) and r.unsent == (9,)
    assert r.next_client_id == 78 and not r.clean
    assert reconcile(s, [1, 2, 6, 9]).clean


def test_a_state_is_a_snapshot_while_replay_goes_on() -> None:
    es = list(
        _entries(
            [
                PlaceRequest(1, 10, Side.BID, 100, 5, TimeInForce.DAY, "t"),
                Ack(1, "v1", 0),
                Fill(1, "a", 100, 5, 0),
            ]
        )
    )
    r = Replay()
    r.apply(es[0])
    r.apply(es[1])
    s = r.state()
    assert s.orders == r.orders  # a full copy: every field
    r.apply(es[2])
    assert s.orders[1].status is Status.OPEN and s.orders[1].filled == 0 and s.open == (1,)
    assert r.state().orders[1].ended_by is Kind.FILL and r.state().open == ()


def test_replay_reports_a_gap() -> None:
    es = list(_entries([CancelRequest(1), CancelRequest(2), CancelRequest(3)]))
    s = replay([es[0], es[2]])
    assert s.gaps == ((2, 3),)


# -- export --------------------------------------------------------------------------------------


def _fill_journal(db: Path) -> int:
    with Journal(db) as j:
        w = j.writer()
        for i, r in enumerate(ONE_OF_EACH):
            w.append(r, i)
        assert w.flush()
    return len(ONE_OF_EACH)


def test_export_writes_a_csv_row_per_event(db: Path, tmp_path: Path) -> None:
    n = _fill_journal(db)
    out = tmp_path / "events.csv"
    assert export.main([str(db), str(out)]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(COLUMNS)
    assert len(rows) == n + 1
    assert [int(r[0]) for r in rows[1:]] == list(range(1, n + 1))
    assert [r[2] for r in rows[1:]] == [KIND_OF[type(r)].name for r in ONE_OF_EACH]
    by_seq = {int(r[0]): dict(zip(COLUMNS, r, strict=True)) for r in rows[1:]}
    assert by_seq[5]["detail"] == LONG  # the multi-slot reject message, whole
    assert by_seq[1]["ref"] == "" and by_seq[1]["text"] == "strat-1"  # NULL -> empty


def test_export_refuses_bad_input(db: Path, tmp_path: Path, capsys: Any) -> None:
    assert export.main([str(tmp_path / "missing.db"), str(tmp_path / "x.csv")]) == 2
    assert "no such journal" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    if export.parquet_engine() is None:
        _fill_journal(db)
        args = [str(db), str(tmp_path / "x.csv"), "--parquet", str(tmp_path / "x.parquet")]
        assert export.main(args) == 2
        assert "pyarrow or polars" in capsys.readouterr().err


def test_export_parquet_when_an_engine_imports(db: Path, tmp_path: Path) -> None:
    engine = export.parquet_engine()
    if engine is None:
        pytest.skip("neither pyarrow nor polars imports on this interpreter")
    n = _fill_journal(db)
    pq = tmp_path / "events.parquet"
    assert export.main([str(db), str(tmp_path / "e.csv"), "--parquet", str(pq)]) == 0
    if engine[0] == "pyarrow":
        import pyarrow.parquet as papq  # type: ignore[import-not-found, unused-ignore]

        t = papq.read_table(pq)
        assert t.num_rows == n and t.column_names == list(COLUMNS)
        assert t.column("seq").to_pylist() == list(range(1, n + 1))
    else:
        df = engine[1].read_parquet(pq)
        assert df.height == n and df.columns == list(COLUMNS)
