"""The same trading logic wired the way a typical Python bot is: one asyncio event loop, a task
per stage, `asyncio.Queue`s between them. The e2e benchmark's variant (d).

Stages and objects are the engine's own (the feed source and its pacing arithmetic, the market
pipeline, Execution, the order gateway with Sentinel and the budgets, the simulated venue), so
the only difference from `vajra run` is the wiring: no pinned threads, no shared-memory ring,
no spin waits; a stage runs when the loop schedules it. Latency is stamped the same way: the
event's release time on `perf_counter_ns` -> the order handed to the venue.

    python -m vajra.bench.bot --feed binance:PATH --speed 1 --seconds 30 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from vajra.engine import wiring
from vajra.engine.config import Config, load
from vajra.engine.feed import Pacer, open_source, restamp
from vajra.market.events import BookUpdate, Trade
from vajra.market.feeds.synthetic import PhaseChange
from vajra.modules.execution import Execution
from vajra.modules.pipeline import MarketPipeline
from vajra.modules.sentinel import Sentinel
from vajra.trading.gateway import OrderGateway


async def run_bot(cfg: Config, seconds: float) -> dict[str, Any]:
    perf = time.perf_counter_ns
    src = open_source(cfg.feed.source, cfg.feed.seed, cfg.feed.speed)
    inst = src.instrument
    pipe = MarketPipeline(inst, cfg.oracle, cfg.sonar, sync=src.sync)
    venue = wiring.sim_venue(cfg, inst)
    sentinel = Sentinel(cfg.risk, now_ns=perf())
    budgets = wiring.budgets(cfg, inst)
    rate, _ = wiring.round_trip_rate(cfg, inst)
    holder: list[Execution] = []
    gw = OrderGateway(
        venue,
        budgets,
        sentinel,
        {inst.token: inst},
        kill_word=lambda: 0,
        ltp=lambda t: holder[0].ltp if holder else 0,
    )
    ex = Execution(cfg.execution, gw, inst, rate, perf())
    holder.append(ex)
    market: asyncio.Queue[object] = asyncio.Queue(maxsize=256)
    signals: asyncio.Queue[tuple[int, int, int, int, int, float, float, bool]] = asyncio.Queue()
    venue_events: list[object] = []
    t2o: list[int] = []
    state = {"trading_from": 0, "live": 0, "stop": False}
    pacer = Pacer(cfg.feed.speed, int(cfg.feed.warmup_s * 1e9))

    async def feed() -> None:
        for market_ns, ev in src.events():
            if state["stop"]:
                break
            if type(ev) is PhaseChange:
                continue
            if pacer.starts_live(market_ns):
                while not market.empty():  # the warm-up worked through first
                    await asyncio.sleep(0.001)
            stamp = pacer.due(market_ns)
            if not state["trading_from"] and not pacer.warming:
                state["trading_from"] = stamp
            delay = stamp - perf()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            ev = restamp(ev, stamp)
            venue_events.append(ev)
            await market.put(ev)
        state["stop"] = True

    async def oracle() -> None:
        while True:
            ev = await market.get()
            pipe.on_event(ev)
            t = getattr(ev, "recv_ns", 0)
            if state["trading_from"] and t >= state["trading_from"]:
                state["live"] += 1
                sig = pipe.signal() if type(ev) is BookUpdate else None
                if sig is not None:
                    await signals.put((t, *sig))

    def drain(now: int) -> None:  # the market as the venue sees it, up to now
        for mev in venue_events:
            venue.on_market(mev, now)
            if type(mev) is Trade:
                ex.on_trade(mev.price, mev.qty, now)
        venue_events.clear()

    async def execution() -> None:
        while True:
            origin, bid, ask, bq, aq, strength, edge, gate = await signals.get()
            now = perf()
            drain(now)
            sentinel.on_feed(now, origin)
            if ex.on_signal(now, bid, ask, bq, aq, strength, edge, gate):
                t2o.append(gw.last_write_ns - origin)
            ex.on_tick(perf())

    async def ticker() -> None:  # the 200 ms cancels and venue answers between signals
        while True:
            await asyncio.sleep(0.001)
            now = perf()
            drain(now)
            ex.on_tick(now)

    tasks = [asyncio.create_task(c()) for c in (feed, oracle, execution, ticker)]
    while not state["trading_from"] and not state["stop"]:
        await asyncio.sleep(0.01)
    t0 = perf()
    # until the time is up or the recording ran out and the stages worked through it: events/s
    # is over the time the bot had events, as the engine's is
    deadline = t0 + int(seconds * 1e9)
    while perf() < deadline and not (state["stop"] and market.empty() and signals.empty()):
        await asyncio.sleep(0.001)
    state["stop"] = True
    t1 = perf()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "tick_to_order_ns": t2o,
        "live_events": state["live"],
        "live_seconds": (t1 - t0) / 1e9,
        "orders": ex.placed,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m vajra.bench.bot", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--feed", required=True)
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--json", required=True, help="where to write the result")
    args = ap.parse_args(argv)
    cfg = load(None, [f'feed.source="{args.feed}"', f"feed.speed={args.speed}", *args.set])
    out = asyncio.run(run_bot(cfg, args.seconds))
    with open(args.json, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
