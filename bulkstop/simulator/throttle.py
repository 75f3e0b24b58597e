"""The server-side rate limit: fixed windows, shared by every client and every stop API.

:class:`FixedWindowThrottle` decides; :class:`ThrottleReply` says how a refusal looks in each
:class:`~bulkstop.simulator.config.ThrottleConfig` style. Time is passed in, never read here, so
tests drive the windows with explicit timestamps.
"""

from __future__ import annotations

import math
from email.utils import formatdate

from bulkstop.simulator.codes import APIG_THROTTLED, CB_TOO_MANY_REQUESTS, error_body
from bulkstop.simulator.config import ThrottleConfig

__all__ = ["FixedWindowThrottle", "ThrottleReply", "describe_window"]


class FixedWindowThrottle:
    """At most ``limit`` admitted requests in each window ``[start + k·W, start + (k+1)·W)``.

    Refused requests do not use up the window (a gateway counts what it lets through).

    Attributes:
        config: the limit, window and style.
        start: monotonic time at which window 0 begins.
    """

    __slots__ = ("_count", "_index", "config", "start")

    def __init__(self, config: ThrottleConfig, *, start: float) -> None:
        self.config = config
        self.start = start
        self._index = 0
        self._count = 0

    def admit(self, now: float) -> float | None:
        """Admit a request at ``now`` (``None``), or return the seconds until the window resets."""
        window = self.config.window
        index = math.floor((now - self.start) / window)
        if index != self._index:
            self._index = index
            self._count = 0
        if self._count < self.config.limit:
            self._count += 1
            return None
        return self.start + (index + 1) * window - now

    def __repr__(self) -> str:
        return (
            f"FixedWindowThrottle(limit={self.config.limit}, window={self.config.window}, "
            f"window_index={self._index}, admitted={self._count})"
        )


def describe_window(seconds: float) -> str:
    """The gateway's way of naming a period: ``1 second``, ``1 minute``, ``2.5 seconds``..."""
    if seconds % 60 == 0:
        minutes = int(seconds // 60)
        return "1 minute" if minutes == 1 else f"{minutes} minutes"
    return "1 second" if seconds == 1 else f"{seconds:g} seconds"


class ThrottleReply:
    """How a refusal is answered: status and encoded body (built once per simulator)."""

    __slots__ = ("body", "retry_after", "status")

    def __init__(self, config: ThrottleConfig) -> None:
        self.retry_after = config.retry_after
        if config.style == "apig429":
            self.status = 429
            message = (
                "The throttling threshold has been reached: policy user over ratelimit,"
                f"limit:{config.limit},time:{describe_window(config.window)}"
            )
            self.body = error_body(APIG_THROTTLED, message)
        else:
            self.status = 400 if config.style == "cb400" else 500
            self.body = error_body(*CB_TOO_MANY_REQUESTS)

    def headers(self, wait: float, wall_now: float) -> dict[str, str]:
        """``Retry-After`` (when configured) for a refusal ``wait`` seconds before the reset."""
        if self.retry_after == "seconds":
            return {"Retry-After": str(max(1, math.ceil(wait)))}
        if self.retry_after == "http-date":
            # HTTP-dates have whole seconds: round up so that the date is never early.
            return {"Retry-After": formatdate(math.ceil(wall_now + wait), usegmt=True)}
        return {}
