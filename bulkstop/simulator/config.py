"""What a simulated CodeArts Build service looks like: frozen settings, checked on creation.

:class:`SimulatorConfig` holds everything. Its parts: :class:`ThrottleConfig` (a server-side rate
limit, used for the stop calls and, separately, for the read calls), :class:`FaultConfig`
(injected failures), :class:`WorldConfig` (a CodeArts project of jobs whose builds start, run and
finish over time) and :class:`ReadConfig` (how the read APIs answer). All are frozen,
keyword-only dataclasses so that a configuration can be shared between tests and handed across
threads without copying.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "FAULT_KINDS",
    "STOP_APIS",
    "FaultConfig",
    "ReadConfig",
    "SimulatorConfig",
    "ThrottleConfig",
    "WorldConfig",
]

#: The fault kinds of :class:`FaultConfig`, in the order their probability bands are laid out.
FAULT_KINDS: tuple[str, ...] = (
    "error_500",
    "html_502",
    "unavailable_503",
    "reset",
    "hang",
    "bad_json_200",
)

#: The stop APIs the simulator can serve, by their bulkstop names.
STOP_APIS: frozenset[str] = frozenset({"legacy", "v3", "v1"})


_PROJECT_ID = re.compile(r"[0-9a-f]{32}")


def _check_probability(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def _check_count(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")


def _check_seconds(name: str, value: float, *, zero: bool = False) -> None:
    ok = isinstance(value, int | float) and math.isfinite(value)
    if not (ok and (value >= 0 if zero else value > 0)):
        bound = "≥ 0" if zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottleConfig:
    """A server-side rate limit: ``limit`` requests per ``window`` seconds.

    Windows are fixed and aligned to the moment the simulator started; the count is shared by
    all clients. As ``SimulatorConfig.throttle`` it counts the three stop APIs together; as
    ``ReadConfig.throttle`` the read APIs, apart from the stops. Only admitted requests use up
    the window, as API gateways count them.

    ``style`` picks how a rejection looks: ``apig429`` is the API gateway's
    ``429 APIG.0308``; ``cb400``/``cb500`` are CodeArts' own ``CB.00060211`` with the two statuses
    the docs list. ``retry_after`` adds a ``Retry-After`` header (the real gateway sends none):
    ``seconds`` until the window resets, rounded up, or that instant as an HTTP-date.
    """

    limit: int
    window: float = 1.0
    style: Literal["apig429", "cb400", "cb500"] = "apig429"
    retry_after: Literal["none", "seconds", "http-date"] = "none"

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"throttle limit must be an integer ≥ 1, got {self.limit!r}")
        if not (math.isfinite(self.window) and self.window > 0):
            raise ValueError(f"throttle window must be > 0 seconds, got {self.window!r}")
        if self.style not in ("apig429", "cb400", "cb500"):
            raise ValueError(f"unknown throttle style {self.style!r}")
        if self.retry_after not in ("none", "seconds", "http-date"):
            raise ValueError(f"unknown retry_after form {self.retry_after!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultConfig:
    """Injected failures, each a probability per stop request.

    The kinds are exclusive: their probabilities are laid out as consecutive bands of [0, 1), so
    their sum must not exceed 1. Whether a request gets a fault is decided deterministically from
    ``(seed, job_id, build_no, n)`` where ``n`` counts the requests for that target that got past
    throttling; the same run against the same configuration fails the same way.

    ``after_stop`` is the probability that a chosen fault happens *after* the stop took effect
    (the build is now stopped, the client still sees the fault), instead of before it.
    """

    error_500: float = 0.0
    html_502: float = 0.0
    unavailable_503: float = 0.0
    reset: float = 0.0
    hang: float = 0.0
    bad_json_200: float = 0.0
    after_stop: float = 0.0
    hang_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name in (*FAULT_KINDS, "after_stop"):
            _check_probability(name, getattr(self, name))
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities add up to {self.total:g}, more than 1")
        if not (math.isfinite(self.hang_seconds) and self.hang_seconds >= 0):
            raise ValueError(f"hang_seconds must be ≥ 0, got {self.hang_seconds!r}")

    @property
    def total(self) -> float:
        """The probability that a request gets some fault."""
        return float(sum(getattr(self, name) for name in FAULT_KINDS))


@dataclass(frozen=True, slots=True, kw_only=True)
class WorldConfig:
    """A CodeArts project of jobs whose builds start, run for a while and finish by themselves.

    The world is laid out when the simulator is created (its *start*, the wall clock then): each
    of ``jobs`` jobs has ``builds_per_job`` builds behind it, spread over the hours and days
    before, one every ``build_interval`` seconds on average. Exactly ``round(running_ratio ×
    jobs)`` jobs have a build running at the start; of those, ``round(older_running_ratio ×
    running jobs)`` run an *older* build while their last build, which started after it, has
    already finished (what a filter on the last build's status misses). After the start every job
    keeps starting a new build every ``build_interval`` seconds on average; builds run between
    ``min_build_time`` and ``max_build_time`` seconds and end ``SUCCESS`` or ``FAILURE``.

    ``round(forbidden_ratio × jobs)`` jobs are listed but may not be read or stopped (403).

    A stop of a running build answers "stopped" and takes effect ``stop_delay`` seconds later
    (until then the build is ``ABORTING``, still running; then ``ABORTED``). A share
    ``ignore_stop_ratio`` of the stop calls is acknowledged ("stopped") but does nothing: the
    build keeps running. Everything is seeded: the same seed and the same clock give the same
    world, whatever the order of the requests.

    ``timer_interval`` adds one more job, a runaway timer: it has started a build every
    ``timer_interval`` seconds (the last one at the world's start) and goes on doing so; each
    of its builds runs ``timer_build_time`` seconds, so they pile up.

    ``project_id``: the project's 32-hex-digit id (``None``: derived from the seed).
    """

    project_id: str | None = None
    jobs: int = 50
    builds_per_job: int = 30
    running_ratio: float = 0.3
    older_running_ratio: float = 0.2
    forbidden_ratio: float = 0.0
    build_interval: float = 3600.0
    min_build_time: float = 60.0
    max_build_time: float = 1200.0
    stop_delay: float = 2.0
    ignore_stop_ratio: float = 0.05
    timer_interval: float | None = None
    timer_build_time: float = 3600.0

    def __post_init__(self) -> None:
        if self.project_id is not None and _PROJECT_ID.fullmatch(self.project_id) is None:
            raise ValueError(
                f"project_id must be 32 lowercase hexadecimal digits, got {self.project_id!r}"
            )
        _check_count("jobs", self.jobs, 1, 100_000)
        _check_count("builds_per_job", self.builds_per_job, 1, 10_000)
        for name in ("running_ratio", "older_running_ratio", "forbidden_ratio"):
            _check_probability(name, getattr(self, name))
        _check_probability("ignore_stop_ratio", self.ignore_stop_ratio)
        for name in ("build_interval", "min_build_time", "max_build_time", "timer_build_time"):
            _check_seconds(name, getattr(self, name))
        if self.min_build_time > self.max_build_time:
            raise ValueError("min_build_time must not exceed max_build_time")
        _check_seconds("stop_delay", self.stop_delay, zero=True)
        if self.timer_interval is not None:
            _check_seconds("timer_interval", self.timer_interval)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadConfig:
    """How the read APIs (job lists, build records, one build) answer.

    ``throttle`` limits the read calls, counted apart from the stop calls' limit (the gateway
    binds its own per-minute policies to them; ``ThrottleConfig(limit=50, window=60.0)`` is such
    a policy, and ``bulkstop simulate --read-throttle`` defaults to a minute): one window shared
    by every read API, or one window per API with ``throttle_per_api``.

    ``jobs_shape`` picks the body of ``GET /v1/job/{project_id}/list``: ``live`` is what the
    service sends (``{"result": {"job_list", "total"}, "status"}``), ``sdk`` the SDK's model
    (``{"jobs", "total"}``).

    Realism knobs, off by default: ``repeat_first_page`` answers a page index past the end with
    the first page again (as the CodeArts notes warn the service may); ``total_as_string``
    sends the job lists' and the history's ``total`` as a string.
    """

    throttle: ThrottleConfig | None = None
    throttle_per_api: bool = False
    jobs_shape: Literal["live", "sdk"] = "live"
    repeat_first_page: bool = False
    total_as_string: bool = False

    def __post_init__(self) -> None:
        if self.jobs_shape not in ("live", "sdk"):
            raise ValueError(f"unknown jobs_shape {self.jobs_shape!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """Everything a :class:`~bulkstop.simulator.Simulator` needs to know.

    Build model: a job is unknown / forbidden when a stable hash of ``(seed, job_id)`` falls
    under ``unknown_job_ratio`` / the next ``forbidden_job_ratio`` of [0, 1), or when it is
    listed in ``unknown_jobs`` / ``forbidden_jobs``. A build of a known job has already finished
    when a hash of ``(seed, job_id, build_no)`` falls under ``finished_ratio`` or it is listed in
    ``finished_builds``; every other build is running until its first successful stop.

    Auth: ``token`` is the one ``X-Auth-Token`` accepted (``None``: any non-empty token);
    ``iam_user``/``iam_password``/``iam_domain`` enable ``POST /v3/auth/tokens``, whose tokens are
    accepted too; ``aksk`` enables ``SDK-HMAC-SHA256`` signing. ``token_ttl_requests`` makes
    every token expire (401 ``APIG.0307``) after that many authenticated requests. After
    ``aksk_lockout_after`` signature failures in a row the AK is refused for
    ``aksk_lockout_seconds``, as the gateway does (0 turns the lockout off).

    World: ``world`` adds a CodeArts project of jobs with build histories (see
    :class:`WorldConfig`); its jobs exist whatever the ratios above say, and their builds follow
    the world's rules. Every other job id keeps the rules above. ``reads`` shapes and limits the
    read APIs (see :class:`ReadConfig`).

    ``stop_apis`` are the stop APIs served; the others answer 404 ``CB.00060214`` "URL not
    found", like any route the service does not know (an endpoint with another API version).
    """

    token: str | None = field(default=None, repr=False)
    seed: int = 0
    finished_ratio: float = 0.1
    unknown_job_ratio: float = 0.0
    forbidden_job_ratio: float = 0.0
    unknown_jobs: frozenset[str] = frozenset()
    forbidden_jobs: frozenset[str] = frozenset()
    finished_builds: frozenset[tuple[str, int]] = frozenset()
    latency: float = 0.0
    throttle: ThrottleConfig | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)
    token_ttl_requests: int | None = None
    iam_user: str | None = None
    iam_password: str | None = field(default=None, repr=False)
    iam_domain: str | None = None
    aksk: tuple[str, str] | None = field(default=None, repr=False)
    max_clock_skew: float = 900.0
    aksk_lockout_after: int = 5
    aksk_lockout_seconds: float = 300.0
    world: WorldConfig | None = None
    reads: ReadConfig = field(default_factory=ReadConfig)
    stop_apis: frozenset[str] = STOP_APIS
    #: seconds a stopped build outside the world stays ``ABORTING`` (still running) before
    #: ``ABORTED``, as the world's ``stop_delay`` (0: at once)
    derived_stop_delay: float = 0.0

    def __post_init__(self) -> None:
        if self.token is not None and not self.token.strip():
            raise ValueError("token must be non-empty when given (None accepts any token)")
        for name in ("finished_ratio", "unknown_job_ratio", "forbidden_job_ratio"):
            _check_probability(name, getattr(self, name))
        if self.unknown_job_ratio + self.forbidden_job_ratio > 1.0 + 1e-9:
            raise ValueError("unknown_job_ratio + forbidden_job_ratio must not exceed 1")
        if not (math.isfinite(self.latency) and self.latency >= 0):
            raise ValueError(f"latency must be ≥ 0 seconds, got {self.latency!r}")
        if not (math.isfinite(self.derived_stop_delay) and self.derived_stop_delay >= 0):
            raise ValueError("derived_stop_delay must be ≥ 0 seconds")
        if self.token_ttl_requests is not None and self.token_ttl_requests < 1:
            raise ValueError("token_ttl_requests must be ≥ 1 when given")
        iam = (self.iam_user, self.iam_password, self.iam_domain)
        if any(part is not None for part in iam) and not all(iam):
            raise ValueError("iam_user, iam_password and iam_domain must be given together")
        if self.aksk is not None and not (len(self.aksk) == 2 and all(self.aksk)):
            raise ValueError("aksk must be a pair of non-empty strings (AK, SK)")
        if not self.max_clock_skew > 0:
            raise ValueError("max_clock_skew must be > 0 seconds")
        if self.aksk_lockout_after < 0 or self.aksk_lockout_seconds < 0:
            raise ValueError("aksk_lockout_after and aksk_lockout_seconds must be ≥ 0")
        unknown = set(self.stop_apis) - STOP_APIS
        if unknown:
            raise ValueError(f"unknown stop APIs {sorted(unknown)}; known: {sorted(STOP_APIS)}")

    @property
    def iam_enabled(self) -> bool:
        """Whether ``POST /v3/auth/tokens`` issues tokens."""
        return self.iam_user is not None
