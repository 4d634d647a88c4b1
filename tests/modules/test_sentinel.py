"""Sentinel: the emergency state table, the RTT lockdown rule with its hysteresis, the latched
kill, every pre-trade limit, and the seqlocked RISK block. Pure core, caller-supplied clock."""

from __future__ import annotations

import itertools
import tracemalloc

import pytest

from vajra.modules.sentinel import (
    MAX_MODULES,
    RISK,
    TRANSITIONS,
    EmergencyState,
    IllegalTransition,
    Reason,
    RiskStateView,
    RiskWriter,
    RttKind,
    Sentinel,
    SentinelConfig,
    Verdict,
    read_risk,
    transition,
)

MS = 1_000_000
S = 1_000_000_000
N, D, L, K = (
    EmergencyState.NORMAL,
    EmergencyState.DEGRADED,
    EmergencyState.LOCKDOWN,
    EmergencyState.KILLED,
)
ORDER, CANCEL = RttKind.ORDER, RttKind.CANCEL
CFG = SentinelConfig()


def tick(s: Sentinel, now: int) -> tuple[EmergencyState, bool]:
    """One loop iteration with a live feed."""
    s.on_feed(now, now)
    return s.evaluate(now)


def ok_order(s: Sentinel) -> Verdict:
    """A small order well inside every limit."""
    return s.check_order(7, 1, 10, 100_00, 1_000_00, 0, 0)


def healthy_samples(s: Sentinel, t: int, n: int, kind: RttKind = ORDER, rtt: int = 2 * MS) -> int:
    """n healthy RTTs, one every 10 ms from t; returns the time after the last."""
    for _ in range(n):
        s.on_rtt(kind, rtt, t)
        t += 10 * MS
    return t


def locked_by_rtt(t0: int = S) -> tuple[Sentinel, int]:
    """A Sentinel locked down by three breach episodes; returns it and the lockdown time."""
    s = Sentinel(now_ns=0)
    t = healthy_samples(s, t0, 10)
    for _ in range(3):
        t += 50 * MS
        s.on_rtt(ORDER, 25 * MS, t)
    assert s.state is L
    assert tick(s, t) == (L, True)
    return s, t


# -- the state table ---------------------------------------------------------------------------


def test_every_legal_transition_and_its_cancel_all() -> None:
    assert len(TRANSITIONS) == 10
    for (frm, to), edge in TRANSITIONS.items():
        assert edge.reasons, (frm, to)
        for reason in edge.reasons:
            expect = to in (L, K) and frm is not K
            assert transition(frm, to, reason) is expect, (frm, to, reason)
    # only an operator reset leaves KILLED, and only into LOCKDOWN
    assert [k for k in TRANSITIONS if k[0] is K] == [(K, L)]
    assert TRANSITIONS[(K, L)].reasons == {Reason.RESET}
    # recoveries happen only for HEALTHY (or a standing warning when re-arming into DEGRADED)
    assert TRANSITIONS[(L, N)].reasons == {Reason.HEALTHY}
    assert TRANSITIONS[(D, N)].reasons == {Reason.HEALTHY}


def test_illegal_transitions_are_refused() -> None:
    for frm, to in itertools.product(EmergencyState, repeat=2):
        if (frm, to) not in TRANSITIONS:
            with pytest.raises(IllegalTransition):
                transition(frm, to, Reason.RESET)
    assert (K, N) not in TRANSITIONS and (K, D) not in TRANSITIONS
    for (frm, to), edge in TRANSITIONS.items():
        for reason in set(Reason) - edge.reasons:
            with pytest.raises(IllegalTransition):
                transition(frm, to, reason)


def test_an_illegal_move_latches_killed_and_raises() -> None:
    s = Sentinel(now_ns=0)
    with pytest.raises(IllegalTransition):
        s._move(N, Reason.HEALTHY, 5)  # NORMAL -> NORMAL is not a change
    assert (s.state, s.reason, s.since_ns) == (K, Reason.INTERNAL, 5)
    assert s.evaluate(6) == (K, True)
    with pytest.raises(IllegalTransition):
        s._move(N, Reason.HEALTHY, 7)
    assert s.state is K


def test_every_change_is_recorded() -> None:
    s, t = locked_by_rtt()
    hist = list(s.history)
    # no evaluate ran between the breaches: straight from NORMAL (on_rtt trips by itself)
    assert [(h.prev, h.state, h.reason) for h in hist] == [(N, L, Reason.RTT)]
    assert hist[-1].at_ns == t == s.since_ns == s.entered_ns[L]
    assert s.entered_reason[L] == Reason.RTT and s.last_trip_ns[Reason.RTT] == t
    assert tick(s, t + CFG.healthy_ns) == (N, False)
    assert [(h.prev, h.state, h.reason) for h in s.history][1:] == [(L, N, Reason.HEALTHY)]
    assert s.transitions == 2 and s.entered_ns[N] == t + CFG.healthy_ns


# -- the RTT lockdown rule, cancel-all and hysteresis -------------------------------------------


def test_lockdown_fires_on_an_injected_latency_spike_and_rearms_after_hysteresis() -> None:
    s = Sentinel(now_ns=0)
    t = healthy_samples(s, S, 30)
    assert tick(s, t) == (N, False)
    assert s.rtt_stats(ORDER).p99_ns == 2 * MS
    # the broker degrades: every ack now takes 25 ms; requotes 50 ms apart
    t += 50 * MS
    s.on_rtt(ORDER, 25 * MS, t)
    assert tick(s, t) == (D, False)  # one breach: a warning, orders still allowed
    assert ok_order(s) is Verdict.OK
    t += 50 * MS
    s.on_rtt(ORDER, 25 * MS, t)
    assert s.state is D
    t += 50 * MS
    s.on_rtt(ORDER, 25 * MS, t)  # the third episode trips at once, before any evaluate
    t_lock = t
    assert (s.state, s.reason, s.since_ns) == (L, Reason.RTT, t_lock)
    assert ok_order(s) is Verdict.LOCKDOWN
    assert s.check_cancel() is Verdict.OK
    # cancel-all demanded exactly once
    assert tick(s, t) == (L, True)
    for _ in range(5):
        t += 100 * MS
        assert tick(s, t) == (L, False)
    assert s.cancel_alls == 1
    # the cancel-all's acks come back healthy; no re-arm before the healthy period
    s.on_rtt(CANCEL, 3 * MS, t)
    assert s.rearm_at_ns() == t_lock + CFG.healthy_ns
    t = t_lock + CFG.healthy_ns - 1
    assert tick(s, t) == (L, False)
    assert ok_order(s) is Verdict.LOCKDOWN
    # re-arm after it
    t = t_lock + CFG.healthy_ns
    assert tick(s, t) == (N, False)
    assert s.reason is Reason.HEALTHY
    assert ok_order(s) is Verdict.OK
    # the old breaches no longer count: one new breach only degrades
    s.on_rtt(ORDER, 25 * MS, t + MS)
    assert tick(s, t + MS) == (D, False)


def test_a_slow_answer_during_lockdown_pushes_the_rearm_back() -> None:
    s, t_lock = locked_by_rtt()
    t_bad = t_lock + 10 * S
    s.on_rtt(CANCEL, 30 * MS, t_bad)  # a cancel of the cancel-all came back slow
    assert tick(s, t_lock + CFG.healthy_ns) == (L, False)
    assert s.rearm_at_ns() == t_bad + CFG.healthy_ns
    assert tick(s, t_bad + CFG.healthy_ns - 1) == (L, False)
    assert tick(s, t_bad + CFG.healthy_ns) == (N, False)


def test_a_stuck_request_locks_down_and_blocks_the_rearm() -> None:
    s = Sentinel(now_ns=0)
    t0 = S
    s.on_inflight(ORDER, t0)
    assert tick(s, t0 + 15 * MS) == (N, False)
    assert tick(s, t0 + 21 * MS) == (D, False)  # outstanding beyond the threshold: a warning
    t = t0 + CFG.rtt_hard_ns
    assert tick(s, t) == (L, True)  # the broker stopped answering: no sample ever came
    assert s.reason is Reason.RTT
    s.on_inflight(ORDER, 0)
    s.on_inflight(CANCEL, t)  # the cancel-all is not answered either
    t2 = t + CFG.healthy_ns + S
    assert tick(s, t2) == (L, False)
    s.on_inflight(CANCEL, 0)  # answered at last
    assert tick(s, t2 + CFG.healthy_ns - 1) == (L, False)
    assert tick(s, t2 + CFG.healthy_ns) == (N, False)


def test_one_hard_rtt_locks_down_at_once() -> None:
    s = Sentinel(now_ns=0)
    s.on_rtt(ORDER, CFG.rtt_hard_ns, S)
    assert (s.state, s.reason) == (L, Reason.RTT)


def test_one_pause_is_one_episode_not_a_lockdown() -> None:
    """Five acks held up by one 30 ms pause of ours arrive together: one episode."""
    s = Sentinel(now_ns=0)
    t = healthy_samples(s, S, 20)
    for i in range(5):
        s.on_rtt(ORDER, 30 * MS, t + i * 100_000)
    assert tick(s, t + MS) == (D, False)
    assert s.rtt_stats(ORDER).window_episodes == 1
    assert s.rtt_breaches[ORDER] == 5
    # two more pauses within the window: three episodes lock down
    s.on_rtt(ORDER, 30 * MS, t + 200 * MS)
    assert s.state is D
    s.on_rtt(ORDER, 30 * MS, t + 400 * MS)
    assert s.state is L


def test_a_sustained_fast_stream_of_slow_acks_still_locks_down() -> None:
    """Episodes are anchored at their first breach, so back-to-back slow acks cannot chain
    into one endless episode."""
    s = Sentinel(now_ns=0)
    t = S
    n = 0
    while s.state is not L:
        s.on_rtt(ORDER, 25 * MS, t)
        t += MS // 2
        n += 1
        assert n < 20
    assert t - S <= 3 * (CFG.rtt_burst_ns + MS)


def test_breaches_further_apart_than_the_window_do_not_add_up() -> None:
    s = Sentinel(now_ns=0)
    t = S
    for _ in range(10):
        t += 50 * MS
        s.on_rtt(ORDER, 25 * MS, t)
        assert tick(s, t) == (D, False)  # a warning, never a lockdown
        t = healthy_samples(s, t, CFG.rtt_window - 2)
        t += 50 * MS
        s.on_rtt(ORDER, 25 * MS, t)  # two episodes in the window: still a warning
        assert s.rtt_stats(ORDER).window_episodes == 2
        assert tick(s, t) == (D, False)
        t = healthy_samples(s, t, CFG.rtt_window)
    assert s.rtt_breaches[ORDER] == 20
    assert s.rtt_stats(ORDER).window_episodes == 0
    assert tick(s, t + CFG.degraded_clear_ns) == (N, False)


def test_cancel_rtt_has_its_own_reason() -> None:
    s = Sentinel(now_ns=0)
    for i in range(3):
        s.on_rtt(CANCEL, 21 * MS, S + i * 50 * MS)
    assert (s.state, s.reason) == (L, Reason.CANCEL_RTT)


def test_degraded_clears_after_its_dwell() -> None:
    s = Sentinel(now_ns=0)
    s.on_inflight(ORDER, S)
    assert tick(s, S + 30 * MS) == (D, False)
    s.on_inflight(ORDER, 0)
    t = S + 30 * MS
    assert tick(s, t + CFG.degraded_clear_ns - 1) == (D, False)
    assert tick(s, t + CFG.degraded_clear_ns) == (N, False)


def test_rtt_statistics() -> None:
    s = Sentinel(SentinelConfig(rtt_stats_samples=32), now_ns=0)
    for i in range(1, 101):  # 1..100 ms; the ring keeps the last 32: 69..100
        s.on_rtt(CANCEL, i * 100_000, S + i)
    st = s.rtt_stats(CANCEL)
    assert (st.last_ns, st.samples, st.count, st.max_ns) == (10 * MS, 32, 100, 10 * MS)
    assert st.p50_ns == 84 * 100_000  # nearest rank: the 16th of 69..100
    assert st.p99_ns == 100 * 100_000
    assert s.rtt_percentile(CANCEL, 1.0) == 10 * MS
    assert s.rtt_percentile(ORDER, 0.5) == 0  # no samples
    assert st.breaches == 0 and s.rtt_stats(ORDER).count == 0


# -- KILLED is latched --------------------------------------------------------------------------


def test_killed_is_latched_until_an_explicit_reset() -> None:
    s = Sentinel(now_ns=0)
    t = healthy_samples(s, S, 5)
    s.on_kill_flag(t, seq=4)
    assert (s.state, s.reason, s.kill_seq) == (K, Reason.KILL_FLAG, 4)
    assert tick(s, t) == (K, True)
    assert ok_order(s) is Verdict.KILLED
    assert s.check_cancel() is Verdict.OK
    # perfect health for a long time changes nothing
    for i in range(1, 10):
        t2 = t + i * CFG.healthy_ns
        s.on_rtt(ORDER, MS, t2)
        assert tick(s, t2) == (K, False)
    s.halt(t2)
    s.resume(t2)
    assert s.state is K
    # a reset is refused while the kill word is still set
    assert not s.reset(t2, kill_word=4)
    assert s.state is K
    # accepted once the monitor has cleared it: LOCKDOWN, no second cancel-all
    assert s.reset(t2, kill_word=0)
    assert (s.state, s.reason, s.kill_seq) == (L, Reason.RESET, 0)
    assert tick(s, t2) == (L, False)
    assert ok_order(s) is Verdict.LOCKDOWN
    # and it re-arms through the usual health check
    assert tick(s, t2 + CFG.healthy_ns - 1) == (L, False)
    assert tick(s, t2 + CFG.healthy_ns) == (N, False)
    assert not s.reset(t2, kill_word=0)  # nothing to reset


def test_kill_flag_beats_everything_in_the_pre_trade_check() -> None:
    s = Sentinel(now_ns=0)
    assert s.check_order(7, 1, 1, 100, 100, 0, 0, kill=9, now_ns=S) is Verdict.KILLED
    assert (s.state, s.since_ns, s.kill_seq) == (K, S, 9)
    assert tick(s, S) == (K, True)
    # a lockdown followed by a kill demands the cancel-all again (a partial one is retried)
    s2, t = locked_by_rtt()
    s2.on_kill_flag(t + 1)
    assert tick(s2, t + 1) == (K, True)
    assert tick(s2, t + 2) == (K, False)
    assert s2.cancel_alls == 2


def test_operator_kill_halt_and_resume() -> None:
    s = Sentinel(now_ns=0)
    s.halt(S)
    assert (s.state, s.reason) == (L, Reason.MANUAL)
    assert tick(s, S) == (L, True)
    assert tick(s, S + 10 * CFG.healthy_ns) == (L, False)  # a halt never re-arms by itself
    t = S + 10 * CFG.healthy_ns
    s.resume(t)
    assert tick(s, t + CFG.healthy_ns - 1) == (L, False)
    assert tick(s, t + CFG.healthy_ns) == (N, False)
    s.kill(t + CFG.healthy_ns)
    assert (s.state, s.reason) == (K, Reason.MANUAL)


# -- the other watchdogs -------------------------------------------------------------------------


def test_daily_loss_refuses_then_latches_kill() -> None:
    s = Sentinel(now_ns=0)
    s.on_pnl(-int(0.8 * CFG.daily_loss_limit))
    assert tick(s, S) == (D, False)
    assert s.reason is Reason.DAILY_LOSS
    assert ok_order(s) is Verdict.OK
    s.on_pnl(-CFG.daily_loss_limit)
    assert ok_order(s) is Verdict.DAILY_LOSS  # refused before any evaluate
    assert tick(s, S + 1) == (K, True)
    assert s.reason is Reason.DAILY_LOSS
    assert not s.reset(S + 2)  # the loss still stands
    s.new_day()
    assert s.reset(S + 2)
    assert s.state is L


def test_otr_watchdog_with_hysteresis() -> None:
    s = Sentinel(now_ns=0)
    s.on_otr(0.85 * CFG.otr_ceiling)
    assert tick(s, S) == (D, False)
    assert s.reason is Reason.OTR
    s.on_otr(CFG.otr_ceiling)
    assert tick(s, 2 * S) == (L, True)
    assert s.reason is Reason.OTR
    s.on_otr(0.9 * CFG.otr_ceiling)  # below the ceiling but above the warn level: stays locked
    assert tick(s, 2 * S + 5 * CFG.healthy_ns) == (L, False)
    t = 2 * S + 5 * CFG.healthy_ns
    s.on_otr(0.5 * CFG.otr_ceiling)
    assert tick(s, t + CFG.healthy_ns - 1) == (L, False)
    assert tick(s, t + CFG.healthy_ns) == (N, False)


def test_feed_staleness() -> None:
    s = Sentinel(now_ns=0)
    assert s.evaluate(CFG.feed_stale_ns) == (N, False)  # the grace counts from the start
    assert s.evaluate(CFG.feed_stale_ns + 1) == (L, True)  # a feed that never delivered
    assert s.reason is Reason.FEED_STALE
    t = CFG.feed_stale_ns + 1
    assert tick(s, t + CFG.healthy_ns - 1) == (L, False)
    assert tick(s, t + CFG.healthy_ns) == (N, False)
    s.on_feed(t + CFG.healthy_ns, t + CFG.healthy_ns - 5)  # an older event does not go back
    assert s.feed_last_ns == t + CFG.healthy_ns


def test_module_heartbeats() -> None:
    s = Sentinel(now_ns=0)
    s.heartbeat(3, S)
    s.heartbeat(5, S)
    assert tick(s, S + CFG.heartbeat_timeout_ns) == (N, False)
    s.heartbeat(5, S + CFG.heartbeat_timeout_ns)
    assert tick(s, S + CFG.heartbeat_timeout_ns + 1) == (L, True)
    assert (s.reason, s.heartbeat_stale, s.heartbeat_watched) == (
        Reason.HEARTBEAT,
        1 << 3,
        1 << 3 | 1 << 5,
    )
    s.unwatch(3)
    s.unwatch(5)
    t = S + CFG.heartbeat_timeout_ns + 1
    assert tick(s, t + CFG.healthy_ns) == (N, False)
    with pytest.raises(ValueError, match="module_id"):
        s.heartbeat(MAX_MODULES, t)


def test_a_position_over_the_limit_degrades() -> None:
    s = Sentinel(now_ns=0)
    s.on_position(7, CFG.max_position + 5)
    s.on_position(8, -CFG.max_position)  # at the limit: fine
    assert s.positions_over == 1
    assert tick(s, S) == (D, False)
    assert s.reason is Reason.POSITION
    s.on_position(7, CFG.max_position)
    assert s.positions_over == 0
    assert tick(s, S + CFG.degraded_clear_ns) == (N, False)


# -- the pre-trade check ------------------------------------------------------------------------


def test_each_pre_trade_limit() -> None:
    s = Sentinel(now_ns=0)
    c = s.check_order
    lim_n, lim_o, lim_p = CFG.max_notional_per_order, CFG.max_open_orders, CFG.max_position
    assert c(7, 1, 10, 100, lim_n, lim_o - 1, lim_p - 10) is Verdict.OK  # every limit at its edge
    assert c(7, 1, 10, 100, lim_n + 1, 0, 0) is Verdict.NOTIONAL
    assert c(7, 1, 10, 100, 1000, lim_o, 0) is Verdict.OPEN_ORDERS
    assert c(7, 1, 10, 100, 1000, 0, lim_p - 9) is Verdict.POSITION  # the order included
    assert c(7, -1, 10, 100, 1000, 0, -(lim_p - 9)) is Verdict.POSITION  # short side too
    assert c(7, -1, 10, 100, 1000, 0, lim_p - 9) is Verdict.OK
    # over the limit already (fills overshot): reducing passes, adding or flipping does not
    assert c(7, -1, 10, 100, 1000, 0, lim_p + 50) is Verdict.OK
    assert c(7, 1, 10, 100, 1000, 0, lim_p + 50) is Verdict.POSITION
    assert c(7, -1, 2 * lim_p + 200, 100, 1000, 0, lim_p + 50) is Verdict.POSITION
    for bad in ((0, 100, 1000, 1), (10, 0, 1000, 1), (10, 100, 0, 1), (10, 100, 1000, 0)):
        qty, price, notional, side = bad
        assert c(7, side, qty, price, notional, 0, 0) is Verdict.INVALID
    s.on_pnl(-CFG.daily_loss_limit - 1)
    assert c(7, 1, 10, 100, 1000, 0, 0) is Verdict.DAILY_LOSS
    assert s.checks == 14
    assert s.refused[Verdict.POSITION] == 4 and s.refused[Verdict.INVALID] == 4
    assert s.refused[Verdict.OK] == 0


def test_cancels_are_always_allowed() -> None:
    s = Sentinel(now_ns=0)
    states = []
    for step in range(4):
        if step == 1:
            s.on_otr(0.9 * CFG.otr_ceiling)
        elif step == 2:
            s.halt(S)
        elif step == 3:
            s.on_kill_flag(S)
        s.evaluate(S)
        states.append(s.state)
        assert s.check_cancel() is Verdict.OK
    assert states == [N, D, L, K]


def test_hot_paths_do_not_allocate() -> None:
    s = Sentinel(now_ns=0)
    assert s.evaluate(1) is s.evaluate(2)  # preallocated results
    for i in range(200):
        ok_order(s)
        s.on_rtt(ORDER, MS, i)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(10_000):
            s.check_order(7, 1, 10, 100, 1000, 3, 40)
            s.on_rtt(ORDER, MS + (i & 7), S + i)
            s.evaluate(S + i)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 1024


# -- shared memory ------------------------------------------------------------------------------


def test_the_seqlocked_block_round_trips() -> None:
    s, t = locked_by_rtt()
    s.on_pnl(-12_345)
    s.on_otr(12.5)
    s.heartbeat(2, t)
    s.on_inflight(CANCEL, t - 7 * MS)
    ok_order(s)
    buf = bytearray(64 + RISK.size)
    view = memoryview(buf)
    w = RiskWriter(view, 64)
    w.publish(s, t)
    r = read_risk(buf, 64)
    assert set(r) == set(RISK.names()[1:])
    assert (r["state"], r["reason"], r["since_ns"]) == (L, Reason.RTT, t)
    assert isinstance(r["state"], EmergencyState) and isinstance(r["reason"], Reason)
    assert r["lockdown_reason"] == Reason.RTT and r["lockdown_entered_ns"] == t
    assert r["degraded_reason"] == 0 and r["killed_entered_ns"] == 0
    assert r["trip_rtt_ns"] == t and r["trip_kill_flag_ns"] == 0
    assert r["rearm_at_ns"] == t + CFG.healthy_ns
    assert r["cancel_alls"] == 1 and r["transitions"] == 1 and r["publish_ns"] == t
    st = s.rtt_stats(ORDER)
    assert (r["order_rtt_last_ns"], r["order_rtt_p50_ns"], r["order_rtt_p99_ns"]) == (
        25 * MS,
        2 * MS,
        25 * MS,
    )
    assert r["order_rtt_count"] == st.count == 13 and r["order_rtt_breaches"] == 3
    assert r["order_rtt_episodes"] == 3 and r["cancel_rtt_count"] == 0
    assert r["cancel_inflight_age_ns"] == 7 * MS
    assert r["pnl"] == -12_345 and r["otr"] == 12.5
    assert r["heartbeat_watched"] == 4 and r["checks"] == 1 and r["refused_lockdown"] == 1
    for name in ("rtt_lockdown_ns", "rtt_window", "max_notional_per_order", "daily_loss_limit"):
        assert r[f"cfg_{name}"] == getattr(CFG, name)
    assert r["cfg_otr_ceiling"] == CFG.otr_ceiling and r["cfg_warn_fraction"] == 0.8
    # the one-word view for other threads
    sv = RiskStateView(view, 64)
    assert sv.state() == L and not sv.ok()
    # republish after the kill: the block follows
    s.on_kill_flag(t + 1, seq=3)
    w.publish(s, t + 1)
    r = read_risk(buf, 64)
    assert (r["state"], r["reason"], r["kill_seq"], r["rearm_at_ns"]) == (K, Reason.KILL_FLAG, 3, 0)
    assert sv.state() == K
    sv.close()
    w.close()
    view.release()


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rtt_lockdown_ns", 0),
        ("rtt_window", 0),
        ("rtt_breach_k", 0),
        ("rtt_breach_k", 21),
        ("rtt_burst_ns", -1),
        ("rtt_hard_ns", 20 * MS),
        ("rtt_degraded_ns", 20 * MS),
        ("rtt_stats_samples", 100),
        ("rtt_stats_samples", 16),
        ("healthy_ns", 0),
        ("degraded_clear_ns", -1),
        ("warn_fraction", 1.0),
        ("warn_fraction", 0.0),
        ("max_position", 0),
        ("max_notional_per_order", -5),
        ("max_open_orders", 0),
        ("daily_loss_limit", 0),
        ("feed_stale_ns", 0),
        ("heartbeat_timeout_ns", 0),
        ("otr_ceiling", 0.0),
        ("otr_ceiling", float("inf")),
        ("max_position", True),
        ("max_position", "10"),
    ],
)
def test_config_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"SentinelConfig.{field} "):
        SentinelConfig(**{field: value})  # type: ignore[arg-type]


def test_config_defaults_are_valid_and_frozen() -> None:
    cfg = SentinelConfig()
    assert cfg.rtt_lockdown_ns == 20 * MS
    with pytest.raises(AttributeError):
        cfg.rtt_lockdown_ns = 1  # type: ignore[misc]
    SentinelConfig(rtt_window=1, rtt_breach_k=1, rtt_stats_samples=1, rtt_burst_ns=0)
