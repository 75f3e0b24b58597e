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
    Withdrawal,
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


def test_budget_lends_a_token_when_spent_and_says_how_long_time_takes_to_pay_it() -> None:
    budget = RetryBudget(ratio=0.5, reserve=2, refill=1.0, now=0.0)
    # two tokens in reserve, then each retry waits one more second of refill than the last
    assert [budget.withdraw(0.0).wait for _ in range(4)] == [0.0, 0.0, 1.0, 2.0]
    assert budget.waits == 2
    assert budget.balance == -2.0


def test_first_attempts_and_time_refill_the_budget() -> None:
    budget = RetryBudget(ratio=0.5, reserve=1, refill=0.25, now=0.0)
    assert budget.withdraw(0.0) == Withdrawal(0.0, slow_down=False)  # the reserve
    budget.deposit(0.0)
    budget.deposit(0.0)  # two first attempts earn one retry
    assert budget.withdraw(0.0).wait == 0.0
    # 2 s of time earned half a token; the other half takes 2 s more at 0.25 a second
    assert budget.withdraw(2.0).wait == 2.0


def test_budget_keeps_at_most_its_capacity() -> None:
    budget = RetryBudget(ratio=1.0, reserve=3, refill=1.0, now=0.0)
    for _ in range(100):
        budget.deposit(0.0)  # a long healthy stretch stores no flood of retries
    assert budget.balance == 3.0
    assert [budget.withdraw(1000.0).wait for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_budget_waits_stay_bounded_by_the_workers_holding_credit() -> None:
    """Eight workers whose retries all fail: none ever waits more than 8 / refill seconds."""
    budget = RetryBudget(ratio=0.0, reserve=0, refill=2.0, now=0.0)
    ready = [budget.withdraw(0.0).wait for _ in range(8)]
    assert ready == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]  # one every 1 / refill s
    waits = []
    for _ in range(3):  # each worker's retry fails again the moment its token comes
        for worker, at in enumerate(ready):
            wait = budget.withdraw(at).wait
            waits.append(wait)
            ready[worker] = at + wait
    assert waits == [4.0] * 24  # the queue never grows past the eight workers: no starvation


def test_asking_how_long_a_retry_would_wait_takes_nothing_and_says_what_withdraw_will() -> None:
    budget = RetryBudget(ratio=0.2, reserve=1, refill=2.0, now=0.0)
    assert [budget.wait_for_token(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert budget.withdraw(0.0).wait == 0.0  # the one token was still there
    budget.deposit(0.1)  # 0.2 earned by a first attempt and 0.2 by time: 0.4 of a token
    assert budget.wait_for_token(0.1) == pytest.approx(0.3)  # time pays the 0.6 left in 0.3 s
    assert budget.wait_for_token(0.1) == budget.withdraw(0.1).wait
    assert budget.waits == 1


def test_budget_asks_to_slow_down_only_while_its_debt_deepens() -> None:
    budget = RetryBudget(ratio=0.0, reserve=0, refill=1.0, now=0.0)
    assert budget.withdraw(0.0) == Withdrawal(1.0, slow_down=True)  # the first credit
    assert budget.withdraw(0.5) == Withdrawal(1.5, slow_down=True)  # 1.5 deep: deeper
    # a second later time has paid 1 of it: a new credit leaves it 1.5 deep, no deeper
    assert budget.withdraw(1.5) == Withdrawal(1.5, slow_down=False)
    assert budget.withdraw(1.5) == Withdrawal(2.5, slow_down=True)  # deeper again
    # once time has repaid the whole debt, the next credit starts a new episode
    assert budget.withdraw(10.0) == Withdrawal(1.0, slow_down=True)


@pytest.mark.parametrize(
    "kwargs", [{"refill": 0.0}, {"refill": -1.0}, {"ratio": -0.1}, {"reserve": -1.0}]
)
def test_budget_rejects_settings_that_could_stall_or_make_no_sense(
    kwargs: dict[str, float],
) -> None:
    with pytest.raises(ValueError, match="must be"):
        RetryBudget(**kwargs)


def test_budget_repr_shows_its_state() -> None:
    budget = RetryBudget(ratio=0.2, reserve=2, refill=4.0, now=0.0)
    budget.withdraw(0.0)
    assert repr(budget) == ("RetryBudget(balance=1.00, capacity=2, ratio=0.2, refill=4/s, waits=0)")
