"""Retry policy: what is retried, how long to wait, and when to give up.

Three pieces, all free of I/O so they are tested without sleeping:

* :func:`classify` turns one :class:`~bulkstop.models.Reply` into a :class:`Decision`:
  a final outcome, or a reason to retry (transient, throttled, stale credential), and whether
  the answer shows that the call itself is wrong (a :class:`SystematicFault`: the stop API is
  not served there, the host does not resolve, nothing listens, the certificate is not
  trusted). This is the one place that knows which CodeArts codes mean what.
* :class:`RetryPolicy` is a small frozen value (attempts, backoff, deadline) and
  :func:`compute_backoff` the pure exponential-backoff-with-full-jitter function.
* :class:`RetryBudget` is shared by a whole run, so a dying server is not hammered:
  every first attempt deposits ``ratio`` tokens, every transient retry withdraws one.

Throttled answers are treated apart from transient failures: the gateway said "not now",
not "broken". They are paced by :mod:`bulkstop.pacing` (a run-wide pause and a lower rate),
do not draw on the retry budget, and have their own, larger attempt cap
(``max_throttled_attempts``), because under a fixed-window throttle an item can
legitimately meet the closed window more than once.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from bulkstop.models import Outcome, Reply, ReplyKind, TransportFailure

__all__ = [
    "THROTTLE_CODES",
    "TOKEN_EXPIRED_CODE",
    "URL_NOT_FOUND_CODE",
    "Decision",
    "RetryBudget",
    "RetryPolicy",
    "SystematicFault",
    "Verdict",
    "classify",
    "compute_backoff",
    "parse_retry_after",
]

#: Error codes that mean "too many requests" whatever the HTTP status (400, 429 or 500).
THROTTLE_CODES: frozenset[str] = frozenset({"APIG.0308", "CB.00060211"})
#: "The token must be updated." — refresh the credential once, then retry.
TOKEN_EXPIRED_CODE = "APIG.0307"  # noqa: S105 - an error code, not a secret
#: 404 "URL not found": the route, not the job, is unknown (the stop API is not served there).
URL_NOT_FOUND_CODE = "CB.00060214"


class Verdict(enum.Enum):
    FINAL = "final"  #: the reply settles the target; see ``Decision.outcome``
    TRANSIENT = "transient"  #: retry after a backoff: 5xx, timeout, reset, unreadable 200
    THROTTLED = "throttled"  #: retry after the run-wide pause; slow the run down
    STALE_CREDENTIAL = "stale_credential"  #: refresh the credential once, then retry


class SystematicFault(enum.StrEnum):
    """An answer that says the call itself is wrong, not something about one target.

    Whether it ends the run is for :class:`bulkstop.guards.SystematicFaultGuard` to say: only
    when the run's first answers all show the same one.
    """

    API_NOT_SERVED = "api_not_served"  #: 404 CB.00060214, or a 404 without a CodeArts error code
    DNS = "dns"  #: the endpoint's host does not resolve
    REFUSED = "refused"  #: nothing listens at the endpoint
    CERTIFICATE = "certificate"  #: the server's TLS certificate is not trusted


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    outcome: Outcome | None = None
    #: set when the answer shows the call itself is wrong (see :class:`SystematicFault`)
    fault: SystematicFault | None = None

    @property
    def retryable(self) -> bool:
        return self.verdict is not Verdict.FINAL


_FINAL_BY_STATUS: dict[int, Outcome] = {
    401: Outcome.UNAUTHORIZED,
    403: Outcome.FORBIDDEN,
    404: Outcome.NOT_FOUND,
}

_STOPPED = Decision(Verdict.FINAL, Outcome.STOPPED)
_NOT_STOPPED = Decision(Verdict.FINAL, Outcome.NOT_STOPPED)
_TRANSIENT = Decision(Verdict.TRANSIENT)
_THROTTLED = Decision(Verdict.THROTTLED)
_STALE = Decision(Verdict.STALE_CREDENTIAL)
_API_NOT_SERVED = Decision(Verdict.FINAL, Outcome.NOT_FOUND, SystematicFault.API_NOT_SERVED)
_BY_TRANSPORT_FAILURE: dict[TransportFailure, Decision] = {
    # A name that does not resolve or a port nobody listens on can be a passing hiccup: retried.
    TransportFailure.DNS: Decision(Verdict.TRANSIENT, fault=SystematicFault.DNS),
    TransportFailure.REFUSED: Decision(Verdict.TRANSIENT, fault=SystematicFault.REFUSED),
    # An untrusted certificate stays untrusted: never retried.
    TransportFailure.CERTIFICATE: Decision(
        Verdict.FINAL, Outcome.FAILED, SystematicFault.CERTIFICATE
    ),
}


def classify(reply: Reply) -> Decision:
    """Judge one reply. Throttling codes win over the status they came with."""
    kind = reply.kind
    if kind is ReplyKind.STOPPED:
        return _STOPPED
    if kind is ReplyKind.NOT_STOPPED:
        return _NOT_STOPPED
    if kind is not ReplyKind.HTTP_ERROR:
        if reply.transport_failure is not None:
            return _BY_TRANSPORT_FAILURE[reply.transport_failure]
        return _TRANSIENT  # timeout, connection, unreadable 2xx
    status = reply.http_status or 0
    if reply.error_code in THROTTLE_CODES or status == 429:
        return _THROTTLED
    if status == 401 and reply.error_code == TOKEN_EXPIRED_CODE:
        return _STALE
    if status >= 500 or status == 408:
        return _TRANSIENT
    if status == 404 and reply.error_code in (URL_NOT_FOUND_CODE, ""):
        # CodeArts names an unknown job with its own code; "URL not found", or a 404 that is
        # not CodeArts' at all (a gateway's page), is about the route the call took.
        return _API_NOT_SERVED
    outcome = _FINAL_BY_STATUS.get(status, Outcome.REJECTED)
    return Decision(Verdict.FINAL, outcome)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How one target is retried.

    Attributes:
        max_attempts: attempts in all for transient failures (first try included).
        max_throttled_attempts: attempts in all when the failures are throttling answers.
        initial_backoff: cap of the first backoff, seconds.
        max_backoff: cap of any backoff, seconds.
        multiplier: growth of the cap per retry.
        jitter: full jitter (a uniform draw in ``[0, cap]``); off gives the cap itself.
        deadline: seconds from a target's first attempt after which no retry is scheduled.
        max_retry_after: longest ``Retry-After`` honoured, seconds (a server cannot park us).
    """

    max_attempts: int = 5
    max_throttled_attempts: int = 30
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    multiplier: float = 2.0
    jitter: bool = True
    deadline: float | None = None
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_throttled_attempts < 1:
            raise ValueError("attempt limits must be ≥ 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be ≥ 0 and the multiplier ≥ 1")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError("deadline must be > 0")


def compute_backoff(policy: RetryPolicy, retry_number: int, draw: float) -> float:
    """Wait before retry number ``retry_number`` (1 for the first retry).

    ``draw`` is a uniform random number in ``[0, 1)`` supplied by the caller, so the function is
    pure: ``cap = min(max_backoff, initial_backoff × multiplier^(n-1))``, wait ``cap × draw``
    (full jitter) or ``cap`` without jitter.
    """
    if retry_number < 1:
        raise ValueError("retry_number starts at 1")
    exponent = min(retry_number - 1, 64)  # large enough to pass any cap, small enough for floats
    cap = min(policy.max_backoff, policy.initial_backoff * policy.multiplier**exponent)
    return cap * draw if policy.jitter else cap


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    Returns ``None`` for a missing or unreadable value (never depend on the header);
    a date in the past gives ``0.0``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


class RetryBudget:
    """A run-wide allowance of transient retries (after Finagle's RetryBudget).

    Starts with ``reserve`` tokens; every first attempt deposits ``ratio``; every transient
    retry withdraws 1 and is refused when less than 1 is left. With the defaults a run of N
    targets against a server that fails everything makes at most ``reserve + 0.2 × N`` retries
    instead of ``(max_attempts - 1) × N``.

    Attributes:
        ratio: tokens deposited per first attempt.
        reserve: tokens at the start, so small runs can retry at all.
        balance: tokens left now.
        refused: retries refused so far.
    """

    __slots__ = ("balance", "ratio", "refused", "reserve")

    def __init__(self, *, ratio: float = 0.2, reserve: float = 20.0) -> None:
        if ratio < 0 or reserve < 0:
            raise ValueError("ratio and reserve must be ≥ 0")
        self.ratio = ratio
        self.reserve = reserve
        self.balance = reserve
        self.refused = 0

    def deposit(self) -> None:
        """Credit one first attempt."""
        self.balance += self.ratio

    def try_withdraw(self) -> bool:
        """Take one retry; ``False`` when the budget is spent."""
        if self.balance >= 1.0 - 1e-9:  # tolerate float drift of many 0.2 deposits
            self.balance -= 1.0
            return True
        self.refused += 1
        return False

    def __repr__(self) -> str:
        return (
            f"RetryBudget(balance={self.balance:.1f}, ratio={self.ratio}, "
            f"reserve={self.reserve}, refused={self.refused})"
        )
