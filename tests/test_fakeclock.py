"""The fake clock the time-dependent tests run on: it must jump only to real wake-ups."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from fakeclock import FakeClock

pytestmark = pytest.mark.anyio


async def test_autojump_never_jumps_to_a_sleeper_that_was_cancelled() -> None:
    clock = FakeClock()
    async with clock.autojump():
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.sleep, 1000.0)
            await anyio.lowlevel.checkpoint()  # the sleeper is asleep now
            tg.cancel_scope.cancel()
        # Every task waits on something outside the clock: nothing is due, so time stands.
        await anyio.sleep(0.01)

        assert clock.now() == 0.0
