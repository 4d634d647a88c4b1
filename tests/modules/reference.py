"""Straightforward numpy reference implementations of the Oracle and Sonar formulas
(docs/signals.md), written independently of the engine code: whole arrays at once, no running
sums, no incremental state. Tests run both on the same book states and compare."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vajra.market.book import L2Book
from vajra.modules.oracle import OracleConfig
from vajra.modules.sonar import SonarConfig

F = npt.NDArray[np.float64]


@dataclass
class BookTape:
    """Top-of-book states recorded after each update (levels missing -> quantity 0)."""

    bid: F
    ask: F
    bq: F  # (T, L)
    aq: F  # (T, L)


def record(book: L2Book, levels: int, rows: list[list[int]]) -> None:
    bids, asks = book.levels(levels)
    bq = [q for _, q in bids] + [0] * (levels - len(bids))
    aq = [q for _, q in asks] + [0] * (levels - len(asks))
    rows.append([bids[0][0] if bids else 0, asks[0][0] if asks else 0, *bq, *aq])


def tape(rows: list[list[int]], levels: int) -> BookTape:
    a = np.asarray(rows, dtype=np.float64)
    return BookTape(a[:, 0], a[:, 1], a[:, 2 : 2 + levels], a[:, 2 + levels : 2 + 2 * levels])


def oracle_reference(t: BookTape, cfg: OracleConfig) -> dict[str, F]:
    w = np.exp(-cfg.decay * np.arange(cfg.levels))
    wobi = ((t.bq - t.aq) @ w) / ((t.bq + t.aq) @ w)
    liq = 100.0 * (t.bq.sum(axis=1) - t.aq.sum(axis=1)) / (t.bq.sum(axis=1) + t.aq.sum(axis=1))
    b0, a0 = t.bq[:, 0], t.aq[:, 0]
    micro = (t.ask * b0 + t.bid * a0) / (b0 + a0)
    n = len(wobi)
    z = np.zeros(n)
    for i in range(n):
        win = wobi[max(0, i - cfg.z_window + 1) : i + 1]
        var = win.var()
        z[i] = (wobi[i] - win.mean()) / math.sqrt(var) if var > 1e-12 else 0.0
    strength = np.clip(z / cfg.z_cap, -1.0, 1.0)
    spread = t.ask - t.bid
    mid = (t.ask + t.bid) / 2
    edge = wobi * spread / 2
    return {
        "wobi": wobi,
        "liq_imb_pct": liq,
        "micro": micro,
        "zscore": z,
        "strength": strength,
        "edge_ticks": edge,
        "edge_bps": edge * 1e4 / mid,
    }


def entropy_reference(mid2: F, window: int, t: F | None = None, sample_ns: int = 0) -> tuple[F, F]:
    """Normalised pair entropy after each state, and the number of moves so far. The mid is
    sampled at the first state at least `sample_ns` after the previous sample (event time `t`);
    every state when `sample_ns` is 0. Before the window is full the engine reports 1.0."""
    n = len(mid2)
    ent = np.ones(n)
    moves = np.zeros(n)
    dirs: list[int] = []
    pairs: list[int] = []
    last = 0.0
    next_sample = 0.0
    for i in range(n):
        sampled = True
        if sample_ns:
            assert t is not None
            if t[i] < next_sample:
                sampled = False
            else:
                next_sample = t[i] + sample_ns
        if sampled:
            m = mid2[i]
            if last and m != last:
                d = 1 if m > last else 0
                if dirs:
                    pairs.append(dirs[-1] * 2 + d)
                dirs.append(d)
            last = m
        moves[i] = len(dirs)
        if len(pairs) >= window:
            counts = np.bincount(np.asarray(pairs[-window:]), minlength=4)
            p = counts[counts > 0] / window
            ent[i] = float(-(p * np.log2(p)).sum() / 2.0)
        elif i:
            ent[i] = ent[i - 1]
    return ent, moves


def regime_reference(
    ent: F, pairs_full: npt.NDArray[np.bool_], spread: F, t_ns: F, cfg: SonarConfig
) -> F:
    """Attack (1) / Veto (0) after each state by the documented rule, written as a plain loop."""
    regime, since, latch = 0, 0.0, False
    out = np.zeros(len(ent))
    for i in range(len(ent)):
        if pairs_full[i]:
            if ent[i] > cfg.enter_veto:
                latch = True
            elif ent[i] < cfg.exit_veto:
                latch = False
        safety = (not pairs_full[i]) or spread[i] > cfg.max_spread_ticks or spread[i] <= 0
        want = 0 if (safety or latch) else 1
        if want != regime and (safety or t_ns[i] - since >= cfg.min_dwell_ns):
            regime, since = want, t_ns[i]
        out[i] = regime
    return out
