"""What the simulator saw: counters updated on the request path, read as a JSON-able snapshot.

Every update is O(1) (a dict increment or a deque append), so counting costs nothing measurable
even at benchmark rates. The only derived number, :attr:`SimulatorStats.max_requests_in_1s`, is
kept exact by :class:`SlidingWindowMax`.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from bulkstop.simulator.config import FAULT_KINDS
from bulkstop.simulator.model import target_of, target_text
from bulkstop.simulator.reads import READ_APIS

__all__ = ["READ_API_NAMES", "STOP_APIS", "SimulatorStats", "SlidingWindowMax"]

#: The stop APIs the simulator serves, as named in ``by_api``.
STOP_APIS: tuple[str, ...] = ("legacy", "v3", "v1")

#: The read APIs, as named in ``read_requests``: the official SDK's method names, in the order of
#: :data:`bulkstop.simulator.reads.READ_APIS` (which also holds their routes).
READ_API_NAMES: tuple[str, ...] = tuple(name for name, _ in READ_APIS)


class SlidingWindowMax:
    """The highest number of events in any interval of ``width`` seconds, exact.

    Feed arrival times in non-decreasing order with :meth:`record`. The busiest interval always
    ends at an arrival, so it is enough to count, at each arrival ``t``, the arrivals in
    ``(t - width, t]``: a deque holds exactly those, and each time enters and leaves it once
    (O(1) amortised per event, memory bounded by the busiest interval).

    Attributes:
        width: the interval length in seconds.
        maximum: the highest count seen so far.
    """

    __slots__ = ("_times", "maximum", "width")

    def __init__(self, width: float = 1.0) -> None:
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width!r}")
        self.width = width
        self.maximum = 0
        self._times: deque[float] = deque()

    def record(self, now: float) -> int:
        """Count an event at ``now``; return the number of events in ``(now - width, now]``."""
        times = self._times
        horizon = now - self.width
        while times and times[0] <= horizon:
            times.popleft()
        times.append(now)
        count = len(times)
        if count > self.maximum:
            self.maximum = count
        return count

    def __repr__(self) -> str:
        return f"SlidingWindowMax(width={self.width}, maximum={self.maximum})"


class SimulatorStats:
    """Live counters of one simulator; :meth:`snapshot` gives a JSON-able copy.

    Attributes:
        requests_total: every request except the simulator's own ``/_sim/`` endpoints.
        by_status: responses actually sent, by HTTP status (a reset sends none).
        by_api: stop requests per API (``legacy``, ``v3``, ``v1``), counted on arrival.
        read_requests: read requests per read API (:data:`READ_API_NAMES`), counted on arrival.
        effective_stops: stop calls that turned a running build into a stopped one (also when a
            fault then hid the answer); for a world build, one that will stop after the delay.
        repeat_stops: stop calls for a build an earlier call had already stopped.
        already_finished: stop calls for a build that had already ended.
        ignored_stops: stop calls of world builds answered "stopped" that changed nothing.
        unknown_builds: stop calls for a build number a world job has not reached (404).
        throttled: stop requests refused by the stop calls' rate limit.
        read_throttled: read requests refused by the read calls' rate limit.
        faults: injected faults by kind; ``faults_after_stop`` counts those that came after the
            stop took effect.
        iam_token_requests: calls of ``POST /v3/auth/tokens``.
        auth_failures: requests answered 401.
        security_token_requests: requests that carried ``X-Security-Token``.
        stop_requests_per_target / effective_stops_per_target: per ``(job_id, build_no)``, for
            stop requests that got past authentication with a readable target.
    """

    __slots__ = (
        "_by_status",
        "_effective_per_target",
        "_requests_per_target",
        "_window",
        "already_finished",
        "auth_failures",
        "by_api",
        "effective_stops",
        "faults",
        "faults_after_stop",
        "iam_token_requests",
        "ignored_stops",
        "read_requests",
        "read_throttled",
        "repeat_stops",
        "requests_total",
        "security_token_requests",
        "throttled",
        "unknown_builds",
    )

    def __init__(self) -> None:
        self.requests_total = 0
        self._by_status: dict[int, int] = {}
        self.by_api: dict[str, int] = dict.fromkeys(STOP_APIS, 0)
        self.read_requests: dict[str, int] = dict.fromkeys(READ_API_NAMES, 0)
        self.effective_stops = 0
        self.repeat_stops = 0
        self.already_finished = 0
        self.ignored_stops = 0
        self.unknown_builds = 0
        self.throttled = 0
        self.read_throttled = 0
        self.faults: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.faults_after_stop = 0
        self.iam_token_requests = 0
        self.auth_failures = 0
        self.security_token_requests = 0
        # Keyed by target_text, as the JSON has them, not by tuple: a table holding tuples is
        # tracked by the garbage collector and put back among the young objects at each
        # insertion, so every young collection walked all of it (see BuildModel).
        self._requests_per_target: dict[str, int] = {}
        self._effective_per_target: dict[str, int] = {}
        self._window = SlidingWindowMax(1.0)

    @property
    def stop_requests_per_target(self) -> dict[tuple[str, int], int]:
        return _by_target(self._requests_per_target)

    @property
    def effective_stops_per_target(self) -> dict[tuple[str, int], int]:
        return _by_target(self._effective_per_target)

    # --- updates (request path) ------------------------------------------------------------

    def stop_arrived(self, api: str, now: float) -> None:
        """A stop request arrived at monotonic time ``now``."""
        self.by_api[api] += 1
        self._window.record(now)

    def responded(self, status: int) -> None:
        """A response with ``status`` is being sent."""
        self._by_status[status] = self._by_status.get(status, 0) + 1

    def target_seen(self, key: tuple[str, int]) -> None:
        """A stop request for ``key`` got past authentication."""
        per_target = self._requests_per_target
        text = target_text(*key)
        per_target[text] = per_target.get(text, 0) + 1

    def stopped(self, key: tuple[str, int]) -> None:
        """A running build was stopped."""
        self.effective_stops += 1
        per_target = self._effective_per_target
        text = target_text(*key)
        per_target[text] = per_target.get(text, 0) + 1

    def fault(self, kind: str, *, after_stop: bool) -> None:
        """A fault of ``kind`` was injected."""
        self.faults[kind] += 1
        if after_stop:
            self.faults_after_stop += 1

    # --- reading ---------------------------------------------------------------------------

    @property
    def by_status(self) -> dict[str, int]:
        """Responses sent, by status as a string key (``{"200": n}``)."""
        return {str(status): n for status, n in sorted(self._by_status.items())}

    @property
    def max_requests_in_1s(self) -> int:
        """The most stop requests that arrived within any sliding 1-second interval."""
        return self._window.maximum

    @property
    def stop_requests(self) -> int:
        """All stop requests, every API."""
        return sum(self.by_api.values())

    @property
    def reads(self) -> int:
        """All read requests, every read API."""
        return sum(self.read_requests.values())

    def snapshot(self, *, targets: bool = False) -> dict[str, Any]:
        """A JSON-able copy; ``targets=True`` adds the per-target counters (``"job:build"``)."""
        data: dict[str, Any] = {
            "requests_total": self.requests_total,
            "stop_requests": self.stop_requests,
            "reads": self.reads,
            "by_status": self.by_status,
            "by_api": dict(self.by_api),
            "read_requests": dict(self.read_requests),
            "effective_stops": self.effective_stops,
            "repeat_stops": self.repeat_stops,
            "already_finished": self.already_finished,
            "ignored_stops": self.ignored_stops,
            "unknown_builds": self.unknown_builds,
            "throttled": self.throttled,
            "read_throttled": self.read_throttled,
            "faults": dict(self.faults),
            "faults_after_stop": self.faults_after_stop,
            "max_requests_in_1s": self.max_requests_in_1s,
            "iam_token_requests": self.iam_token_requests,
            "auth_failures": self.auth_failures,
            "security_token_requests": self.security_token_requests,
        }
        if targets:
            data["stop_requests_per_target"] = dict(self._requests_per_target)
            data["effective_stops_per_target"] = dict(self._effective_per_target)
        return data

    def __repr__(self) -> str:
        return (
            f"SimulatorStats(requests_total={self.requests_total}, "
            f"effective_stops={self.effective_stops}, throttled={self.throttled})"
        )


def _by_target(counts: dict[str, int]) -> dict[tuple[str, int], int]:
    return {target_of(text): n for text, n in counts.items()}
