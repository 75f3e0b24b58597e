"""A virtual clock for tests: ``sleep`` moves time instead of waiting (like trio's MockClock).

With ``autojump`` running (``async with clock.autojump():``), whenever every task is blocked
the clock jumps to the earliest pending wake-up. Time-dependent code then runs in
microseconds and its timings are exact.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel


class FakeClock:
    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), event))
        await event.wait()

    def advance(self, seconds: float) -> None:
        """Move time forward by hand, waking every sleeper that is due."""
        self._now += seconds
        self._wake_due()

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, event = heapq.heappop(self._sleepers)
            event.set()

    @asynccontextmanager
    async def autojump(self) -> AsyncIterator[FakeClock]:
        async def jumper() -> None:
            while True:
                await _all_other_tasks_blocked()
                if self._sleepers:
                    self._now = max(self._now, self._sleepers[0][0])
                    self._wake_due()
                else:
                    await anyio.sleep(0.001)  # nothing to wake: let real I/O progress

        async with anyio.create_task_group() as tg:
            tg.start_soon(jumper)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()


async def _all_other_tasks_blocked() -> None:
    """Like ``anyio.wait_all_tasks_blocked`` without its 0.1 s polling sleep (asyncio only)."""
    this = asyncio.current_task()
    while True:
        for task in asyncio.all_tasks():
            if task is this:
                continue
            waiter = getattr(task, "_fut_waiter", None)
            if waiter is None or waiter.done():
                break
        else:
            return
        await asyncio.sleep(0)
