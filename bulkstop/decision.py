"""What to do after one answer: the pure decision the engine's loop carries out.

A worker sends a target's attempts one after the other; after each answer it asks
:func:`decide`, which looks at values only — the answer as :func:`~bulkstop.retry.classify`
judged it, the target's :class:`RetryState`, the :class:`~bulkstop.retry.RetryPolicy`, and what
the run looks like at that moment (the clock, a random draw, the retry budget's wait, the
run-wide pause, the first-answers guard) — and returns a :class:`Step`. Nothing here waits,
sends, logs or changes anything (stamina's ``_compute_backoff`` and its retry loop are the
model): the loop carries the step out.

=========  ===============================================================================
action     the loop then
=========  ===============================================================================
SETTLE     reports ``outcome`` with ``detail``: a final answer, or an expired token that was
           refreshed twice already
GIVE_UP    reports it ``failed``, ``detail`` saying why: attempts or deadline spent
REFRESH    refreshes the credential, then sends again at once; reports ``outcome`` with
           ``detail`` when the refresh fails
RETRY      waits ``wait`` seconds (its backoff, ``Retry-After``, the retry budget; a throttling
           pause is the pacer's) and sends again; ``detail`` describes the answer
HOLD       shows the target's first answer to the first-answers guard, which may hold the
           target until it decides; then asks again, as no longer first
ABORT      reports the target ``aborted``: the call itself is wrong, so what the answer says
           is not about the target, and a resume sends it again
=========  ===============================================================================

Every step carries the target's retry state from then on (``state``) when the answer changed
it. What one answer uses up: a transient failure (5xx, timeout, reset, unreadable answer) one
of ``max_attempts``, a throttling answer one of ``max_throttled_attempts``, an expired token one
of two refreshes. An answer that may have reached the service (``Reply.maybe_applied``) marks
the target: a later "not stopped" is then ``uncertain``, and a failure says which attempt may
have stopped it. No retry is scheduled whose start — after its wait, and after the run-wide
pause — would come later than ``deadline`` seconds after the target's first attempt.
"""

from __future__ import annotations

import enum
import math
from typing import Final, NamedTuple

from bulkstop.models import Outcome, Reply, ReplyKind, TransportFailure
from bulkstop.retry import Decision, RetryPolicy, Verdict, compute_backoff

__all__ = [
    "Action",
    "RetryState",
    "Step",
    "deadline_text",
    "decide",
    "describe_reply",
    "draws_backoff",
    "honoured_retry_after",
    "out_of_time",
]

#: refreshes of an expired token one target may ask for; the next expiry settles it
_MAX_REFRESHES: Final = 2


class Action(enum.Enum):
    """What the loop does next for a target (see the module docstring)."""

    SETTLE = "settle"
    GIVE_UP = "give_up"
    REFRESH = "refresh"
    RETRY = "retry"
    HOLD = "hold"
    ABORT = "abort"


class RetryState(NamedTuple):
    """What a target's earlier answers used up, and whether one may have stopped it.

    Attributes:
        transient: transient failures so far.
        throttled: throttling answers so far.
        refreshes: refreshes of an expired token so far.
        maybe_applied: an attempt, of this run or an earlier one, may have stopped the build.
        ambiguity: the first attempt of this run that may have, described (``""``: none;
            with ``maybe_applied``, it was an earlier run's).
    """

    transient: int = 0
    throttled: int = 0
    refreshes: int = 0
    maybe_applied: bool = False
    ambiguity: str = ""


class Step(NamedTuple):
    """One decision: an :class:`Action` and what the loop needs to carry it out.

    Attributes:
        action: what to do.
        outcome: the outcome to report (SETTLE, GIVE_UP; REFRESH: when the refresh fails).
        detail: the report's detail (likewise), or the answer described (RETRY).
        wait: seconds to wait before the next attempt (RETRY).
        takes_budget: the retry draws one token from the run's retry budget (RETRY).
        state: the target's retry state from now on, when this answer changed it.
    """

    action: Action
    outcome: Outcome | None = None
    detail: str = ""
    wait: float = 0.0
    takes_budget: bool = False
    state: RetryState | None = None


#: The steps of final answers that need no detail, made once: most answers are one of these.
_SETTLED: Final[dict[Outcome | None, Step]] = {
    outcome: Step(Action.SETTLE, outcome) for outcome in Outcome if outcome is not Outcome.FAILED
}
_HOLD: Final = Step(Action.HOLD)
_ABORT: Final = Step(Action.ABORT)
# The verdicts decide() compares with, bound to module names: on Python 3.11 reading a member
# through its class (``Verdict.FINAL``) goes through EnumType's ``__getattr__`` hook, about
# 75 ns against 5 for a module name, and this runs for every answer (see bulkstop.engine).
_FINAL: Final = Verdict.FINAL
_TRANSIENT: Final = Verdict.TRANSIENT
_THROTTLED: Final = Verdict.THROTTLED
_STALE_CREDENTIAL: Final = Verdict.STALE_CREDENTIAL
_REFRESH_FAILED: Final = "the token must be updated and could not be refreshed"

_TRANSPORT_TEXT: Final[dict[TransportFailure, str]] = {
    TransportFailure.DNS: "host not resolved",
    TransportFailure.REFUSED: "connection refused",
    TransportFailure.CERTIFICATE: "certificate not trusted",
}


def describe_reply(reply: Reply) -> str:
    """An answer in a few words, for details and logs: ``HTTP 500 CB.00060101``, ``timeout``."""
    if reply.kind is ReplyKind.HTTP_ERROR:
        text = f"HTTP {reply.http_status}"
        if reply.error_code:
            text += f" {reply.error_code}"
        return text
    if reply.kind is ReplyKind.BAD_BODY:
        return f"an unreadable HTTP {reply.http_status} answer"
    if reply.transport_failure is not None:
        return _TRANSPORT_TEXT[reply.transport_failure]
    return reply.kind.value  # timeout / connection


def honoured_retry_after(reply: Reply, policy: RetryPolicy) -> float | None:
    """The answer's ``Retry-After`` as far as the policy honours it (a server cannot park us)."""
    if reply.retry_after is None:
        return None
    return min(reply.retry_after, policy.max_retry_after)


def deadline_text(policy: RetryPolicy) -> str:
    """Why a target whose deadline came before its next attempt could start failed."""
    return f"deadline of {policy.deadline:g} s reached before the next attempt could start"


def draws_backoff(
    judged: Decision, state: RetryState, policy: RetryPolicy, *, first_answer: bool = False
) -> bool:
    """Whether :func:`decide` computes a backoff for this answer, and so uses its ``draw`` and
    ``budget_wait``: a transient failure with attempts left, not held as a first answer.

    A caller draws only then, so that a seeded run's jitter stays what it was whichever
    targets gave up or were held.
    """
    return (
        judged.verdict is _TRANSIENT
        and not first_answer
        and state.transient + 1 < policy.max_attempts
    )


def out_of_time(state: RetryState, policy: RetryPolicy) -> Step:
    """No start slot could be had before the target's deadline: give up."""
    return Step(Action.GIVE_UP, Outcome.FAILED, _may_have_stopped(deadline_text(policy), state))


def _may_have_stopped(detail: str, state: RetryState) -> str:
    if state.maybe_applied:
        detail += f"; {state.ambiguity or 'an earlier run'} may have stopped it"
    return detail


def decide(
    judged: Decision,
    reply: Reply,
    state: RetryState,
    policy: RetryPolicy,
    *,
    attempt: int,
    now: float = 0.0,
    started: float | None = None,
    draw: float = 0.0,
    budget_wait: float = 0.0,
    paused_until: float = -math.inf,
    first_answer: bool = False,
    call_is_wrong: bool = False,
) -> Step:
    """What to do after ``reply``, the answer to the target's attempt number ``attempt``.

    Args:
        judged: ``classify(reply)``.
        reply: the answer.
        state: the target's retry state before this answer.
        policy: the retry policy.
        attempt: the number of the attempt that got this answer (1 for the first).
        now: the clock's time now.
        started: the clock's time of the target's first attempt (``None``: no deadline applies).
        draw: a uniform random number in ``[0, 1)`` for the backoff's jitter.
        budget_wait: how long a retry taking a token of the run's retry budget now would wait
            for it (0.0: a token is there).
        paused_until: the clock's time at which the run-wide throttling pause ends.
        first_answer: the first-answers guard waits for this target's first real answer.
        call_is_wrong: the first-answers guard found that the call itself is wrong.
    """
    verdict = judged.verdict
    if verdict is not _THROTTLED and verdict is not _STALE_CREDENTIAL:
        # throttling and an expired token are no real answer yet: the guard waits for one
        if first_answer:
            return _HOLD
        if call_is_wrong and judged.fault is not None:
            return _ABORT
    if verdict is _FINAL:
        if not state.maybe_applied or judged.outcome is not Outcome.NOT_STOPPED:
            settled = _SETTLED.get(judged.outcome)
            if settled is not None:
                return settled
        return _final(judged, reply, state)
    if reply.maybe_applied:
        state = state._replace(
            maybe_applied=True,
            ambiguity=state.ambiguity or f"attempt {attempt} ({describe_reply(reply)})",
        )
    if verdict is _STALE_CREDENTIAL:
        refreshes = state.refreshes + 1
        state = state._replace(refreshes=refreshes)
        if refreshes > _MAX_REFRESHES:
            return Step(Action.SETTLE, Outcome.UNAUTHORIZED, _REFRESH_FAILED, state=state)
        return Step(Action.REFRESH, Outcome.UNAUTHORIZED, _REFRESH_FAILED, state=state)
    wait = 0.0
    takes_budget = False
    if verdict is _THROTTLED:
        throttled = state.throttled + 1
        state = state._replace(throttled=throttled)
        if throttled >= policy.max_throttled_attempts:
            why = _may_have_stopped(f"still throttled after {throttled} attempts", state)
            return Step(Action.GIVE_UP, Outcome.FAILED, why, state=state)
        # the pacer's run-wide pause is the wait: nothing more per target
    else:  # transient
        transient = state.transient + 1
        state = state._replace(transient=transient)
        if transient >= policy.max_attempts:
            why = _may_have_stopped(f"gave up after {transient} failed attempts", state)
            return Step(Action.GIVE_UP, Outcome.FAILED, why, state=state)
        wait = compute_backoff(policy, transient, draw)
        retry_after = honoured_retry_after(reply, policy)
        if retry_after is not None:
            wait = max(wait, retry_after)
        wait = max(wait, budget_wait)
        takes_budget = True
    if policy.deadline is not None and started is not None:
        resume = max(now + wait, paused_until)  # a throttling pause holds it too
        if resume - started > policy.deadline:
            return out_of_time(state, policy)._replace(state=state)
    return Step(Action.RETRY, None, describe_reply(reply), wait, takes_budget, state)


def _final(judged: Decision, reply: Reply, state: RetryState) -> Step:
    """A final answer that needs a detail: uncertain, or a permanent transport failure."""
    if judged.outcome is Outcome.NOT_STOPPED:  # and an attempt may have stopped it
        detail = (
            f"said 'not stopped', but {state.ambiguity or 'an earlier run'} may "
            "already have stopped it; check the build"
        )
        return Step(Action.SETTLE, Outcome.UNCERTAIN, detail)
    detail = _may_have_stopped(f"{describe_reply(reply)}: permanent, not retried", state)
    return Step(Action.SETTLE, Outcome.FAILED, detail)
