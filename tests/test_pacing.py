"""Limiter, pause gate and control law on a fake clock: exact times, no sleeping."""

from __future__ import annotations

import math
import tracemalloc

import anyio
import pytest
from fakeclock import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkstop.pacing import Pacer, PauseGate, RateLimiter, ThrottleControl

pytestmark = pytest.mark.anyio


# -- RateLimiter (pure) -----------------------------------------------------------------


def test_limiter_spaces_starts_one_interval_apart() -> None:
    limiter = RateLimiter(rate=5, burst=1)
    assert [limiter.reserve(0.0) for _ in range(4)] == pytest.approx([0.0, 0.2, 0.4, 0.6])


def test_limiter_allows_burst_then_one_per_interval() -> None:
    limiter = RateLimiter(rate=10, burst=3)
    slots = [limiter.reserve(0.0) for _ in range(5)]
    assert slots == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])


def test_limiter_refills_burst_after_idle() -> None:
    limiter = RateLimiter(rate=10, burst=2)
    assert [limiter.reserve(0.0) for _ in range(2)] == [0.0, 0.0]
    # idle for a second: two back-to-back starts again, then spacing
    assert [limiter.reserve(1.0) for _ in range(3)] == pytest.approx([1.0, 1.0, 1.1])


def test_limiter_rate_change_applies_to_later_reservations() -> None:
    limiter = RateLimiter(rate=10, burst=1)
    assert limiter.reserve(0.0) == 0.0
    limiter.set_rate(2)
    assert limiter.reserve(0.0) == pytest.approx(0.1)
    assert limiter.reserve(0.0) == pytest.approx(0.6)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (math.inf, 1), (1, 0)])
def test_limiter_rejects_bad_settings(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        RateLimiter(rate=rate, burst=burst)


@settings(max_examples=120, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=500),
    burst=st.integers(min_value=1, max_value=20),
    arrivals=st.lists(st.floats(min_value=0, max_value=20), min_size=1, max_size=300),
    window=st.floats(min_value=0.01, max_value=5),
)
def test_limiter_never_exceeds_rate_times_window_plus_burst(
    rate: float, burst: int, arrivals: list[float], window: float
) -> None:
    limiter = RateLimiter(rate=rate, burst=burst)
    slots = []
    for now in sorted(arrivals):
        slot = limiter.reserve(max(now, slots[-1] if slots else 0.0))
        slots.append(slot)
    bound = rate * window + burst
    # every window [s, s + window) that starts at a slot holds at most the bound
    for i, start in enumerate(slots):
        inside = sum(1 for s in slots[i:] if s < start + window - 1e-9)
        assert inside <= bound + 1e-6


# -- PauseGate -----------------------------------------------------------------------------


async def test_pause_gate_waits_until_pause_ends() -> None:
    clock = FakeClock()
    gate = PauseGate(clock)
    gate.pause_until(1.5)
    async with clock.autojump():
        await gate.wait()
    assert clock.now() == 1.5


async def test_pause_gate_extension_is_honoured_by_waiters() -> None:
    clock = FakeClock()
    gate = PauseGate(clock)
    gate.pause_until(1.0)
    woke: list[float] = []

    async def waiter() -> None:
        await gate.wait()
        woke.append(clock.now())

    async with clock.autojump(), anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await clock.sleep(0.5)
        gate.pause_until(2.0)  # a second throttle while paused
    assert woke == [2.0]


def test_pause_gate_shorter_pause_never_shortens() -> None:
    gate = PauseGate(FakeClock())
    gate.pause_until(3.0)
    gate.pause_until(1.0)
    assert gate.until == 3.0
    assert gate.pauses == 1


# -- ThrottleControl (the control law) -----------------------------------------------------


def test_control_cuts_to_target_share_of_accepted_rate() -> None:
    control = ThrottleControl(1000, target=0.95, decrease=0.7)
    for i in range(200):  # 200 accepted starts in the last second
        control.on_accepted(i * 0.001, i * 0.001)
    pause = control.on_throttled(started_at=0.2, now=0.2, retry_after=None)
    assert control.rate == pytest.approx(190.0)
    assert pause == pytest.approx(0.1)
    assert control.cuts == 1


def test_control_falls_back_to_multiplicative_cut_without_sample() -> None:
    control = ThrottleControl(100, decrease=0.7, min_sample=5)
    control.on_throttled(started_at=0.0, now=0.0, retry_after=None)
    assert control.rate == pytest.approx(70.0)


def test_control_ignores_answers_to_requests_sent_before_the_cut() -> None:
    control = ThrottleControl(100, decrease=0.5, hold=0.0)
    control.on_throttled(started_at=0.0, now=1.0, retry_after=None)
    assert control.rate == 50.0
    control.on_throttled(started_at=0.9, now=1.01, retry_after=None)  # sent at the old rate
    assert control.rate == 50.0
    control.on_accepted(started_at=1.01, now=1.02)  # also adds 0.05 × 50 / 50 = 0.05
    control.on_throttled(started_at=1.02, now=1.03, retry_after=None)  # sent at the new rate
    assert control.rate == pytest.approx(0.5 * 50.05)


def test_control_holds_one_cut_per_hold_period() -> None:
    control = ThrottleControl(100, decrease=0.5, hold=1.0)
    control.on_throttled(started_at=0.0, now=0.0, retry_after=None)
    control.on_throttled(started_at=0.5, now=0.5, retry_after=None)
    assert control.rate == 50.0
    control.on_accepted(started_at=0.6, now=0.6)  # also adds 0.05 × 50 / 50 = 0.05
    control.on_throttled(started_at=1.0, now=1.0, retry_after=None)
    assert control.rate == pytest.approx(0.5 * 50.05)


def test_control_pause_grows_with_consecutive_throttles_and_resets() -> None:
    control = ThrottleControl(100, pause_base=0.1, pause_growth=2.0, pause_max=0.5)
    pauses = [control.on_throttled(started_at=t, now=t, retry_after=None) for t in range(5)]
    assert pauses == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    control.on_accepted(5.0, 5.0)
    assert control.on_throttled(started_at=5.0, now=5.0, retry_after=None) == pytest.approx(0.1)


def test_control_honours_retry_after_as_pause() -> None:
    control = ThrottleControl(100)
    assert control.on_throttled(started_at=0.0, now=0.0, retry_after=7.0) == 7.0


def test_control_additive_increase_is_scale_free_and_capped() -> None:
    control = ThrottleControl(100, decrease=0.5, increase=0.1, min_sample=10**9)
    control.on_throttled(started_at=0.0, now=0.0, retry_after=None)
    assert control.rate == 50.0
    # 50 successes (one second at 50/s) add increase × rate_at_cut = 5 requests/s in all
    for i in range(50):
        control.on_accepted(0.1 + i * 0.02, 0.1 + i * 0.02)
    assert control.rate == pytest.approx(55.0, rel=0.01)
    for i in range(10_000):
        control.on_accepted(2.0 + i * 0.001, 2.0 + i * 0.001)
    assert control.rate == 100.0


def test_control_never_below_min_rate() -> None:
    control = ThrottleControl(10, min_rate=1.0, decrease=0.1, hold=0.0)
    for t in range(5):
        control.on_throttled(started_at=float(t), now=float(t), retry_after=None)
    assert control.rate == 1.0


# -- Pacer (together, on the fake clock) ---------------------------------------------------


async def test_pacer_start_times_are_exact() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=5, burst=1, clock=clock)
    starts: list[float] = []

    async def worker() -> None:
        for _ in range(2):
            starts.append(await pacer.acquire())

    async with clock.autojump(), anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(worker)
    assert sorted(starts) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


async def test_pacer_throttle_pauses_every_worker() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=10, burst=1, clock=clock, control=ThrottleControl(10, pause_base=1.0))
    starts: list[float] = []
    first = await pacer.acquire()
    pacer.on_throttled(first)  # pause everyone until t = 1.0

    async def worker() -> None:
        starts.append(await pacer.acquire())

    async with clock.autojump(), anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(worker)
    # the control law cut the rate from 10 to 7/s (no sample yet): spacing 1/7 s
    assert sorted(starts) == pytest.approx([1.0, 1.0 + 1 / 7, 1.0 + 2 / 7])


async def test_pacer_pause_not_ended_by_a_success() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=100, clock=clock, control=ThrottleControl(100, pause_base=2.0))
    started = await pacer.acquire()
    pacer.on_throttled(started)
    pacer.on_accepted(started)  # an unrelated request finishes well
    async with clock.autojump():
        assert await pacer.acquire() == 2.0


async def test_fixed_rate_pacer_does_not_change_rate() -> None:
    pacer = Pacer(rate=50, adaptive=False, clock=FakeClock())
    pacer.on_throttled(0.0)
    assert pacer.rate == 50
    assert pacer.throttled == 1


async def test_one_pacer_shared_by_two_runs_bounds_their_sum() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=4, clock=clock)
    starts: list[float] = []

    async def run(n: int) -> None:
        for _ in range(n):
            starts.append(await pacer.acquire())

    async with clock.autojump(), anyio.create_task_group() as tg:
        tg.start_soon(run, 3)
        tg.start_soon(run, 3)
    assert sorted(starts) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.25])


def test_control_prefers_the_measured_rate_over_a_deeper_multiplicative_cut() -> None:
    control = ThrottleControl(210, target=0.95, decrease=0.5)
    for i in range(200):
        control.on_accepted(i * 0.005, i * 0.005)
    control.on_throttled(started_at=0.999, now=0.999, retry_after=None)
    assert control.rate == pytest.approx(0.95 * 200)  # not 0.5 × 210


def test_control_does_not_cut_again_until_the_server_accepts_something() -> None:
    # A per-minute gateway: its window is closed for the rest of the minute, and every
    # request is refused whatever the rate. One cut; then pauses, not further cuts.
    control = ThrottleControl(20, target=0.95, decrease=0.7, hold=1.0)
    for i in range(1, 101):
        control.on_accepted(i * 0.05, i * 0.05)  # 20/s for 5 s: the minute's 100
    control.on_throttled(started_at=5.0, now=5.0, retry_after=None)
    assert control.rate == pytest.approx(0.95 * 20)
    for t in range(6, 60, 2):  # the window stays closed: every probe is refused
        control.on_throttled(started_at=float(t), now=float(t), retry_after=None)
    assert (control.rate, control.cuts) == (pytest.approx(19.0), 1)
    control.on_accepted(60.0, 60.0)  # the next window opens
    control.on_throttled(started_at=65.0, now=65.0, retry_after=None)
    assert control.cuts == 2


def test_control_uses_multiplicative_cut_when_measure_would_not_lower_rate() -> None:
    control = ThrottleControl(100, target=0.95, decrease=0.5)
    for i in range(150):  # a burst accepted more than the current rate
        control.on_accepted(i * 0.001, i * 0.001)
    control.on_throttled(started_at=0.5, now=0.5, retry_after=None)
    assert control.rate == 50.0


def test_try_acquire_takes_a_free_slot_and_never_reserves_a_future_one() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=2, burst=1, clock=clock)
    assert pacer.try_acquire() == 0.0
    assert pacer.try_acquire() is None  # next slot is at 0.5
    assert pacer.limiter.tat == 0.5  # the refusal reserved nothing
    clock.advance(0.5)
    assert pacer.try_acquire() == 0.5


def test_try_acquire_refuses_during_a_pause() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=100, clock=clock)
    pacer.gate.pause_until(1.0)
    assert pacer.try_acquire() is None


def test_control_pause_ignores_answers_to_calls_in_flight_when_the_pause_began() -> None:
    control = ThrottleControl(100, pause_base=0.1, pause_growth=2.0, pause_max=5.0)
    assert control.on_throttled(started_at=0.0, now=1.0, retry_after=None) == pytest.approx(0.1)
    # seven more calls sent before the pause began come back throttled: one signal, not many
    for _ in range(7):
        assert control.on_throttled(started_at=0.5, now=1.01, retry_after=None) == pytest.approx(
            0.1
        )
    # a probe sent after the pause began is throttled too: now the pause grows
    assert control.on_throttled(started_at=1.1, now=1.11, retry_after=None) == pytest.approx(0.2)


# -- backpressure: a spent retry budget (rule 5) and failures (rule 4) -------------------------


def test_overload_cuts_the_rate_once_per_hold_for_requests_sent_after_the_cut() -> None:
    control = ThrottleControl(10, decrease=0.7, hold=1.0)
    assert control.on_overloaded(started_at=0.0, now=0.5) is True
    assert control.rate == pytest.approx(7.0)
    assert control.on_overloaded(started_at=0.4, now=2.0) is False  # sent under the old rate
    assert control.on_overloaded(started_at=0.6, now=1.0) is False  # within hold of the cut
    assert control.on_overloaded(started_at=0.6, now=1.5) is True
    assert (control.rate, control.cuts) == (pytest.approx(4.9), 2)


def test_overload_never_cuts_below_the_floor() -> None:
    control = ThrottleControl(1.0, min_rate=0.5, decrease=0.1, hold=1.0)
    for t in range(5):
        control.on_overloaded(started_at=float(t), now=float(t))
    assert control.rate == 0.5


def test_failures_never_raise_the_rate_but_successes_do() -> None:
    control = ThrottleControl(10, decrease=0.7, increase=0.05)
    control.on_overloaded(started_at=0.0, now=0.0)  # 7.0
    for i in range(100):
        control.on_failed(0.1 + i * 0.01, 0.1 + i * 0.01)
    assert control.rate == pytest.approx(7.0)
    control.on_accepted(1.2, 1.2)  # + 0.05 × 7 / 7
    assert control.rate == pytest.approx(7.05)


def test_accepted_last_second_counts_the_starts_after_now_minus_one_second() -> None:
    control = ThrottleControl(1e9)
    step = 1 / 2048  # exact in binary: no start falls on a boundary by rounding
    for i in range(5 * 2048):  # 2,048 a second for 5 s, the last at 5 - step
        control.on_accepted(started_at=i * step, now=i * step)
    # a start exactly a second old is out: (now - 1, now] is the last second
    assert control.accepted_last_second(5 - step) == 2048
    assert control.accepted_last_second(5.5) == 1024 - 1
    assert control.accepted_last_second(7.0) == 0


def test_a_second_of_accepted_starts_at_an_unlimited_rate_costs_little_memory() -> None:
    control = ThrottleControl(1e9)
    count = 20_000  # 100,000 a second: all within one second
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            start = i * 1e-5  # a new float, as the clock gives each request
            control.on_accepted(start, start)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert control.accepted_last_second((count - 1) * 1e-5) == count
    assert held / count <= 12  # a double each, and some room to grow


def test_a_failure_is_let_through_by_the_gateway_and_closes_a_throttling_streak() -> None:
    control = ThrottleControl(100, pause_base=0.1, pause_growth=2.0, pause_max=5.0)
    control.on_throttled(started_at=0.0, now=0.0, retry_after=None)
    control.on_throttled(started_at=0.1, now=0.1, retry_after=None)
    assert control.consecutive_throttles == 2
    control.on_failed(0.2, 0.2)
    assert control.consecutive_throttles == 0
    assert control.accepted_last_second(0.2) == 1


def test_pacer_slow_down_lowers_the_limiter_rate() -> None:
    pacer = Pacer(rate=10, clock=FakeClock())
    assert pacer.slow_down(0.0) is True
    assert pacer.rate == pytest.approx(7.0)
    assert pacer.slow_down(0.0) is False  # within hold of that cut


def test_fixed_rate_pacer_is_not_slowed_down() -> None:
    pacer = Pacer(rate=10, adaptive=False, clock=FakeClock())
    assert pacer.slow_down(0.0) is False
    assert pacer.rate == 10


# -- acquire with a deadline ----------------------------------------------------------------


async def test_acquire_with_a_deadline_gives_up_at_once_on_a_pause_that_ends_later() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=10, clock=clock)
    pacer.on_throttled(0.0, retry_after=60.0)  # everyone paused until t = 60
    async with clock.autojump():
        assert await pacer.acquire(10.0) is None
        assert clock.now() == 0.0  # it did not wait
        assert await pacer.acquire(61.0) == 60.0


async def test_acquire_with_a_deadline_gives_up_when_a_pause_is_extended_past_it() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=10, clock=clock, control=ThrottleControl(10, pause_base=5, pause_max=5))
    pacer.on_throttled(0.0)  # paused until t = 5
    got: list[float | None] = []

    async def acquire() -> None:
        got.append(await pacer.acquire(10.0))

    async with clock.autojump(), anyio.create_task_group() as tg:
        tg.start_soon(acquire)
        await clock.sleep(3.0)
        pacer.gate.pause_until(63.0)  # another answer extends the pause past the deadline
    assert (got, clock.now()) == ([None], 5.0)  # woke at the old end, then gave up


async def test_acquire_with_a_deadline_reserves_no_slot_it_cannot_use() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=1, clock=clock)
    async with clock.autojump():
        assert await pacer.acquire(0.5) == 0.0
        assert await pacer.acquire(0.5) is None  # the next slot is at 1.0
        assert pacer.limiter.tat == 1.0
        assert clock.now() == 0.0


def test_the_accepted_starts_kept_stay_within_a_second_and_a_few_thousand() -> None:
    # At 10 000 answers a second for 30 s the control keeps what the last second needs, and
    # forgets the rest now and then (every 4096 answers), not the 300 000 start times.
    control = ThrottleControl(1e9)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(300_000):
            control.on_accepted(i / 10_000, i / 10_000)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert control.accepted_last_second(29.99995) == 10_000
    assert kept < 3 * (10_000 + 4096) * 8  # doubles, a second's and the slack's; 2.4 MB if all
