"""One read call driven to an answer: paced, retried, its credential refreshed, as stops are.

Discovery (:mod:`bulkstop.discover`) and verification (:mod:`bulkstop.verify`) make their
read calls through a :class:`Reader`. It is the read side's ``_stop_one``, and keeps the stop
side's rules:

* Every attempt waits for the read :class:`~bulkstop.pacing.Pacer` — its own, not the stops':
  the gateway limits the read APIs apart from the stop calls and much lower, per minute — and
  holds one of ``concurrency`` slots while it is in flight (not while it waits to retry).
* :func:`~bulkstop.retry.classify` judges each answer; :func:`read_decision` adds what only a
  read can meet (``DEVCB.00031006`` "job not found" at any status; a 2xx that carries a
  server-failure code). Transient failures are retried with
  :func:`~bulkstop.retry.compute_backoff` up to ``max_attempts``; throttling answers pause
  every read and cut the read rate (the pacer's control law), up to
  ``max_throttled_attempts``; an expired token is refreshed once for everyone, then the call
  is retried. Reads draw on no retry budget: they are few, and paced far below the stops.
* Only 401s feed the :class:`~bulkstop.guards.AuthBreaker`: a 403 says one job may not be
  read, which is that job's problem, not the credential's. When the breaker trips the run's
  ``on_abort`` hook is told, with :class:`~bulkstop.errors.CredentialsRejected`, and no further
  call is made.
* What a call ends with is data — a :class:`ReadOutcome` holding a value or a
  :class:`ReadFailure` — never an exception.

:class:`ApiChain` is the fallback: APIs answering the same question in the order tried. The
next one is tried when one is not served (404 ``CB.00060214``), and the first one that answers
is remembered for the rest of the run.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

import anyio

from bulkstop.client import ReadClient
from bulkstop.clock import Clock
from bulkstop.codes import SERVER_FAILURE_CODES, URL_NOT_FOUND_CODE, is_job_not_found
from bulkstop.errors import CredentialsRejected
from bulkstop.guards import AuthBreaker
from bulkstop.log import get_logger
from bulkstop.models import Outcome, Reply, ReplyKind
from bulkstop.pacing import Pacer
from bulkstop.reads import Parser, ReadApi, ReadRequest
from bulkstop.retry import RetryPolicy, SystematicFault, Verdict, classify, compute_backoff

__all__ = [
    "DEFAULT_READ_RATE",
    "ApiChain",
    "ReadFailure",
    "ReadFailureReason",
    "ReadOutcome",
    "ReadSettings",
    "ReadStats",
    "Reader",
    "describe_reply",
    "read_decision",
]

log = get_logger(__name__)

T = TypeVar("T")

#: Read calls a second when no pacer is given. The gateway binds the read APIs to policies of
#: their own per minute (such as ``ten_50_min`` or ``ten_120_min``), far below the stop calls'
#: limit; one a second stays under the tighter of those once the pacer has found the limit.
DEFAULT_READ_RATE = 1.0


class ReadFailureReason(enum.StrEnum):
    """Why a read call ended without a value."""

    NOT_SERVED = "not_served"  #: 404 CB.00060214 (or a 404 that is not CodeArts'): no such API
    NOT_FOUND = "not_found"  #: the job or build does not exist (a 404, DEVCB.00031006)
    FORBIDDEN = "forbidden"  #: 403: the job may not be read
    UNAUTHORIZED = "unauthorized"  #: 401: the credential was refused (and not refreshed)
    REJECTED = "rejected"  #: another 4xx, or a 2xx carrying an error code: the call was refused
    FAILED = "failed"  #: transient failures or throttling until the attempts ran out
    BAD_ANSWER = "bad_answer"  #: a 2xx whose body is not this API's answer
    ABORTED = "aborted"  #: the run ended (the auth breaker) before the call could be made


#: A read's final outcome from :func:`~bulkstop.retry.classify`'s.
_REASON_BY_OUTCOME: dict[Outcome, ReadFailureReason] = {
    Outcome.NOT_FOUND: ReadFailureReason.NOT_FOUND,
    Outcome.FORBIDDEN: ReadFailureReason.FORBIDDEN,
    Outcome.UNAUTHORIZED: ReadFailureReason.UNAUTHORIZED,
    Outcome.REJECTED: ReadFailureReason.REJECTED,
    Outcome.FAILED: ReadFailureReason.FAILED,  # an untrusted certificate
}


def read_decision(reply: Reply) -> tuple[Verdict, ReadFailureReason | None]:
    """Judge one failed read: retry (and how), or the reason it ends with. Pure.

    :func:`~bulkstop.retry.classify` first, then what only reads meet: ``DEVCB.00031006``
    means "job not found" at any status (the v1 job APIs answer it with 422), and a 2xx whose
    body carries an error code is judged by that code — a server failure is retried, "URL not
    found" means the API is not served.
    """
    status, code = reply.http_status, reply.error_code
    if reply.kind is ReplyKind.HTTP_ERROR:
        if is_job_not_found(status, code):
            return Verdict.FINAL, ReadFailureReason.NOT_FOUND
        if status is not None and 200 <= status < 300:
            if code in SERVER_FAILURE_CODES:
                return Verdict.TRANSIENT, None
            if code == URL_NOT_FOUND_CODE:
                return Verdict.FINAL, ReadFailureReason.NOT_SERVED
    decision = classify(reply)
    if decision.fault is SystematicFault.API_NOT_SERVED:
        return Verdict.FINAL, ReadFailureReason.NOT_SERVED
    if decision.verdict is not Verdict.FINAL:
        return decision.verdict, None
    outcome = decision.outcome or Outcome.REJECTED
    return Verdict.FINAL, _REASON_BY_OUTCOME.get(outcome, ReadFailureReason.REJECTED)


def describe_reply(reply: Reply) -> str:
    """A few words for a failed answer: ``HTTP 404 CB.00060404``, ``timeout``."""
    if reply.kind is ReplyKind.HTTP_ERROR:
        return f"HTTP {reply.http_status} {reply.error_code}".rstrip()
    if reply.kind is ReplyKind.BAD_BODY:
        return f"an unreadable HTTP {reply.http_status} answer"
    if reply.transport_failure is not None:
        return reply.transport_failure.value
    return reply.kind.value


class ReadFailure(NamedTuple):
    """Why one read call (all its attempts) ended without a value."""

    reason: ReadFailureReason
    #: one line for a person: what happened, the server's message when it sent one
    message: str
    http_status: int | None = None
    error_code: str = ""
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class ReadOutcome(Generic[T]):
    """What one read call ended with: a ``value`` or a ``failure``; ``api`` says which API
    answered (the last tried when none did) and ``attempts`` how many calls it took."""

    api: ReadApi
    value: T | None = None
    failure: ReadFailure | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadSettings:
    """How read calls are made.

    Attributes:
        concurrency: read calls in flight at once.
        rate: read calls a second, the ceiling of the pacer made when none is given.
        retry: the per-call retry policy (the stop calls' policy type).
        auth_breaker: end the run after this many 401s in a row (0: never).
        page_size: entries asked per page of a list (1..100).
        seed: seed of the jitter draws (``None``: unpredictable).
    """

    concurrency: int = 4
    rate: float = DEFAULT_READ_RATE
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    auth_breaker: int = 5
    page_size: int = 100
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be ≥ 1")
        if not 1 <= self.page_size <= 100:
            raise ValueError("page_size must be in 1..100")
        if not self.rate > 0:
            raise ValueError("rate must be > 0 calls a second")
        if self.auth_breaker < 0:
            raise ValueError("auth_breaker must be ≥ 0")


@dataclass(slots=True)
class ReadStats:
    """Live counters of the read calls of one run."""

    #: calls sent (every attempt)
    calls: int = 0
    #: attempts after the first of a call
    retries: int = 0
    #: throttling answers
    throttled: int = 0


class ApiChain:
    """APIs that answer the same question, in the order tried; remembers the first that answers.

    Attributes:
        apis: the APIs, preferred first.
        current: the index of the first one still worth trying.
    """

    __slots__ = ("apis", "current")

    def __init__(self, apis: Sequence[ReadApi]) -> None:
        if not apis:
            raise ValueError("an ApiChain needs at least one API")
        self.apis = tuple(apis)
        self.current = 0

    @property
    def api(self) -> ReadApi:
        """The API tried first now."""
        return self.apis[self.current]

    def answered(self, api: ReadApi) -> None:
        """``api`` answered (not "not served"): the ones before it are not tried again."""
        index = self.apis.index(api)
        if index > self.current:
            log.info("read.api_fallback", api=api.value, skipped=self.apis[self.current].value)
            self.current = index

    def __repr__(self) -> str:
        return f"ApiChain({', '.join(self.apis)}; current={self.api.value})"


class Reader:
    """Makes read calls for one run (see the module docstring); shared by all of its tasks.

    Attributes:
        stats: the run's read counters (any object with ``calls``, ``retries``, ``throttled``).
        breaker: the 401 breaker.
        abort_error: set when the breaker tripped; no call is made after that.
    """

    __slots__ = (
        "_client",
        "_clock",
        "_limiter",
        "_on_abort",
        "_policy",
        "_random",
        "abort_error",
        "breaker",
        "pacer",
        "stats",
    )

    def __init__(
        self,
        client: ReadClient,
        pacer: Pacer,
        settings: ReadSettings,
        stats: ReadStats,
        *,
        clock: Clock | None = None,
        on_abort: Callable[[CredentialsRejected], None] = lambda error: None,
    ) -> None:
        self._client = client
        self.pacer = pacer
        self._clock: Clock = clock if clock is not None else pacer.clock
        self._policy = settings.retry
        self._limiter = anyio.CapacityLimiter(settings.concurrency)
        self._random = random.Random(settings.seed)  # noqa: S311 - jitter, not security
        self._on_abort = on_abort
        self.stats = stats
        self.breaker = AuthBreaker(settings.auth_breaker)
        self.abort_error: CredentialsRejected | None = None

    async def first_answer(
        self,
        chain: ApiChain,
        request: Callable[[ReadApi], ReadRequest],
        parse: Callable[[ReadApi], Parser[T]],
        *,
        until: float | None = None,
    ) -> ReadOutcome[T]:
        """Ask the chain's APIs in turn, from the one that answered last, until one is served
        (``until``: as for :meth:`call`)."""
        not_served: list[str] = []
        outcome: ReadOutcome[T] | None = None
        for api in chain.apis[chain.current :]:
            outcome = await self.call(request(api), parse(api), until=until)
            failure = outcome.failure
            if failure is None or failure.reason is not ReadFailureReason.NOT_SERVED:
                chain.answered(api)
                return outcome
            not_served.append(api.value)
        assert outcome is not None
        assert outcome.failure is not None
        message = f"not served by this endpoint: {', '.join(not_served)}"
        return ReadOutcome(outcome.api, failure=outcome.failure._replace(message=message))

    async def call(
        self, request: ReadRequest, parse: Parser[T], *, until: float | None = None
    ) -> ReadOutcome[T]:
        """Make one read call, retrying as the policy allows; never raises for an answer.

        ``until`` (clock time): no attempt starts after it, whatever a server's ``Retry-After``
        asks — the caller's own deadline (a verification's timeout), on top of the policy's.
        """
        policy, pacer, clock, stats = self._policy, self.pacer, self._clock, self.stats
        api = request.api
        attempts = transient = throttled = refreshes = 0
        first: float | None = None
        caller_until = until
        while True:
            if self.abort_error is not None:
                return self._failed(api, attempts, ReadFailureReason.ABORTED, str(self.abort_error))
            until = None if policy.deadline is None or first is None else first + policy.deadline
            if caller_until is not None:
                until = caller_until if until is None else min(until, caller_until)
            async with self._limiter:
                started = await pacer.acquire() if until is None else await pacer.acquire(until)
                if started is None:
                    late = _deadline(policy, until == caller_until)
                    return self._failed(api, attempts, ReadFailureReason.FAILED, late)
                if first is None:
                    first = started
                attempts += 1
                stats.calls += 1
                if attempts > 1:
                    stats.retries += 1
                reply = await self._client.read(request, parse)
            error = reply.error
            if error is None:
                pacer.on_accepted(started)
                self._record_auth(None)
                if reply.value is not None:
                    return ReadOutcome(api, value=reply.value, attempts=attempts)
                failure = ReadFailure(
                    ReadFailureReason.BAD_ANSWER,
                    reply.problem or "an answer without a value",
                    reply.http_status,
                    request_id=reply.request_id,
                )
                return ReadOutcome(api, failure=failure, attempts=attempts)

            verdict, reason = read_decision(error)
            if verdict is Verdict.THROTTLED:
                stats.throttled += 1
                retry_after = error.retry_after
                if retry_after is not None:
                    retry_after = min(retry_after, policy.max_retry_after)
                pacer.on_throttled(started, retry_after)
            elif verdict is Verdict.TRANSIENT:
                pacer.on_failed(started)
            else:
                pacer.on_accepted(started)
            if verdict is not Verdict.STALE_CREDENTIAL:
                self._record_auth(error)
            if reason is not None:
                return self._failed(api, attempts, reason, error.error_msg, error)

            wait = 0.0
            if verdict is Verdict.STALE_CREDENTIAL:
                refreshes += 1
                refreshed = refreshes <= 2 and await self._client.refresh_credentials(
                    error.credential_generation
                )
                if not refreshed:
                    self._record_auth(error)
                    message = "the token must be updated and could not be refreshed"
                    return self._failed(
                        api, attempts, ReadFailureReason.UNAUTHORIZED, message, error
                    )
                continue
            if verdict is Verdict.THROTTLED:
                throttled += 1
                if throttled >= policy.max_throttled_attempts:
                    message = f"still throttled after {throttled} attempts"
                    return self._failed(api, attempts, ReadFailureReason.FAILED, message, error)
                # The pacer's pause, for every read, is the wait.
            else:
                transient += 1
                if transient >= policy.max_attempts:
                    message = f"gave up after {transient} failed attempts"
                    return self._failed(api, attempts, ReadFailureReason.FAILED, message, error)
                wait = compute_backoff(policy, transient, self._random.random())
                if error.retry_after is not None:
                    wait = max(wait, min(error.retry_after, policy.max_retry_after))
            if until is not None and max(clock.now() + wait, pacer.gate.until) > until:
                late = _deadline(policy, until == caller_until)
                return self._failed(api, attempts, ReadFailureReason.FAILED, late, error)
            log.info(
                "read.retry_scheduled",
                api=api.value,
                attempt=attempts,
                reason=describe_reply(error),
                wait=round(wait, 3),
            )
            if wait > 0:
                await clock.sleep(wait)

    def _failed(
        self,
        api: ReadApi,
        attempts: int,
        reason: ReadFailureReason,
        message: str,
        reply: Reply | None = None,
    ) -> ReadOutcome[T]:
        if reply is not None:
            said = describe_reply(reply)
            message = f"{said}: {message}" if message else said
            failure = ReadFailure(
                reason, message, reply.http_status, reply.error_code, reply.request_id
            )
        else:
            failure = ReadFailure(reason, message)
        return ReadOutcome(api, failure=failure, attempts=attempts)

    def _record_auth(self, reply: Reply | None) -> None:
        """Feed the breaker one answer (only a 401 is a failure); abort when it trips."""
        failed = reply is not None and reply.http_status == 401
        if self.breaker.streak == 0 and not failed:
            return
        if self.breaker.record(failed) and reply is not None:
            self.abort_error = CredentialsRejected(
                f"{self.breaker.streak} authentication failures in a row "
                f"(last: {describe_reply(reply)}): the credentials are the problem"
            )
            log.error("read.aborted", reason=str(self.abort_error))
            self._on_abort(self.abort_error)

    def __repr__(self) -> str:
        return (
            f"Reader(calls={self.stats.calls}, throttled={self.stats.throttled}, "
            f"{self.breaker!r}, {self.pacer!r})"
        )


def _deadline(policy: RetryPolicy, callers: bool) -> str:
    if callers or policy.deadline is None:
        return "deadline reached before the next attempt could start"
    return f"deadline of {policy.deadline:g} s reached before the next attempt could start"
