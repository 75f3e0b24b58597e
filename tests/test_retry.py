"""Retry policy: pure backoff values, classification, the run-wide budget."""

from __future__ import annotations

import pytest

from bulkstop.models import Outcome, Reply, ReplyKind, TransportFailure
from bulkstop.retry import (
    Decision,
    RetryBudget,
    RetryPolicy,
    SystematicFault,
    Verdict,
    classify,
    compute_backoff,
)


@pytest.mark.parametrize(
    ("retry", "draw", "expected"),
    [(1, 1.0, 0.5), (2, 1.0, 1.0), (3, 1.0, 2.0), (4, 0.5, 2.0), (10, 1.0, 30.0), (3, 0.0, 0.0)],
)
def test_backoff_is_full_jitter_of_a_capped_exponential(
    retry: int, draw: float, expected: float
) -> None:
    policy = RetryPolicy(initial_backoff=0.5, multiplier=2.0, max_backoff=30.0)
    assert compute_backoff(policy, retry, draw) == expected


def test_backoff_without_jitter_is_the_cap() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=5.0, jitter=False)
    assert [compute_backoff(policy, n, 0.123) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_survives_huge_retry_numbers() -> None:
    assert compute_backoff(RetryPolicy(max_backoff=7.0, jitter=False), 10_000, 0.0) == 7.0


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"multiplier": 0.5}, {"initial_backoff": -1}, {"deadline": 0}]
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def _http(status: int, code: str = "") -> Reply:
    return Reply(kind=ReplyKind.HTTP_ERROR, http_status=status, error_code=code)


@pytest.mark.parametrize(
    ("reply", "verdict", "outcome"),
    [
        (Reply(kind=ReplyKind.STOPPED, http_status=200), Verdict.FINAL, Outcome.STOPPED),
        (Reply(kind=ReplyKind.NOT_STOPPED, http_status=200), Verdict.FINAL, Outcome.NOT_STOPPED),
        (_http(400, "CB.00060200"), Verdict.FINAL, Outcome.REJECTED),
        (_http(400, "CB.00060201"), Verdict.FINAL, Outcome.REJECTED),
        (_http(400, "CB.00060211"), Verdict.THROTTLED, None),
        (_http(500, "CB.00060211"), Verdict.THROTTLED, None),
        (_http(429, "APIG.0308"), Verdict.THROTTLED, None),
        (_http(429), Verdict.THROTTLED, None),
        (_http(404, "CB.00060214"), Verdict.FINAL, Outcome.NOT_FOUND),
        (_http(401, "APIG.0301"), Verdict.FINAL, Outcome.UNAUTHORIZED),
        (_http(401, "APIG.0307"), Verdict.STALE_CREDENTIAL, None),
        (_http(403), Verdict.FINAL, Outcome.FORBIDDEN),
        (_http(500, "CB.00060100"), Verdict.TRANSIENT, None),
        (_http(500, "CB.00060101"), Verdict.TRANSIENT, None),
        (_http(502), Verdict.TRANSIENT, None),
        (_http(503), Verdict.TRANSIENT, None),
        (_http(504), Verdict.TRANSIENT, None),
        (_http(302), Verdict.FINAL, Outcome.REJECTED),
        (Reply(kind=ReplyKind.TIMEOUT), Verdict.TRANSIENT, None),
        (Reply(kind=ReplyKind.CONNECTION), Verdict.TRANSIENT, None),
        (Reply(kind=ReplyKind.BAD_BODY, http_status=200), Verdict.TRANSIENT, None),
    ],
)
def test_classify(reply: Reply, verdict: Verdict, outcome: Outcome | None) -> None:
    decision = classify(reply)
    assert decision.verdict is verdict
    assert decision.outcome is outcome


def _cannot_connect(failure: TransportFailure) -> Reply:
    return Reply(kind=ReplyKind.CONNECTION, transport_failure=failure)


@pytest.mark.parametrize(
    ("reply", "decision"),
    [
        (
            _http(404, "CB.00060214"),
            Decision(Verdict.FINAL, Outcome.NOT_FOUND, SystematicFault.API_NOT_SERVED),
        ),
        (_http(404), Decision(Verdict.FINAL, Outcome.NOT_FOUND, SystematicFault.API_NOT_SERVED)),
        (_http(404, "CB.00060404"), Decision(Verdict.FINAL, Outcome.NOT_FOUND)),  # unknown job
        (
            _cannot_connect(TransportFailure.DNS),
            Decision(Verdict.TRANSIENT, fault=SystematicFault.DNS),
        ),
        (
            _cannot_connect(TransportFailure.REFUSED),
            Decision(Verdict.TRANSIENT, fault=SystematicFault.REFUSED),
        ),
        (
            _cannot_connect(TransportFailure.CERTIFICATE),
            Decision(Verdict.FINAL, Outcome.FAILED, SystematicFault.CERTIFICATE),
        ),
        (Reply(kind=ReplyKind.CONNECTION), Decision(Verdict.TRANSIENT)),  # a reset: no fault
    ],
    ids=[
        "url-not-found",
        "404-not-codearts",
        "unknown-job",
        "dns",
        "refused",
        "certificate",
        "reset",
    ],
)
def test_classify_names_the_answers_that_show_the_call_itself_is_wrong(
    reply: Reply, decision: Decision
) -> None:
    assert classify(reply) == decision


def test_budget_starts_with_reserve_and_refuses_when_spent() -> None:
    budget = RetryBudget(ratio=0.5, reserve=2)
    assert [budget.try_withdraw() for _ in range(3)] == [True, True, False]
    assert budget.refused == 1
    budget.deposit()
    budget.deposit()  # two first attempts earn one retry
    assert budget.try_withdraw() is True
    assert budget.try_withdraw() is False
    assert budget.refused == 2


def test_budget_bounds_retries_of_a_failing_run() -> None:
    budget = RetryBudget(ratio=0.2, reserve=20)
    retries = 0
    for _ in range(1000):  # every target fails every attempt and asks for 4 retries
        budget.deposit()
        retries += sum(budget.try_withdraw() for _ in range(4))
    assert retries == 220  # reserve + ratio × targets, not 4000
