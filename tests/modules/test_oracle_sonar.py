"""Oracle and Sonar against the numpy reference implementations, on a random-walk book here
and on the real replays in test_signals_replay.py; plus the gate and shared-memory outputs."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tests.modules.reference import (
    entropy_reference,
    oracle_reference,
    record,
    regime_reference,
    tape,
)
from vajra.market.book import L2Book
from vajra.market.events import BookUpdate, Resynced, SequenceGap
from vajra.market.instruments import Instrument, Segment
from vajra.market.top import BOOK_TOP, TopWriter, read_top
from vajra.modules.oracle import Oracle, OracleConfig
from vajra.modules.pipeline import MarketPipeline
from vajra.modules.signal import SIGNAL, SIGNAL_STRUCT
from vajra.modules.sonar import GATE, Condition, GateWriter, Regime, Sonar, SonarConfig
from vajra.shm.layout import LINE
from vajra.shm.ring import Overflow, Ring
from vajra.shm.segment import LayoutMismatch, new_run_id
from vajra.shm.seqlock import SeqlockReader

INST = Instrument(7, "TEST", "NSE", Segment.NSE_EQ, 2, 5, lot=1)


def random_walk(n: int, seed: int, trend: float = 0.0) -> list[BookUpdate]:
    """Book states as full snapshots of 3 to 8 levels a side around a random-walk mid, levels in
    ticks (the `BookUpdate` convention; INST's tick is 5 paise)."""
    rng = random.Random(seed)
    mid = 20000  # ticks
    out = []
    for k in range(n):
        r = rng.random()
        if r < 0.3 + trend:
            mid += 1
        elif r < 0.6:
            mid -= 1
        spread = rng.choice((1, 1, 1, 2, 3))
        bid = mid - spread // 2 - (spread % 2)
        ask = bid + spread
        bids = tuple((bid - i, rng.randint(1, 500)) for i in range(rng.randint(3, 8)))
        asks = tuple((ask + i, rng.randint(1, 500)) for i in range(rng.randint(3, 8)))
        out.append(BookUpdate(7, k * 10_000_000, 0, bids, asks, snapshot=True))
    return out


def run_oracle(
    updates: list[BookUpdate], cfg: OracleConfig
) -> tuple[dict[str, list[float]], list[list[int]]]:
    book, oracle = L2Book(INST), Oracle(cfg)
    got: dict[str, list[float]] = {
        k: []
        for k in ("wobi", "liq_imb_pct", "micro", "zscore", "strength", "edge_ticks", "edge_bps")
    }
    rows: list[list[int]] = []
    for u in updates:
        book.apply(u)
        assert oracle.update(book)
        record(book, cfg.levels, rows)
        for k in got:
            got[k].append(getattr(oracle, k))
    return got, rows


@pytest.mark.parametrize(
    "cfg",
    [
        OracleConfig(),
        OracleConfig(levels=3, decay=0.0, z_window=16),
        OracleConfig(levels=8, decay=1.2, z_window=64, z_cap=2.0),
    ],
)
def test_oracle_matches_numpy_reference(cfg: OracleConfig) -> None:
    got, rows = run_oracle(random_walk(3000, seed=11), cfg)
    ref = oracle_reference(tape(rows, cfg.levels), cfg)
    for k, v in ref.items():
        np.testing.assert_allclose(np.asarray(got[k]), v, rtol=1e-9, atol=1e-9, err_msg=k)


def test_oracle_empty_side_gives_no_signal() -> None:
    book, oracle = L2Book(INST), Oracle()
    book.apply(BookUpdate(7, 1, 0, ((20, 5),), (), snapshot=True))
    assert not oracle.update(book)
    with pytest.raises(ValueError):
        OracleConfig(levels=0)


@pytest.mark.parametrize("sample_ns", [0, 50_000_000])
def test_sonar_entropy_and_regime_match_reference(sample_ns: int) -> None:
    cfg = SonarConfig(window=32, min_dwell_ns=200_000_000, sample_ns=sample_ns)
    ups = random_walk(2000, seed=3) + random_walk(2000, seed=4, trend=0.25)
    ups = [
        BookUpdate(7, i * 10_000_000, 0, u.bids, u.asks, snapshot=True) for i, u in enumerate(ups)
    ]
    book, sonar = L2Book(INST), Sonar(cfg)
    ent, regime, mid2, spread, full = [], [], [], [], []
    for u in ups:
        book.apply(u)
        sonar.on_book(book, u.recv_ns)
        ent.append(sonar.entropy)
        regime.append(int(sonar.regime))
        mid2.append(book.best_bid() + book.best_ask())
        spread.append(book.best_ask() - book.best_bid())
        full.append(sonar._npairs == cfg.window)
    t = np.asarray([u.recv_ns for u in ups], dtype=np.float64)
    ref_ent, _ = entropy_reference(np.asarray(mid2, dtype=np.float64), cfg.window, t, sample_ns)
    np.testing.assert_allclose(np.asarray(ent), ref_ent, atol=1e-12)
    ref_reg = regime_reference(
        ref_ent, np.asarray(full), np.asarray(spread, dtype=np.float64), t, cfg
    )
    np.testing.assert_array_equal(np.asarray(regime), ref_reg)
    # the random walk is noisy (Veto) and the trending half is not (Attack): both occur
    assert set(regime) == {0, 1}
    if not sample_ns:
        assert np.mean(ref_ent[:2000][cfg.window * 2 :]) > np.mean(ref_ent[2500:])


def test_regime_dwell_and_thin_book_veto() -> None:
    cfg = SonarConfig(
        window=4, enter_veto=0.9, exit_veto=0.5, min_dwell_ns=1_000, max_spread_ticks=3, sample_ns=0
    )
    book, s = L2Book(INST), Sonar(cfg)
    t = 0
    mid = 1000

    def step(move: int, spread: int = 1) -> None:
        nonlocal t, mid
        mid += move
        t += 100
        book.apply(BookUpdate(7, t, 0, ((mid, 10),), ((mid + spread, 10),), snapshot=True))
        s.on_book(book, t)

    for _ in range(8):  # a clean trend: entropy 0
        step(1)
    assert s.entropy == 0.0
    assert s.regime is Regime.VETO  # warm-up just ended; Attack must wait out the dwell
    for _ in range(10):
        step(1)
    assert s.regime is Regime.ATTACK
    step(0, spread=5)  # thin book: immediate veto, no dwell
    assert s.regime is Regime.VETO and s.reasons & 4


def test_gate_conditions_each_close_it() -> None:
    p = MarketPipeline(INST, sonar=SonarConfig(window=4, min_dwell_ns=0, sample_ns=0))
    for i, u in enumerate(random_walk(200, seed=9, trend=0.3)):
        p.on_event(BookUpdate(7, i * 1_000_000, 0, u.bids, u.asks, snapshot=True))
    now = 199 * 1_000_000
    if not p.tick(now):
        assert p.sonar.failing() == ["REGIME_ATTACK"]
        pytest.skip("the walk ended in Veto; the other conditions were still checked")
    assert p.sonar.failing() == []
    # each condition alone closes the gate, and records when it changed
    assert not p.tick(now + 3_000_000_000)  # stale
    assert p.sonar.failing() == ["FEED_FRESH"]
    assert p.sonar.changed_ns[Condition.FEED_FRESH] == now + 3_000_000_000
    assert not p.tick(now + 4_000_000_000)  # still stale: the same episode, counted once
    assert p.book.violations()["STALE"] == 1
    assert p.tick(now)
    p.on_event(SequenceGap(7, now, 5, 7, "test"))
    assert p.sonar.failing() == ["NO_GAP"] and not p.sonar.open
    p.on_event(Resynced(7, now, 7))
    assert p.sonar.open
    for kw in ("clock_stable", "sentinel_ok", "kill_clear"):
        assert not p.sonar.evaluate_gate(now, p.book, **{kw: False})
        assert len(p.sonar.failing()) == 1
    crossed = BookUpdate(7, now, 0, ((20_020, 1),), ((20_000, 1),), snapshot=True)
    p.on_event(crossed)
    assert "BOOK_SANE" in p.sonar.failing()


def test_shared_memory_outputs_round_trip() -> None:
    run = new_run_id()
    ring = Ring.create(run, "signals", 64, SIGNAL.size, Overflow.OVERWRITE, message=SIGNAL)
    from vajra.shm.layout import Layout
    from vajra.shm.segment import Segment

    with pytest.raises(LayoutMismatch):
        Ring.attach(run, "signals", message=Layout("signal", 99, SIGNAL.fields))
    seg = Segment.create(
        run, "state", Layout("state", 1, ()), extra=4 * LINE + BOOK_TOP.size + GATE.size + 2 * LINE
    )
    v = seg.view()
    top_off = seg.extra
    gate_off = seg.extra + ((BOOK_TOP.size + LINE - 1) // LINE) * LINE
    w = ring.writer()
    p = MarketPipeline(INST, top=TopWriter(v, top_off), gate=GateWriter(v, gate_off), signals=w)
    ups = random_walk(50, seed=1)
    for u in ups:
        p.on_event(u)
    top = read_top(SeqlockReader.from_view(v, top_off, BOOK_TOP))
    bids, asks = p.book.levels(10)
    assert top["bids"] == [(t * 5, q) for t, q in bids]
    assert top["asks"] == [(t * 5, q) for t, q in asks]
    assert top["updates"] == 50
    gate = SeqlockReader.from_view(v, gate_off, GATE).read()
    assert gate["moves"] == p.sonar.moves and gate["entropy"] == p.sonar.entropy
    r = ring.reader()
    got = []
    while (off := r.poll()) >= 0:
        got.append(SIGNAL_STRUCT.unpack_from(r.buf, off))
        r.commit()
    assert len(got) + ring.stats()["lost"] == p.signals_sent == 50
    last = dict(zip([f.name for f in SIGNAL.fields], got[-1], strict=True))
    assert last["wobi"] == p.oracle.wobi and last["origin_recv_ns"] == ups[-1].recv_ns
    assert last["signal_ns"] >= last["origin_recv_ns"]
    r.close()
    w.close()
    p.top.close()  # type: ignore[union-attr]
    p.gate.close()  # type: ignore[union-attr]
    v.release()
    seg.close()
    seg.unlink()
    ring.close()
    ring.unlink()


@pytest.mark.parametrize("seed", [7, 8])
def test_sonar_tells_the_synthetic_phases_apart(seed: int) -> None:
    """On the embedded default market, Sonar's default regime is Attack mostly while the market
    trends and Veto mostly while it mean-reverts or is thin (ground truth: the generator's
    phase markers)."""
    from collections import defaultdict

    from vajra.market.feeds.synthetic import PhaseChange, SyntheticFeed

    feed = SyntheticFeed(seed)
    p = MarketPipeline(feed.instrument)
    phase = ""
    attack: dict[str, list[int]] = defaultdict(list)
    for i in range(300_000):
        ev = feed.next_event()
        if type(ev) is PhaseChange:
            phase = ev.phase.name
            continue
        p.on_event(ev)
        if i % 10 == 0:
            attack[phase].append(int(p.sonar.regime))
    frac = {k: sum(v) / len(v) for k, v in attack.items()}
    assert set(frac) >= {"TRENDING", "MEAN_REVERTING", "NOISY", "THIN"}
    assert frac["TRENDING"] > 0.45
    assert frac["TRENDING"] > 2 * frac["MEAN_REVERTING"]
    assert frac["TRENDING"] > 3 * frac["THIN"]
