"""The feed thread's sources: market events stamped on the engine's clock, paced like a live feed.

A live feed handler stamps each message with `perf_counter_ns()` as it arrives; every latency
the engine reports (tick -> signal -> order) starts at that stamp. A replay or the synthetic
market must look the same to the engine, so each event is re-stamped here with the time it is
released: the recording's (or simulation's) own clock, mapped onto `perf_counter_ns` at
`speed` x its pace (sleep, then spin the last 200 µs: sleep overshoots by 50-100 µs). If the
engine falls behind, events keep their scheduled stamp, so queueing counts as latency, as it
would live. `speed = 0` releases events as fast as the engine takes them (stamped at release).

The event's own market time (`exch_ns`) is untouched: Sonar samples and dwells on it, so a
replay at any speed yields the same regimes; `recv_ns` (staleness, latency) is the engine's.

Warm-up: the first `warmup_s` of market time are released at once, stamped as if they had
arrived at `speed` before the start, so Sonar's entropy window and the venue's book are full
when trading starts (as a live engine would have watched the market before the open).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from vajra.market.book import L2Book
from vajra.market.events import BookUpdate, Trade
from vajra.market.feeds.binance import (
    BinanceBookSync,
    BinanceMarket,
    BinanceReplay,
    binance_usdm_btcusdt,
)
from vajra.market.feeds.lobster import iter_lobster_zip, lobster_instrument, read_lobster_session
from vajra.market.feeds.synthetic import PhaseChange, SyntheticFeed
from vajra.market.instruments import Instrument
from vajra.modules.pipeline import BookSync

SPIN_NS = 200_000


def restamp(ev: object, t: int) -> object:
    """The event with `recv_ns = t` (cost: one constructor call, ~1 µs; the rare kinds go
    through `dataclasses.replace`)."""
    tp = type(ev)
    if tp is BookUpdate:
        b: BookUpdate = ev  # type: ignore[assignment]
        return BookUpdate(
            b.token,
            t,
            b.exch_ns,
            b.bids,
            b.asks,
            b.snapshot,
            b.first_id,
            b.last_id,
            b.prev_id,
            b.rejects,
            b.ordered,
        )
    if tp is Trade:
        r: Trade = ev  # type: ignore[assignment]
        return Trade(r.token, t, r.exch_ns, r.price, r.qty, r.aggressor, r.trade_id)
    if hasattr(ev, "recv_ns") and dataclasses.is_dataclass(ev):
        return dataclasses.replace(ev, recv_ns=t)  # type: ignore[type-var]
    return ev  # PhaseChange: ground truth, not market data


class Source:
    """One feed: its instrument, the venue book sync the pipeline needs, and its events as
    `(market_ns, event)`, where `market_ns` is the clock the pacing follows (-1: release now)."""

    def __init__(
        self,
        instrument: Instrument,
        events: Callable[[], Iterator[tuple[int, object]]],
        *,
        sync: Callable[[L2Book], BookSync] | None = None,
        initial: BookUpdate | None = None,
        endless: bool = False,
    ) -> None:
        self.instrument = instrument
        self.events = events
        self.sync = sync
        #: the book before the first event (synthetic)
        self.initial = initial
        self.endless = endless


def open_source(spec: str, seed: int, speed: float) -> Source:
    """A Source for `synthetic`, `binance:PATH` or `lobster:PATH`; ValueError when the spec or
    the file is wrong (checked here, before any thread starts)."""
    kind, _, arg = spec.partition(":")
    if kind == "synthetic":
        feed = SyntheticFeed(seed)

        def synthetic() -> Iterator[tuple[int, object]]:
            nxt = feed.next_event
            while True:
                ev = nxt()
                yield getattr(ev, "exch_ns", -1), ev

        return Source(feed.instrument, synthetic, initial=feed.initial_snapshot(), endless=True)
    path = Path(arg)
    if not arg or not path.is_file():
        raise ValueError(f"feed {spec!r}: no such file {arg!r}")
    if kind == "binance":
        inst = binance_usdm_btcusdt()

        def binance() -> Iterator[tuple[int, object]]:
            # unpaced: the recorded receive time of each line drives the Pacer, like the rest
            yield from BinanceReplay(path, inst, 0.0).records()

        return Source(inst, binance, sync=lambda b: BinanceBookSync(b, BinanceMarket.USDM).receive)
    if kind == "lobster":
        read_lobster_session(path)  # fails early and clearly on a file that is not a sample
        first = next(iter_lobster_zip(path))
        token = first.token if isinstance(first, BookUpdate) else 0

        def lobster() -> Iterator[tuple[int, object]]:
            for ev in iter_lobster_zip(path):
                yield getattr(ev, "recv_ns", -1), ev

        return Source(lobster_instrument(token=token), lobster)
    raise ValueError(f"unknown feed {spec!r}: use synthetic, binance:PATH or lobster:PATH")


class Pacer:
    """Maps market time onto `perf_counter_ns` at `speed` (see the module docstring)."""

    __slots__ = (
        "beat",
        "first_market",
        "on_start",
        "speed",
        "start",
        "warm_until",
    )

    def __init__(
        self,
        speed: float,
        warmup_ns: int,
        on_start: Callable[[], None] | None = None,
        beat: Callable[[], None] | None = None,
    ) -> None:
        self.speed = speed
        #: called at least every 50 ms while waiting for a quiet market's next event: the
        #: thread's heartbeat must not stop because the market is quiet
        self.beat = beat
        #: called once, between the warm-up and the first paced event: the engine waits there
        #: for its threads to have worked through the warm-up, so the first live event does not
        #: queue behind 60 s of market
        self.on_start = on_start
        self.first_market = -1
        self.start = 0
        self.warm_until = warmup_ns  # relative to the first event until the first is seen

    def due(self, market_ns: int) -> int:
        """The event's stamp: when it is due on `perf_counter_ns` (now for a warm-up event, as
        fast as possible, or an event with no market time). The first live event calls
        `on_start` and starts the clock. Does not wait: `release` does, an asyncio caller
        awaits `due - now` itself."""
        perf = time.perf_counter_ns
        if market_ns < 0:
            return perf()
        if self.first_market < 0:
            self.first_market = market_ns
            self.warm_until += market_ns
        if market_ns < self.warm_until:  # warm-up: at once, stamped in the past
            return perf() - int((self.warm_until - market_ns) / (self.speed or 1.0))
        if self.start == 0:
            if self.on_start is not None:
                self.on_start()
            self.start = perf()
            self.first_market = market_ns
        if self.speed == 0:
            return perf()
        return self.start + int((market_ns - self.first_market) / self.speed)

    def starts_live(self, market_ns: int) -> bool:
        """Would `due` take this event as the first live one (the warm-up is over)?"""
        if self.start or market_ns < 0:
            return False
        until = self.warm_until + (market_ns if self.first_market < 0 else 0)
        return market_ns >= until

    def release(self, market_ns: int) -> int:
        """Wait until the event is due; returns its stamp."""
        perf = time.perf_counter_ns
        target = self.due(market_ns)
        remaining = target - perf()
        beat = self.beat
        while remaining > SPIN_NS:
            time.sleep(min(remaining - SPIN_NS, 50_000_000) / 1e9)
            if beat is not None:
                beat()
            remaining = target - perf()
        while perf() < target:
            pass
        return target

    @property
    def warming(self) -> bool:
        return self.start == 0


__all__ = ["Pacer", "PhaseChange", "Source", "open_source", "restamp"]
