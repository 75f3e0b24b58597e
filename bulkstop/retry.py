"""Retry policy: what is retried, how long to wait, and when to give up.

Three pieces, all free of I/O so they are tested without sleeping (what the engine does with
them after each answer is :func:`bulkstop.decision.decide`):

* :func:`classify` turns one :class:`~bulkstop.models.Reply` into a :class:`Decision`:
  a final outcome, or a reason to retry (transient, throttled, stale credential), and whether
  the answer shows that the call itself is wrong (a :class:`SystematicFault`: the stop API is
  not served there, the host does not resolve, nothing listens, the certificate is not
  trusted). What each CodeArts code means is :mod:`bulkstop.codes`'; this is what a retry
  policy does about it.
* :class:`RetryPolicy` is a small frozen value (attempts, backoff, deadline) and
  :func:`compute_backoff` the pure exponential-backoff-with-full-jitter function.
* :class:`RetryBudget` is shared by a whole run, so a failing server is not hammered. It is
  backpressure, never a verdict: a target ends ``failed`` only by its own attempts or its own
  deadline. The law:

  1. The budget holds at most ``capacity`` tokens (it starts full, at ``reserve``). Every first
     attempt adds ``ratio`` tokens and time adds ``refill`` tokens a second.
  2. A transient retry takes one token. When one is there it goes after its backoff as usual.
     When none is, it takes one on credit (the balance goes below zero) and waits until time
     has paid its debt: ``wait = -balance / refill``, after which it goes (its backoff and any
     ``Retry-After`` still apply if longer). A retry its deadline forbids is not sent and
     takes nothing (the engine asks :meth:`RetryBudget.wait_for_token` first).
  3. While the debt deepens — a retry takes credit and the debt is then deeper than when the
     run was last told to slow down (or it is the first credit since the budget was last out of
     debt) — the engine tells the pacer to slow down (:mod:`bulkstop.pacing`, rule 5), so
     first attempts come slower too. A debt that holds or shrinks says the last slow-down is
     working: the rate is not cut again for it.
  4. So retries never run above ``ratio`` × the first attempts + ``refill`` a second, and a
     failing server sees its request rate drop; yet no retry waits for ever: every worker holds
     at most one token on credit, so the debt never exceeds the number of workers and a wait
     never exceeds ``concurrency / refill`` seconds, whatever the others do — all workers
     waiting for budget still make progress, paid by time alone.

  A run whose server fails (nearly) everything for long is ended as a whole by
  :class:`bulkstop.guards.FailingServerGuard`, not one target at a time by the budget.

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
from typing import Final, NamedTuple

from bulkstop.codes import (
    URL_NOT_FOUND_CODE,
    error_outcome,
    is_server_failure,
    is_throttling,
    is_token_expired,
)
from bulkstop.models import Outcome, Reply, ReplyKind, TransportFailure

__all__ = [
    "Decision",
    "RetryBudget",
    "RetryPolicy",
    "SystematicFault",
    "Verdict",
    "Withdrawal",
    "classify",
    "compute_backoff",
    "parse_retry_after",
]


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
    """How :func:`classify` judged one reply."""

    verdict: Verdict
    outcome: Outcome | None = None
    #: set when the answer shows the call itself is wrong (see :class:`SystematicFault`)
    fault: SystematicFault | None = None


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


# Read for every reply: as module names, not through the enum type's __getattr__ hook
# (about 70 ns a read on Python 3.11).
_KIND_STOPPED: Final = ReplyKind.STOPPED
_KIND_NOT_STOPPED: Final = ReplyKind.NOT_STOPPED


def classify(reply: Reply) -> Decision:
    """Judge one reply. Throttling codes win over the status they came with."""
    kind = reply.kind
    if kind is _KIND_STOPPED:
        return _STOPPED
    if kind is _KIND_NOT_STOPPED:
        return _NOT_STOPPED
    if kind is not ReplyKind.HTTP_ERROR:
        if reply.transport_failure is not None:
            return _BY_TRANSPORT_FAILURE[reply.transport_failure]
        return _TRANSIENT  # timeout, connection, unreadable 2xx
    status, code = reply.http_status or 0, reply.error_code
    if is_throttling(status, code):
        return _THROTTLED
    if is_token_expired(status, code):
        return _STALE
    if is_server_failure(status, code):
        return _TRANSIENT
    if status == 404 and code in (URL_NOT_FOUND_CODE, ""):
        # CodeArts names an unknown job with its own code; "URL not found", or a 404 that is
        # not CodeArts' at all (a gateway's page), is about the route the call took.
        return _API_NOT_SERVED
    return Decision(Verdict.FINAL, error_outcome(status))


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


class Withdrawal(NamedTuple):
    """What :meth:`RetryBudget.withdraw` says to one retry."""

    #: seconds until its token is there (0.0: at once)
    wait: float = 0.0
    #: the debt deepened: tell the pacer to slow down (rule 3 of the law)
    slow_down: bool = False


_NO_WAIT = Withdrawal()


class RetryBudget:
    """The run-wide allowance of transient retries: it slows retries down, never refuses one.

    The law is in the module docstring. All methods take the clock's ``now``; nothing here
    waits: :meth:`withdraw` says how long the caller must, and whether to slow the run.

    Attributes:
        ratio: tokens each first attempt earns.
        refill: tokens time earns per second (> 0: what guarantees progress).
        capacity: most tokens kept; the budget starts full.
        balance: tokens as of ``updated``; below zero while retries wait on credit.
        updated: the clock time ``balance`` was brought up to.
        debt_at_slowdown: the debt when the run was last told to slow down (0 once repaid).
        waits: retries so far that found no token and had to wait for one.
    """

    __slots__ = ("balance", "capacity", "debt_at_slowdown", "ratio", "refill", "updated", "waits")

    def __init__(
        self, *, ratio: float = 0.2, reserve: float = 20.0, refill: float = 2.0, now: float = 0.0
    ) -> None:
        if ratio < 0 or reserve < 0:
            raise ValueError("ratio and reserve must be ≥ 0")
        if not (refill > 0 and math.isfinite(refill)):
            raise ValueError(f"refill must be a positive number of tokens a second, got {refill!r}")
        self.ratio = ratio
        self.refill = refill
        self.capacity = float(reserve)
        self.balance = float(reserve)
        self.updated = now
        self.debt_at_slowdown = 0.0
        self.waits = 0

    def _credit(self, now: float, tokens: float) -> None:
        if now > self.updated:
            tokens += self.refill * (now - self.updated)
            self.updated = now
        self.balance = min(self.capacity, self.balance + tokens)
        if self.balance >= 0:
            self.debt_at_slowdown = 0.0

    def _balance_at(self, now: float) -> float:
        """The balance time will have brought by ``now``; changes nothing."""
        tokens = self.refill * (now - self.updated) if now > self.updated else 0.0
        return min(self.capacity, self.balance + tokens)

    def deposit(self, now: float) -> None:
        """Credit one first attempt."""
        if self.balance >= self.capacity:  # full (so out of debt): only the time moves on
            if now > self.updated:
                self.updated = now
            return
        self._credit(now, self.ratio)

    def wait_for_token(self, now: float) -> float:
        """How long a retry taking a token now would wait for it — the ``wait`` of
        :meth:`withdraw` — without taking it."""
        balance = self._balance_at(now) - 1.0
        return 0.0 if balance >= -1e-9 else -balance / self.refill

    def withdraw(self, now: float) -> Withdrawal:
        """Take one token for a retry: how long to wait for it, and whether to slow the run."""
        self._credit(now, 0.0)
        self.balance -= 1.0
        if self.balance >= -1e-9:  # tolerate float drift of many 0.2 deposits
            return _NO_WAIT
        self.waits += 1
        debt = -self.balance
        deeper = debt > self.debt_at_slowdown + 1e-9
        if deeper:
            self.debt_at_slowdown = debt
        return Withdrawal(debt / self.refill, deeper)

    def __repr__(self) -> str:
        return (
            f"RetryBudget(balance={self.balance:.2f}, capacity={self.capacity:g}, "
            f"ratio={self.ratio:g}, refill={self.refill:g}/s, waits={self.waits})"
        )
