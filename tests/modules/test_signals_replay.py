"""Oracle and Sonar on the real recordings, against the numpy references (docs/signals.md)."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

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
from vajra.market.events import BookUpdate
from vajra.market.feeds.binance import (
    BinanceBookSync,
    BinanceMarket,
    BinanceReplay,
    binance_usdm_btcusdt,
)
from vajra.market.feeds.lobster import iter_lobster_zip, lobster_instrument
from vajra.modules.oracle import Oracle, OracleConfig
from vajra.modules.sonar import Sonar, SonarConfig

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
USDM = DATA / "binance" / "usdm_btcusdt_20240808.gz"
AMZN = DATA / "lobster" / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip"
KEYS = ("wobi", "liq_imb_pct", "micro", "zscore", "strength", "edge_ticks", "edge_bps")


def _needs(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"recorded data not found at {path} (../shared/data is absent)")


def _run(
    updates: list[BookUpdate], book: L2Book, apply: object, ocfg: OracleConfig, scfg: SonarConfig
) -> tuple[int, int]:
    oracle, sonar = Oracle(ocfg), Sonar(scfg)
    got: dict[str, list[float]] = {k: [] for k in KEYS}
    rows: list[list[int]] = []
    ent, reg, mid2, spread, full, t = [], [], [], [], [], []
    for u in updates:
        if not apply(u):  # type: ignore[operator]
            continue
        if not oracle.update(book):
            continue
        sonar.on_book(book, u.recv_ns, u.exch_ns)
        record(book, ocfg.levels, rows)
        for k in KEYS:
            got[k].append(getattr(oracle, k))
        ent.append(sonar.entropy)
        reg.append(int(sonar.regime))
        mid2.append(book.best_bid() + book.best_ask())
        spread.append(book.best_ask() - book.best_bid())
        full.append(sonar._npairs == scfg.window)
        t.append(u.exch_ns or u.recv_ns)
    ref = oracle_reference(tape(rows, ocfg.levels), ocfg)
    for k, v in ref.items():
        np.testing.assert_allclose(np.asarray(got[k]), v, rtol=1e-9, atol=1e-9, err_msg=k)
    ref_ent, _ = entropy_reference(
        np.asarray(mid2, dtype=np.float64),
        scfg.window,
        np.asarray(t, dtype=np.float64),
        scfg.sample_ns,
    )
    np.testing.assert_allclose(np.asarray(ent), ref_ent, atol=1e-12)
    ref_reg = regime_reference(
        ref_ent,
        np.asarray(full),
        np.asarray(spread, dtype=np.float64),
        np.asarray(t, dtype=np.float64),
        scfg,
    )
    np.testing.assert_array_equal(np.asarray(reg), ref_reg)
    return len(rows), int(np.sum(np.diff(np.asarray(reg)) != 0))


def test_binance_usdm_signals_match_reference() -> None:
    _needs(USDM)
    inst = binance_usdm_btcusdt()
    book = L2Book(inst)
    sync = BinanceBookSync(book, BinanceMarket.USDM)

    def apply(u: BookUpdate) -> bool:
        return any(type(e) is BookUpdate for e in sync.receive(u))

    ups = [e for e in BinanceReplay(USDM, inst) if type(e) is BookUpdate]
    states, switches = _run(
        ups,
        book,
        apply,
        OracleConfig(levels=10, decay=0.3),
        SonarConfig(window=32, min_dwell_ns=5_000_000_000),
    )
    assert states > 6000  # every diff after the snapshot gave a state
    print(f"binance: {states} states, {switches} regime switches")


def test_lobster_amzn_signals_match_reference() -> None:
    _needs(AMZN)
    inst = lobster_instrument()
    book = L2Book(inst)

    def apply(u: BookUpdate) -> bool:
        book.apply(u)
        return True

    ups = [e for e in islice(iter_lobster_zip(AMZN), 60_000) if type(e) is BookUpdate]
    states, switches = _run(
        ups,
        book,
        apply,
        OracleConfig(),
        SonarConfig(window=64, max_spread_ticks=20, min_dwell_ns=30_000_000_000),
    )
    assert states > 40_000
    assert switches >= 1, "a full morning of AMZN should change regime at least once"
    print(f"lobster: {states} states, {switches} regime switches")


def _signals(
    updates: list[BookUpdate], lazy: bool
) -> tuple[list[tuple[float, ...]], tuple[int, int], int]:
    from vajra.modules.pipeline import MarketPipeline

    inst = binance_usdm_btcusdt()
    p = MarketPipeline(
        inst, lazy=lazy, sync=lambda b: BinanceBookSync(b, BinanceMarket.USDM).receive
    )
    out = []
    for u in updates:
        p.on_event(u)
        o, s = p.oracle, p.sonar
        out.append(
            (
                o.wobi,
                o.zscore,
                o.micro,
                o.edge_ticks,
                s.entropy,
                float(s.regime),
                float(p.book.best_bid()),
                float(p.book.best_ask()),
            )
        )
    assert not p.book.pending
    assert sum(p.book.counts) == 0
    p.book.check_consistency()
    return out, (p.book.merged_reads, p.book.merge_fallbacks), len(p.book.bids)


def test_reading_through_the_recorded_update_changes_no_signal() -> None:
    """The lazy book records each diff and the signal reads the top through it, the levels
    being applied after the signal is out; every signal, regime and book must be exactly what
    applying each diff first gives. Diffs that are not ordered (here: the same diffs listed
    worst first, without the `ordered` promise) are applied first, with the same result."""
    _needs(USDM)
    ups = [e for e in BinanceReplay(USDM, binance_usdm_btcusdt()) if type(e) is BookUpdate]
    assert sum(u.ordered for u in ups) == len(ups)  # the parser sorts and checks every diff
    eager, (merged0, _), depth = _signals(ups, False)
    lazy, (merged, fallbacks), depth2 = _signals(ups, True)
    assert merged0 == 0 and depth2 == depth
    assert lazy == eager  # the same floats: the same levels, read in the same order
    # nearly every diff is read through; the rest emptied the top beyond the walk's reach
    assert merged >= 2 * (len(ups) - 20) and fallbacks <= len(ups) // 200
    worst_first = [
        BookUpdate(
            u.token,
            u.recv_ns,
            u.exch_ns,
            u.bids[::-1],
            u.asks[::-1],
            u.snapshot,
            u.first_id,
            u.last_id,
            u.prev_id,
        )
        for u in ups
    ]
    reordered, (merged_rev, _), _ = _signals(worst_first, True)
    assert reordered == eager
    assert merged_rev <= 2 * sum(len(u.bids) < 2 and len(u.asks) < 2 for u in ups)
    print(f"merged reads {merged} (fallbacks {fallbacks}) of {len(ups)} updates")
