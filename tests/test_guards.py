"""Run-wide guards: failure threshold parsing and arithmetic, the auth circuit breaker."""

from __future__ import annotations

import pytest

from bulkstop.guards import AuthBreaker, FailureThreshold


@pytest.mark.parametrize(
    ("text", "count", "percent"),
    [("10", 10, None), ("0", 0, None), ("5%", None, 5.0), (" 2.5 % ", None, 2.5)],
)
def test_threshold_parses_count_or_percentage(
    text: str, count: int | None, percent: float | None
) -> None:
    threshold = FailureThreshold.parse(text)
    assert (threshold.count, threshold.percent) == (count, percent)


@pytest.mark.parametrize("text", ["", "abc", "-1", "1.5", "100%", "5%%"])
def test_threshold_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected|must"):
        FailureThreshold.parse(text)


def test_count_threshold_trips_above_the_count() -> None:
    threshold = FailureThreshold(count=3)
    assert not threshold.exceeded(failures=3, finished=3)
    assert threshold.exceeded(failures=4, finished=4)


def test_percentage_waits_for_the_minimum_sample() -> None:
    threshold = FailureThreshold(percent=10.0, min_sample=20)
    assert not threshold.exceeded(failures=5, finished=19)  # 26 % but too few to judge
    assert threshold.exceeded(failures=3, finished=20)  # 15 %
    assert not threshold.exceeded(failures=2, finished=20)  # exactly 10 % is allowed


def test_breaker_trips_after_limit_in_a_row_and_stays_tripped() -> None:
    breaker = AuthBreaker(3)
    assert [breaker.record(True) for _ in range(3)] == [False, False, True]
    assert breaker.tripped
    assert breaker.record(True) is False  # trips once


def test_breaker_streak_is_closed_by_any_other_answer() -> None:
    breaker = AuthBreaker(3)
    breaker.record(True)
    breaker.record(True)
    breaker.record(False)
    assert [breaker.record(True) for _ in range(2)] == [False, False]
    assert not breaker.tripped


def test_breaker_counts_a_forbidden_job_once_per_streak() -> None:
    breaker = AuthBreaker(3)
    for _ in range(10):  # many builds of one job the user may not touch
        assert breaker.record(True, forbidden_job="job-a") is False
    assert breaker.streak == 1
    breaker.record(True, forbidden_job="job-b")
    assert breaker.record(True, forbidden_job="job-c") is True  # three jobs refused: credentials


def test_breaker_limit_zero_never_trips() -> None:
    breaker = AuthBreaker(0)
    assert not any(breaker.record(True) for _ in range(100))
