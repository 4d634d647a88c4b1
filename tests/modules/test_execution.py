"""Execution on the simulated venue, in simulated time: the 200 ms cancel, the kill flag, the
RTT lockdown and its re-arm, and budgets that hold under adversarial signal streams."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.bench.execution import BENCH_EXEC, Rig, build
from vajra.market.events import BookUpdate, Side
from vajra.modules.execution import ExecState, ExecutionConfig
from vajra.modules.sentinel import EmergencyState, SentinelConfig
from vajra.trading.budgets import WriteKind
from vajra.trading.gateway import WriteResult
from vajra.trading.nev import NevConfig
from vajra.trading.orders import OrderState
from vajra.venues.base import PlaceRequest, RejectReason
from vajra.venues.sim import LatencyModel

MS = 1_000_000
BID, ASK = 24_500, 24_501  # ticks of the default instrument (Rs 2,450.00 / 2,450.10)


def rig(
    latency: LatencyModel | None = None,
    cfg: ExecutionConfig = BENCH_EXEC,
    otr: int = 1_000_000,
    sentinel: SentinelConfig | None = None,
) -> Rig:
    r = build(
        7,
        0,
        latency=latency or LatencyModel.fixed(2 * MS),
        exec_cfg=cfg,
        otr_ceiling=otr,
        sentinel_cfg=sentinel
        or SentinelConfig(
            max_notional_per_order=100_000_000,
            max_position=100_000,
            max_open_orders=50,
            feed_stale_ns=10**15,
            daily_loss_limit=10**12,
        ),
    )
    # a quiet, deep book: nothing trades, so resting orders wait for their cancel
    snap = BookUpdate(
        r.inst.token,
        0,
        0,
        tuple((BID - i, 100_000) for i in range(20)),
        tuple((ASK + i, 100_000) for i in range(20)),
        snapshot=True,
    )
    r.venue.on_market(snap, 0)
    return r


def signal(r: Rig, t: int, strength: float = 0.9, gate: bool = True) -> int:
    r.sentinel.on_feed(t, t)
    return r.execution.on_signal(t, BID, ASK, 100_000, 100_000, strength, 0.3, gate)


def run(r: Rig, t0: int, t1: int, step: int = MS // 4) -> int:
    t = t0
    while t <= t1:
        r.execution.on_tick(t)
        t += step
    return t


def test_every_passive_order_is_cancelled_200ms_after_its_ack() -> None:
    r = rig()
    ex = r.execution
    t = 1_000 * MS
    for _ in range(40):  # a signal every 150 ms: the ladder refills as orders leave
        signal(r, t)
        t = run(r, t, t + 150 * MS)
    t = run(r, t, t + 1_000 * MS)
    tracker = r.gateway.tracker
    orders = [o for c in range(1, 1_000) if (o := tracker.get(c)) is not None]
    assert len(orders) == len(tracker) >= 20 and ex.timer_cancels == len(orders)
    for o in orders:
        assert o.state is OrderState.CANCELLED and o.ack_ns
        # the ack (stamped at the exchange) reaches us 2 ms later and is seen on the next
        # 250 µs loop; the cancel goes out 200 ms after that, on the loop that finds it due
        seen = o.ack_ns + 2 * MS
        assert 200 * MS <= o.cancel_sent_ns - seen <= 200 * MS + MS // 2
    assert max(ex.cancel_lateness_ns) <= MS // 4  # one loop period
    assert not tracker.open_orders()


def test_kill_flag_stops_every_write_and_cancels_everything_resting() -> None:
    r = rig()
    t = 1_000 * MS
    signal(r, t)
    t = run(r, t, t + 10 * MS)
    signal(r, t)
    t = run(r, t, t + 10 * MS)
    resting = r.gateway.tracker.open_orders()
    assert len(resting) == 2 and all(o.state is OrderState.OPEN for o in resting)
    places = r.venue.stats.orders
    r.kill[0] = 1  # the monitor set the control block's kill word
    r.execution.on_tick(t)  # seen within one loop iteration
    assert r.sentinel.state is EmergencyState.KILLED
    assert all(o.cancel_sent_ns == t for o in resting)  # the cancel-all went out at once
    # and a write attempted anyway is refused by the word itself, read before the write
    req = PlaceRequest(
        r.gateway.tracker.next_client_id(), r.inst.token, Side.BID, BID * 10, 250, tag="x"
    )
    assert r.gateway.place(req, t) is WriteResult.KILLED
    t = run(r, t, t + 20 * MS)
    assert not r.gateway.tracker.open_orders()
    assert all(o.state is OrderState.CANCELLED for o in resting)
    for _ in range(20):  # nothing new reaches the venue while killed, whatever the signals
        assert signal(r, t) == 0
        t = run(r, t, t + 5 * MS)
    assert r.venue.stats.orders == places
    assert r.execution.state is ExecState.HALTED
    r.kill[0] = 0  # clearing the word does not unlatch KILLED: only an explicit reset
    assert signal(r, t) == 0 and r.sentinel.state is EmergencyState.KILLED


def test_lockdown_on_a_latency_spike_cancels_all_and_rearms_after_the_healthy_period() -> None:
    lat = LatencyModel.fixed(2 * MS)
    cfg = SentinelConfig(
        max_notional_per_order=100_000_000,
        max_position=100_000,
        max_open_orders=50,
        feed_stale_ns=10**15,
        daily_loss_limit=10**12,
        healthy_ns=5_000 * MS,
    )
    r = rig(lat, sentinel=cfg)
    t = 1_000 * MS
    lat.spike(t, t + 2_000 * MS, 15 * MS)  # one-way +15 ms: RTT ~34 ms
    locked_at = 0
    for _ in range(30):
        signal(r, t)
        t = run(r, t, t + 50 * MS)
        if r.sentinel.state is EmergencyState.LOCKDOWN and not locked_at:
            locked_at = t
    assert locked_at, "three slow acks lock down"
    t = run(r, t, t + 200 * MS)
    assert not r.gateway.tracker.open_orders()  # cancel-all went out and was answered
    placed = r.venue.stats.orders
    # no new order while locked down, and no re-arm before the healthy period
    while t < locked_at + 4_500 * MS:
        assert signal(r, t) == 0
        t = run(r, t, t + 100 * MS)
    assert r.venue.stats.orders == placed and r.sentinel.state is EmergencyState.LOCKDOWN
    t = run(r, t, locked_at + 8_000 * MS, step=10 * MS)
    assert r.sentinel.state is EmergencyState.NORMAL  # the spike is over: re-armed
    assert signal(r, t) == 1


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1, 1), st.booleans(), st.integers(0, 120)),  # strength, gate, gap ms
        min_size=50,
        max_size=400,
    )
)
def test_adversarial_signals_never_break_the_broker_limits_or_the_otr_ceiling(
    stream: list[tuple[float, bool, int]],
) -> None:
    cfg = ExecutionConfig(
        nev=NevConfig(threshold_paise=-1e15),
        ladder_orders=4,
        cancel_after_ns=30 * MS,
        min_strength=0.0,
        improve_strength=0.0,
    )
    r = rig(cfg=cfg, otr=8)
    t = 1_000 * MS
    gw = r.gateway
    for strength, gate, gap in stream:
        signal(r, t, strength, gate)
        t = run(r, t, t + gap * MS + MS, step=MS)
        for side in (Side.BID, Side.ASK):  # the incremental working count matches a recount
            working = sum(o.remaining for o in gw.tracker.open_orders() if o.side is side)
            assert gw._resting(r.inst.token, side) == working
    run(r, t, t + 15_000 * MS, step=5 * MS)
    # the venue enforces Kite's limits itself: it never had to refuse us
    assert r.venue.stats.rejects[RejectReason.RATE_LIMITED] == 0
    assert r.venue.stats.cancel_rejects[RejectReason.RATE_LIMITED] == 0
    # every request the venue saw went through the gateway's budgets
    assert r.venue.stats.requests == sum(r.gateway.sent.values())
    otr = r.gateway.budgets.otr
    assert otr.penalty_orders <= otr.ceiling * max(otr.trades, 1)


def test_every_write_answer_and_risk_change_is_journaled(tmp_path: Path) -> None:
    from vajra.journal.journal import Journal, Kind, read_entries
    from vajra.journal.recover import reconcile, replay
    from vajra.journal.tap import GatewayJournal

    r = rig()
    with Journal(tmp_path / "j.db") as j:
        w = j.writer()
        j.start()
        r.gateway.journal = GatewayJournal(w)
        t = 1_000 * MS
        for _ in range(6):
            signal(r, t)
            t = run(r, t, t + 120 * MS)
        r.kill[0] = 1
        t = run(r, t, t + 50 * MS)
        req = PlaceRequest(
            r.gateway.tracker.next_client_id(), r.inst.token, Side.BID, BID * 10, 250
        )
        assert r.gateway.place(req, t) is WriteResult.KILLED  # refused: journaled as such
        assert w.flush(5.0)
    entries = list(read_entries(tmp_path / "j.db"))
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    kinds = [e.kind for e in entries]
    gw = r.gateway
    assert kinds.count(Kind.PLACE) == gw.sent[WriteKind.PLACE] >= 3
    assert kinds.count(Kind.CANCEL) == gw.sent[WriteKind.CANCEL]
    assert kinds.count(Kind.SENT) == sum(gw.sent.values())
    assert kinds.count(Kind.ACK) == r.venue.stats.acks
    assert Kind.RISK in kinds  # NORMAL -> KILLED
    refused = [(e.record.client_id, e.record.result) for e in entries if e.kind is Kind.REFUSED]
    assert refused[-1] == (req.client_id, WriteResult.KILLED)  # every refusal is an event
    assert len(refused) == sum(n for k, n in gw.refused.items() if k is not WriteResult.NOTHING)
    state = replay(entries)
    assert not state.open and not gw.tracker.open_orders()  # everything ended, both agree
    assert not reconcile(state, []).cancel


def test_restart_reconciles_with_the_journal_and_the_venue_and_cancels_orphans(
    tmp_path: Path,
) -> None:
    """The engine dies with orders resting; a new engine on the same venue replays the
    journal, asks the venue what is open, and cancels every orphan through its gateway."""
    from vajra.journal.journal import Journal, read_entries
    from vajra.journal.recover import reconcile, replay
    from vajra.journal.tap import GatewayJournal

    first = rig()
    db = tmp_path / "j.db"
    with Journal(db) as j:
        w = j.writer()
        j.start()
        first.gateway.journal = GatewayJournal(w)
        t = 1_000 * MS
        for _ in range(2):
            signal(first, t)
            t = run(first, t, t + 10 * MS)
        assert w.flush(5.0)
    resting = [o.client_id for o in first.gateway.tracker.open_orders()]
    assert len(resting) == 2  # the engine "dies" here: nothing cancels them
    venue = first.venue

    second = rig()
    second.venue = second.gateway.venue = venue  # the same exchange, a new engine
    state = replay(read_entries(db))
    venue_open = [o.client_id for o in venue.open_orders()]
    rec = reconcile(state, venue_open)
    assert sorted(rec.cancel) == sorted(resting) == sorted(rec.expected) and rec.clean
    terms = {
        cid: (v.token, v.side, v.price, v.qty, v.filled)
        for cid, v in state.orders.items()
        if cid in rec.cancel
    }
    sent, held = second.gateway.restore(terms, list(rec.cancel), rec.next_client_id, t)
    assert (sent, held) == (2, 0)
    t = run(second, t, t + 20 * MS)
    assert not venue.open_orders() and not second.gateway.tracker.open_orders()
    assert second.gateway.tracker.next_client_id() == rec.next_client_id  # no id reused


def test_rehearsal_answers_like_a_place_and_changes_nothing() -> None:
    r = rig()
    gw, t = r.gateway, 1_000 * MS
    r.sentinel.on_feed(t, t)

    def observed() -> tuple[object, ...]:
        return (
            r.sentinel.checks,
            list(r.sentinel.refused),
            gw.budgets.limiter.snapshot(t),
            gw.budgets.otr.snapshot(),
            len(gw.tracker),
            r.venue.pending_requests,
            dict(gw.refused),
        )

    before = observed()
    assert gw.rehearse(r.inst.token, Side.BID, BID * 10, 250, t)
    assert not gw.rehearse(r.inst.token, Side.BID, BID * 10, 250 * 10_000, t)  # notional
    assert not gw.rehearse(r.inst.token, Side.BID, BID * 10, 251, t)  # not a lot multiple
    assert observed() == before
    r.kill[0] = 1
    assert not gw.rehearse(r.inst.token, Side.BID, BID * 10, 250, t)
    req = PlaceRequest(gw.tracker.next_client_id(), r.inst.token, Side.BID, BID * 10, 250)
    assert gw.place(req, t) is WriteResult.KILLED


def test_the_order_placed_is_the_candidate_with_the_best_nev() -> None:
    """The decision loop computes each candidate's value inline; it must pick what
    `nev.evaluate` ranks first, and report that candidate's parts."""
    from vajra.trading.nev import NevParts, evaluate

    cfg = ExecutionConfig(nev=NevConfig(threshold_paise=-1e15), ladder_levels=4)
    r = rig(cfg=cfg)
    ex, t = r.execution, 1_000 * MS
    for q, px in ((40, BID), (90, BID), (300, BID)):  # trades at the touch: a trade rate
        ex.on_trade(px * 10, q * 250, t)
    r.sentinel.on_feed(t, t)
    bid_qty = 5_000
    assert ex.on_signal(t, BID, ASK + 2, bid_qty, 500, 0.8, 0.6, True) == 1  # spread 3
    placed = r.gateway.tracker.get(1)
    assert placed is not None
    rate = ex.trade_rate(t)
    at_touch = ex.cost(BID * 10, 250)  # Execution prices the round trip once, at the touch

    def cost(price: int, qty: int) -> tuple[float, float]:
        return at_touch

    best = None
    # one tick better (spread 3, strong signal), the touch, and three levels behind it
    for tk, ahead in ((BID + 1, 0), *((BID - i, (i + 1) * bid_qty) for i in range(4))):
        parts = NevParts()
        v = evaluate(
            parts,
            cfg.nev,
            cost,
            buy=True,
            price=tk * 10,
            qty=250,
            mid2=BID + ASK + 2,
            tick=10,
            edge_ticks=0.6,
            strength=0.8,
            spread_ticks=3,
            ahead=ahead,
            rate=rate,
            marketable=False,
        )
        if best is None or v > best[0]:
            best = (v, tk, parts)
    assert best is not None
    assert placed.price == best[1] * 10
    assert abs(ex.nev.value - best[0]) <= 1e-6 * max(1.0, abs(best[0]))
    assert ex.nev.p_fill == best[2].p_fill and ex.nev.edge == best[2].edge


def test_place_registers_the_order_even_when_the_venue_call_raises() -> None:
    """The gateway writes first and keeps its books after: a venue call that raises (a network
    error, the order may be out) still leaves the order registered as sent, so reconciliation
    finds it; a client id already used is refused before anything reaches the venue."""
    r = rig()
    gw, t = r.gateway, 1_000 * MS
    r.sentinel.on_feed(t, t)

    def broken(req: PlaceRequest, now_ns: int) -> None:
        raise ConnectionError("reset by peer")

    real = r.venue.place
    r.venue.place = broken  # type: ignore[method-assign]
    cid = gw.tracker.next_client_id()
    try:
        gw.place(PlaceRequest(cid, r.inst.token, Side.BID, BID * 10, 250), t)
    except ConnectionError:
        pass
    else:
        raise AssertionError("the venue's error must reach the caller")
    o = gw.tracker.get(cid)
    assert o is not None and o.state is OrderState.PENDING and o.sent_ns == t
    assert gw.tracker.open_count == 1
    r.venue.place = real  # type: ignore[method-assign]
    pending = r.venue.pending_requests
    again = PlaceRequest(cid, r.inst.token, Side.BID, BID * 10, 250)
    assert gw.place(again, t) is WriteResult.INVALID
    assert r.venue.pending_requests == pending and gw.tracker.open_count == 1


def test_nev_is_evaluated_while_no_write_is_allowed() -> None:
    """A closed gate, a weak signal or a halt stops writes, not the NEV the dashboard shows
    (and the decision path stays warm for the next write)."""
    r = rig()
    ex, t = r.execution, 1_000 * MS
    r.sentinel.on_feed(t, t)
    assert ex.on_signal(t, BID, ASK, 100_000, 100_000, 0.9, 0.3, False) == 0
    assert ex.state is ExecState.REDUCING and ex.nev.costs > 0 and ex.nev.edge != 0
    assert r.venue.pending_requests == 0
    first = ex.nev.edge
    assert ex.on_signal(t, BID, ASK, 100_000, 100_000, 0.9, 0.8, False) == 0
    assert ex.nev.edge > first  # a stronger edge moved the parts, still no write
    r.kill[0] = 1
    ex.on_tick(t)
    assert ex.on_signal(t, BID, ASK, 100_000, 100_000, 0.9, 0.3, True) == 0
    assert ex.state is ExecState.HALTED and r.venue.pending_requests == 0


def test_a_cancel_already_in_flight_takes_no_rate_limit_slot() -> None:
    """A signal that turns cancels the other side's orders; while those cancels are in flight,
    later signals ask again. The repeats must not use the broker's write budget (they did, and
    a turning signal filled Kite's 10/s window with no-op cancels, starving real ones)."""
    r = rig()
    gw, t = r.gateway, 1_000 * MS
    r.sentinel.on_feed(t, t)
    cid = gw.tracker.next_client_id()
    assert gw.place(PlaceRequest(cid, r.inst.token, Side.BID, BID * 10, 250), t) is WriteResult.SENT
    t = run(r, t, t + 5 * MS)  # acked
    assert gw.cancel(cid, t) is WriteResult.SENT
    allowed = gw.budgets.limiter.snapshot(t).allowed
    for i in range(30):
        assert gw.cancel(cid, t + i) is WriteResult.NOTHING
        assert gw.modify(cid, (BID - 1) * 10, 250, t + i) is WriteResult.NOTHING
    assert gw.budgets.limiter.snapshot(t + 30).allowed == allowed
    assert gw.budgets.otr.snapshot().cancels == 1


def test_warming_reruns_the_last_decision_and_writes_nothing() -> None:
    r = rig()
    ex, t = r.execution, 1_000 * MS
    ex.warm(t)  # no Signal yet: nothing to warm
    r.sentinel.on_feed(t, t)
    assert ex.on_signal(t, BID, ASK, 100_000, 100_000, 0.9, 0.3, False) == 0  # gate shut
    state, nev = ex.state, ex.nev.value
    checks, pending = r.sentinel.checks, r.venue.pending_requests
    allowed = r.gateway.budgets.limiter.snapshot(t).allowed
    for i in range(20):
        ex.warm(t + i * MS)
    assert ex.state is state and ex.signals == 1 and ex.placed == 0
    assert r.venue.pending_requests == pending and r.sentinel.checks == checks
    assert r.gateway.budgets.limiter.snapshot(t).allowed == allowed
    assert ex.nev.costs > 0 and ex.nev.value <= 0 and nev <= 0  # the parts, recomputed
