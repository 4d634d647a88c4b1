"""The timing wheel against a sorted list of deadlines (hypothesis): nothing fires early, nothing
due is missed, cancelled and replaced timers never fire."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vajra.trading.timers import TimerWheel

TICK = 1_000


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["schedule", "cancel", "advance"]),
            st.integers(0, 30),  # key
            st.integers(0, 40 * TICK),  # delay or time step (beyond one 16-slot rotation)
        ),
        max_size=120,
    )
)
def test_wheel_matches_a_model(ops: list[tuple[str, int, int]]) -> None:
    now = 5 * TICK + 17
    w = TimerWheel(now, tick_ns=TICK, slots=16)
    model: dict[int, int] = {}
    out: list[tuple[int, int]] = []
    for op, key, x in ops:
        if op == "schedule":
            w.schedule(key, now + x)
            model[key] = now + x
        elif op == "cancel":
            assert w.cancel(key) == (key in model)
            model.pop(key, None)
        else:
            now += x
            out.clear()
            w.expire(now, out)
            due = {k: d for k, d in model.items() if d <= now}
            assert dict(out) == due and len(out) == len(due)  # each due timer exactly once
            for k in due:
                del model[k]
        assert len(w) == len(model)
        assert all(w.pending(k) for k in model)
    out.clear()
    w.expire(now + 100 * TICK, out)
    assert dict(out) == model


def test_lateness_is_bounded_by_the_polling_period() -> None:
    w = TimerWheel(0, tick_ns=250_000)
    for i in range(1000):
        w.schedule(i, 200_000_000 + i * 37_000)
    out: list[tuple[int, int]] = []
    late = []
    t = 0
    while len(w):
        t += 100_000  # the caller polls every 100 µs
        out.clear()
        w.expire(t, out)
        late += [t - d for _, d in out]
    assert len(late) == 1000 and min(late) >= 0 and max(late) < 100_000
