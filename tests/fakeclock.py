"""A virtual clock for tests: ``sleep`` moves time instead of waiting (like trio's MockClock).

With ``autojump`` running (``async with clock.autojump():``), whenever every task is blocked
the clock jumps to the earliest pending wake-up. Time-dependent code then runs in
microseconds and its timings are exact.

A sleep that is cancelled before its time is no wake-up: the clock never jumps to it.
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
    """Virtual time: :meth:`now` reads it, :meth:`sleep` waits for it, :meth:`advance` and
    :meth:`autojump` move it.

    Sleepers wait in a heap of ``(wake-up time, sequence number, event)``; a sleep cancelled
    before its time is noted by its number and dropped when it reaches the top of the heap.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._cancelled: set[int] = set()
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        seq = next(self._seq)
        heapq.heappush(self._sleepers, (self._now + seconds, seq, event))
        try:
            await event.wait()
        finally:
            if not event.is_set():  # cancelled while asleep: no longer a wake-up
                self._cancelled.add(seq)

    def advance(self, seconds: float) -> None:
        """Move time forward by hand, waking every sleeper that is due."""
        self._now += seconds
        self._wake_due()

    def _next_wakeup(self) -> float | None:
        """The earliest wake-up of a sleep still waiting, dropping cancelled ones on the way."""
        sleepers = self._sleepers
        while sleepers and sleepers[0][1] in self._cancelled:
            self._cancelled.discard(heapq.heappop(sleepers)[1])
        return sleepers[0][0] if sleepers else None

    def _wake_due(self) -> None:
        while (when := self._next_wakeup()) is not None and when <= self._now:
            _, _, event = heapq.heappop(self._sleepers)
            event.set()

    @asynccontextmanager
    async def autojump(self) -> AsyncIterator[FakeClock]:
        async def jumper() -> None:
            while True:
                await _all_other_tasks_blocked()
                when = self._next_wakeup()
                if when is not None:
                    self._now = max(self._now, when)
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
    """Like ``anyio.wait_all_tasks_blocked`` without its 0.1 s polling sleep (asyncio only).

    A task is blocked when it waits on a future that is not done. asyncio does not say so in
    public API; ``Task._fut_waiter`` is what anyio's own ``wait_all_tasks_blocked`` reads too.
    """
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
