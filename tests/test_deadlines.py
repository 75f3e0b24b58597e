"""One timer for the deadlines of many calls, on fake timers: exact times, no waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bulkstop.deadlines import CallDeadlines

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the deadlines cancel asyncio tasks (aiohttp runs on nothing else)


class FakeHandle:
    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTimers:
    """The loop's ``time`` and ``call_at``, with time moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.armed: list[FakeHandle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object], /) -> FakeHandle:
        handle = FakeHandle(when, callback)
        self.armed.append(handle)
        return handle

    def live(self) -> list[float]:
        """When the armed timers, not fired and not cancelled, are due."""
        return [h.when for h in self.armed if not h.cancelled]

    def fire(self) -> None:
        """Move time to the one armed timer and run it."""
        (handle,) = [h for h in self.armed if not h.cancelled]
        self.armed.remove(handle)
        self.now = handle.when
        handle.callback()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def call(deadlines: CallDeadlines, release: asyncio.Event) -> str:
    try:
        with deadlines.guard():
            await release.wait()
    except TimeoutError:
        return "timed out"
    return "answered"


async def one_unanswered_call(
    limit: float, now: float
) -> tuple[FakeTimers, CallDeadlines, asyncio.Task[str]]:
    """Fake timers at ``now``, their deadlines of ``limit`` seconds, and one call in flight
    that no answer ends."""
    timers = FakeTimers(now=now)
    deadlines = CallDeadlines(limit, asyncio.get_running_loop(), timers)
    task = asyncio.create_task(call(deadlines, asyncio.Event()))
    await settle()
    return timers, deadlines, task


async def test_calls_share_one_timer_armed_on_the_whole_second_after_the_first_deadline() -> None:
    timers = FakeTimers(now=100.3)
    deadlines = CallDeadlines(30.0, asyncio.get_running_loop(), timers)
    release = asyncio.Event()
    tasks = []
    for now in (100.3, 100.5, 100.9):
        timers.now = now
        tasks.append(asyncio.create_task(call(deadlines, release)))
        await settle()

    assert timers.live() == [131.0]  # one timer for three calls: ceil(100.3 + 30)
    assert deadlines.in_flight == 3
    release.set()
    assert await asyncio.gather(*tasks) == ["answered"] * 3
    assert deadlines.in_flight == 0


async def test_the_timer_ends_each_call_past_its_deadline_and_is_armed_for_the_next() -> None:
    timers = FakeTimers(now=100.3)
    deadlines = CallDeadlines(30.0, asyncio.get_running_loop(), timers)
    early, late = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(call(deadlines, early))
    await settle()
    timers.now = 130.5  # deadline 160.5: not due at 131
    second = asyncio.create_task(call(deadlines, late))
    await settle()

    timers.fire()  # at 131.0
    assert timers.now == 131.0
    assert await first == "timed out"
    assert not second.done()
    assert timers.live() == [161.0]  # armed again for the next: ceil(160.5)
    assert deadlines.in_flight == 1

    late.set()
    assert await second == "answered"


async def test_a_limit_under_five_seconds_is_kept_exactly() -> None:
    timers, _, task = await one_unanswered_call(0.25, now=7.0)

    assert timers.live() == [7.25]
    timers.fire()
    assert await task == "timed out"


async def test_a_call_that_answered_in_time_is_not_touched_when_the_timer_fires() -> None:
    timers = FakeTimers(now=0.0)
    deadlines = CallDeadlines(10.0, asyncio.get_running_loop(), timers)
    release = asyncio.Event()
    task = asyncio.create_task(call(deadlines, release))
    await settle()
    release.set()
    assert await task == "answered"

    timers.fire()  # at 10.0: nothing in flight, nothing armed again
    assert timers.live() == []
    assert deadlines.in_flight == 0
    # the next call arms a timer of its own
    timers.now = 12.0
    again = asyncio.create_task(call(deadlines, asyncio.Event()))
    await settle()
    assert timers.live() == [22.0]
    again.cancel()
    with pytest.raises(asyncio.CancelledError):
        await again


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    _, deadlines, task = await one_unanswered_call(10.0, now=0.0)

    task.cancel()  # a cancel scope, a Ctrl-C: not the timer's doing
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deadlines.in_flight == 0


async def test_a_cancellation_that_meets_the_deadline_is_still_a_cancellation() -> None:
    timers, _, task = await one_unanswered_call(10.0, now=0.0)

    timers.fire()  # the deadline passes...
    task.cancel()  # ...and someone else cancels the task before it runs again
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_close_disarms_the_timer() -> None:
    timers, deadlines, task = await one_unanswered_call(10.0, now=0.0)

    deadlines.close()
    assert timers.live() == []
    assert deadlines.in_flight == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout must be > 0"):
        CallDeadlines(0, asyncio.get_running_loop(), FakeTimers(now=0.0))

