"""Run-wide guards: failure threshold parsing and arithmetic, the auth circuit breaker, the
failing-server guard (fed answer times by hand, as the engine feeds the injected clock's) and
the guard that judges a run's first answers."""

from __future__ import annotations

import pytest

from bulkstop.guards import (
    AuthBreaker,
    FailingServerGuard,
    FailureThreshold,
    SystematicFaultGuard,
)


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


# -- FailingServerGuard ------------------------------------------------------------------------


def test_failing_server_guard_trips_once_it_has_watched_a_whole_window_of_failures() -> None:
    guard = FailingServerGuard(10.0, share=0.9, min_calls=5, slots=10)
    tripped = [t for t in range(30) if guard.record(float(t), failed=True)]  # one a second
    assert tripped == [10]  # the first answer is 10 s old: the window is judged, and trips
    assert guard.tripped
    assert guard.describe() == "the server failed 100 % of calls for the last 10 s (10 of 10)"


@pytest.mark.parametrize(("failing_of_20", "trips"), [(20, True), (19, True), (18, False)])
def test_failing_server_guard_trips_at_its_share_of_failures(
    failing_of_20: int, trips: bool
) -> None:
    guard = FailingServerGuard(10.0, share=0.95, min_calls=5, slots=10)
    answers = [(i / 20, i % 20 >= 20 - failing_of_20) for i in range(20 * 60)]  # 20 a second
    assert any(guard.record(now, failed) for now, failed in answers) is trips


def test_failing_server_guard_needs_enough_calls_in_its_window() -> None:
    guard = FailingServerGuard(10.0, min_calls=5, slots=10)
    # one failure every 3 s: never more than 4 in a window of 10 s
    assert not any(guard.record(float(t), failed=True) for t in range(0, 100, 3))


def test_failing_server_guard_forgets_what_is_older_than_its_window() -> None:
    guard = FailingServerGuard(10.0, share=0.95, min_calls=5, slots=10)
    answers = [(float(t), t < 10 or t >= 20) for t in range(40)]  # fails, heals, fails again
    tripped = [now for now, failed in answers if guard.record(now, failed)]
    # at t = 28 the window still holds the success of t = 19 (9 of 10 failed); at 29 it does not
    assert tripped == [29.0]
    assert (guard.failed, guard.total) == (10, 10)


def test_failing_server_guard_with_window_zero_never_trips() -> None:
    guard = FailingServerGuard(0)
    assert not guard.enabled
    assert not any(guard.record(float(t), failed=True) for t in range(1000))


def test_failing_server_guard_repr_shows_its_state() -> None:
    guard = FailingServerGuard(30.0)
    guard.record(0.0, failed=True)
    guard.record(0.5, failed=False)
    assert repr(guard) == (
        "FailingServerGuard(window=30, share=0.95, failed=1, total=2, tripped=False)"
    )


# -- SystematicFaultGuard ------------------------------------------------------------------------


def test_systematic_guard_trips_when_the_first_targets_all_show_one_fault() -> None:
    guard = SystematicFaultGuard(3)
    assert [guard.record("dns") for _ in range(3)] == [False, False, True]
    assert (guard.state, guard.fault, guard.seen) == ("tripped", "dns", 3)
    assert guard.record("dns") is False  # trips once


@pytest.mark.parametrize("second", [None, "refused"], ids=["no-fault", "another-fault"])
def test_systematic_guard_is_cleared_for_good_by_an_answer_without_that_fault(
    second: str | None,
) -> None:
    guard = SystematicFaultGuard(3)
    guard.record("dns")
    guard.record(second)
    assert guard.state == "cleared"
    assert not any(guard.record("dns") for _ in range(10))


def test_systematic_guard_concludes_on_what_it_saw_when_no_answer_can_come() -> None:
    guard = SystematicFaultGuard(5)
    assert guard.conclude() is False  # nothing seen: nothing to conclude
    guard.record("api_not_served")
    guard.record("api_not_served")
    assert guard.conclude() is True
    assert (guard.state, guard.seen) == ("tripped", 2)


def test_systematic_guard_with_limit_zero_is_cleared_from_the_start() -> None:
    guard = SystematicFaultGuard(0)
    assert not guard.watching
    assert not any(guard.record("dns") for _ in range(10))


def test_systematic_guard_repr_shows_its_state() -> None:
    guard = SystematicFaultGuard(5)
    guard.record("refused")
    assert repr(guard) == (
        "SystematicFaultGuard(limit=5, state='watching', fault='refused', seen=1)"
    )
