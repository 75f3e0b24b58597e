"""The decision after one answer: a pure function of values, tested on exact values."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bulkstop.decision import (
    Action,
    RetryState,
    Step,
    decide,
    describe_reply,
    draws_backoff,
    out_of_time,
)
from bulkstop.models import Outcome, Reply, ReplyKind, TransportFailure
from bulkstop.retry import RetryPolicy, classify

OK = Reply(kind=ReplyKind.STOPPED, http_status=200)
NOT = Reply(kind=ReplyKind.NOT_STOPPED, http_status=200)
E500 = Reply(
    kind=ReplyKind.HTTP_ERROR, http_status=500, error_code="CB.00060101", maybe_applied=True
)
E404 = Reply(kind=ReplyKind.HTTP_ERROR, http_status=404, error_code="CB.00060404")
URL_NOT_FOUND = Reply(kind=ReplyKind.HTTP_ERROR, http_status=404, error_code="CB.00060214")
T429 = Reply(kind=ReplyKind.HTTP_ERROR, http_status=429, error_code="APIG.0308")
STALE = Reply(kind=ReplyKind.HTTP_ERROR, http_status=401, error_code="APIG.0307")
TIMEOUT = Reply(kind=ReplyKind.TIMEOUT, maybe_applied=True)
REFUSED = Reply(kind=ReplyKind.CONNECTION, transport_failure=TransportFailure.REFUSED)
UNTRUSTED = Reply(kind=ReplyKind.CONNECTION, transport_failure=TransportFailure.CERTIFICATE)

POLICY = RetryPolicy(initial_backoff=0.5, multiplier=2.0, max_backoff=30.0)
FRESH = RetryState()
EARLIER_RUN = RetryState(maybe_applied=True)
AMBIGUOUS = RetryState(transient=1, maybe_applied=True, ambiguity="attempt 1 (HTTP 500)")


def after(reply: Reply, state: RetryState = FRESH, attempt: int = 1, **run: Any) -> Step:
    policy = run.pop("policy", POLICY)
    return decide(classify(reply), reply, state, policy, attempt=attempt, **run)


# -- final answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [(OK, Outcome.STOPPED), (NOT, Outcome.NOT_STOPPED), (E404, Outcome.NOT_FOUND)],
)
def test_a_final_answer_settles_the_target_with_its_outcome(reply: Reply, outcome: Outcome) -> None:
    assert after(reply) == Step(Action.SETTLE, outcome)


@pytest.mark.parametrize(
    ("state", "who"),
    [(AMBIGUOUS, "attempt 1 (HTTP 500)"), (EARLIER_RUN, "an earlier run")],
    ids=["this-run", "an-earlier-run"],
)
def test_not_stopped_after_an_attempt_that_may_have_stopped_it_is_uncertain(
    state: RetryState, who: str
) -> None:
    assert after(NOT, state, attempt=2) == Step(
        Action.SETTLE,
        Outcome.UNCERTAIN,
        f"said 'not stopped', but {who} may already have stopped it; check the build",
    )


def test_an_untrusted_certificate_is_failed_at_once() -> None:
    assert after(UNTRUSTED) == Step(
        Action.SETTLE, Outcome.FAILED, "certificate not trusted: permanent, not retried"
    )


# -- transient failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "draw", "wait"),
    [(FRESH, 1.0, 0.5), (FRESH, 0.25, 0.125), (AMBIGUOUS, 0.5, 0.5), (AMBIGUOUS, 0.0, 0.0)],
)
def test_a_transient_failure_is_retried_after_its_jittered_backoff(
    state: RetryState, draw: float, wait: float
) -> None:
    step = after(TIMEOUT, state, attempt=state.transient + 1, draw=draw)
    assert (step.action, step.wait, step.takes_budget, step.detail) == (
        Action.RETRY,
        wait,
        True,
        "timeout",
    )
    assert step.state is not None
    assert step.state.transient == state.transient + 1


@pytest.mark.parametrize(
    ("retry_after", "budget_wait", "wait"),
    [(2.0, 0.0, 2.0), (600.0, 0.0, 60.0), (None, 3.5, 3.5), (2.0, 3.5, 3.5), (None, 0.1, 0.5)],
    ids=["retry-after", "retry-after-capped", "budget", "budget-longer", "backoff-longer"],
)
def test_a_retry_waits_for_the_longest_of_backoff_retry_after_and_budget(
    retry_after: float | None, budget_wait: float, wait: float
) -> None:
    reply = E500._replace(retry_after=retry_after)
    assert after(reply, draw=1.0, budget_wait=budget_wait).wait == wait


def test_the_first_attempt_that_may_have_stopped_it_is_the_one_named() -> None:
    first = after(E500, attempt=1)
    assert first.state == RetryState(
        transient=1, maybe_applied=True, ambiguity="attempt 1 (HTTP 500 CB.00060101)"
    )
    second = after(TIMEOUT, first.state, attempt=2)
    assert second.state is not None
    assert second.state.ambiguity == "attempt 1 (HTTP 500 CB.00060101)"


def test_a_failure_that_could_not_have_reached_the_service_marks_nothing() -> None:
    step = after(REFUSED)
    assert step.state == RetryState(transient=1)


def test_the_last_transient_attempt_gives_up_and_says_which_may_have_stopped_it() -> None:
    state = RetryState(transient=4, maybe_applied=True, ambiguity="attempt 2 (timeout)")
    assert after(E500, state, attempt=5) == Step(
        Action.GIVE_UP,
        Outcome.FAILED,
        "gave up after 5 failed attempts; attempt 2 (timeout) may have stopped it",
        state=state._replace(transient=5),
    )


def test_a_failure_after_an_earlier_run_says_that_run_may_have_stopped_it() -> None:
    step = after(REFUSED, RetryState(transient=4, maybe_applied=True), attempt=5)
    assert step.detail == "gave up after 5 failed attempts; an earlier run may have stopped it"


# -- throttling and expired tokens -------------------------------------------------------------


def test_a_throttled_answer_is_retried_after_the_run_wide_pause_only() -> None:
    assert after(T429, draw=1.0, budget_wait=9.0) == Step(
        Action.RETRY, None, "HTTP 429 APIG.0308", 0.0, False, RetryState(throttled=1)
    )


def test_throttling_until_its_own_cap_gives_up() -> None:
    policy = RetryPolicy(max_throttled_attempts=3, max_attempts=1)
    step = after(T429, RetryState(throttled=2), attempt=3, policy=policy)
    assert (step.action, step.outcome, step.detail) == (
        Action.GIVE_UP,
        Outcome.FAILED,
        "still throttled after 3 attempts",
    )


@pytest.mark.parametrize(("refreshes", "action"), [(0, Action.REFRESH), (1, Action.REFRESH)])
def test_an_expired_token_is_refreshed_twice(refreshes: int, action: Action) -> None:
    assert after(STALE, RetryState(refreshes=refreshes)) == Step(
        action,
        Outcome.UNAUTHORIZED,
        "the token must be updated and could not be refreshed",
        state=RetryState(refreshes=refreshes + 1),
    )


def test_a_third_expiry_settles_the_target_unauthorized() -> None:
    step = after(STALE, RetryState(refreshes=2))
    assert (step.action, step.outcome) == (Action.SETTLE, Outcome.UNAUTHORIZED)


# -- the deadline ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "paused_until", "action"),
    [
        (8.0, -math.inf, Action.RETRY),  # starts again at 9.0: within 10 s of 0.0
        (9.0, -math.inf, Action.RETRY),  # at 10.0 exactly: still within
        (9.5, -math.inf, Action.GIVE_UP),  # at 10.5
        (1.0, 10.5, Action.GIVE_UP),  # the run-wide pause holds it past the deadline
    ],
)
def test_no_retry_is_scheduled_to_start_past_the_deadline(
    now: float, paused_until: float, action: Action
) -> None:
    policy = RetryPolicy(deadline=10.0, initial_backoff=1.0, jitter=False)
    step = after(E500, policy=policy, now=now, started=0.0, paused_until=paused_until)
    assert step.action is action
    if action is Action.GIVE_UP:
        assert step.detail == (
            "deadline of 10 s reached before the next attempt could start; "
            "attempt 1 (HTTP 500 CB.00060101) may have stopped it"
        )


def test_a_throttling_pause_past_the_deadline_gives_up() -> None:
    policy = RetryPolicy(deadline=10.0)
    step = after(T429, policy=policy, now=1.0, started=0.0, paused_until=11.0)
    assert (step.action, step.state) == (Action.GIVE_UP, RetryState(throttled=1))


def test_a_target_out_of_time_before_its_next_start_gives_up() -> None:
    assert out_of_time(FRESH, RetryPolicy(deadline=2.5)) == Step(
        Action.GIVE_UP,
        Outcome.FAILED,
        "deadline of 2.5 s reached before the next attempt could start",
    )


# -- the first answers -------------------------------------------------------------------------


@pytest.mark.parametrize("reply", [OK, E404, URL_NOT_FOUND, REFUSED, E500, UNTRUSTED])
def test_a_first_answer_is_shown_to_the_guard_before_anything_else(reply: Reply) -> None:
    assert after(reply, first_answer=True) == Step(Action.HOLD)


@pytest.mark.parametrize("reply", [T429, STALE])
def test_throttling_and_an_expired_token_are_no_first_answer(reply: Reply) -> None:
    assert after(reply, first_answer=True).action in (Action.RETRY, Action.REFRESH)


@pytest.mark.parametrize(
    ("reply", "action"),
    [
        (URL_NOT_FOUND, Action.ABORT),
        (REFUSED, Action.ABORT),
        (UNTRUSTED, Action.ABORT),
        (E404, Action.SETTLE),  # a job unknown: about the target, whatever the guard says
        (E500, Action.RETRY),
    ],
)
def test_once_the_call_is_known_to_be_wrong_a_fault_says_nothing_about_the_target(
    reply: Reply, action: Action
) -> None:
    assert after(reply, call_is_wrong=True).action is action


# -- what is drawn -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "state", "first_answer", "draws"),
    [
        (E500, FRESH, False, True),
        (TIMEOUT, RetryState(transient=3), False, True),
        (TIMEOUT, RetryState(transient=4), False, False),  # gives up: no backoff
        (E500, FRESH, True, False),  # held first
        (T429, FRESH, False, False),
        (STALE, FRESH, False, False),
        (OK, FRESH, False, False),
    ],
)
def test_the_draw_and_the_budget_are_used_exactly_when_draws_backoff_says(
    reply: Reply, state: RetryState, first_answer: bool, draws: bool
) -> None:
    judged = classify(reply)
    assert draws_backoff(judged, state, POLICY, first_answer=first_answer) is draws
    low = after(reply, state, first_answer=first_answer, draw=0.1, budget_wait=0.0)
    high = after(reply, state, first_answer=first_answer, draw=0.9, budget_wait=0.3)
    assert (low != high) is draws


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        (E500, "HTTP 500 CB.00060101"),
        (Reply(kind=ReplyKind.HTTP_ERROR, http_status=502), "HTTP 502"),
        (Reply(kind=ReplyKind.BAD_BODY, http_status=200), "an unreadable HTTP 200 answer"),
        (REFUSED, "connection refused"),
        (TIMEOUT, "timeout"),
        (Reply(kind=ReplyKind.CONNECTION), "connection"),
    ],
)
def test_an_answer_is_described_in_a_few_words(reply: Reply, text: str) -> None:
    assert describe_reply(reply) == text
