"""Time, injected: every wait in bulkstop goes through a :class:`Clock`.

Production code uses :class:`MonotonicClock`; tests pass a fake clock whose ``sleep`` moves
virtual time (see ``tests/fakeclock.py``), so limiter, backoff and pause tests assert exact
times without sleeping.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, Protocol

import anyio

__all__ = ["Clock", "MonotonicClock", "utcnow"]


class Clock(Protocol):
    """A monotonic time source that can also wait."""

    def now(self) -> float:
        """Seconds on a monotonic scale (only differences matter)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (≤ 0 still yields to the event loop once)."""
        ...


class MonotonicClock:
    """The real clock: :func:`time.monotonic` and :func:`anyio.sleep`."""

    __slots__ = ()

    #: :func:`time.monotonic` itself, not a method around it: a run reads the clock several
    #: times a target, and the Python frame of a wrapper was most of each read's cost.
    now = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "MonotonicClock()"


#: ``utcnow()``: wall-clock time for report timestamps (never used for pacing). A partial of
#: ``datetime.now(UTC)``, called from C, rather than a function around it: every target is
#: stamped twice.
utcnow: Final[Callable[[], datetime]] = functools.partial(datetime.now, UTC)
