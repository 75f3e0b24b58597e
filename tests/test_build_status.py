"""Has a build ended? The safe-side mapping of bulkstop.codes: ended only when an answer says so."""

from __future__ import annotations

from typing import Any

import pytest

from bulkstop import codes
from bulkstop.codes import build_ended

#: Every terminal word the notes on CodeArts name (docs' examples and the usual others).
TERMINAL = ["SUCCESS", "FAILURE", "FAILED", "ABORTED", "CANCELED", "CANCELLED", "TIMEOUT",
            "SCHEDULE_FAILURE"]  # fmt: skip


@pytest.mark.parametrize("word", TERMINAL)
def test_every_terminal_status_word_means_ended(word: str) -> None:
    assert build_ended(status=word)


@pytest.mark.parametrize("word", ["success", "Aborted", "schedule_failure", " FAILURE ", "timeout"])
def test_terminal_words_are_read_in_any_case_and_with_spaces_around(word: str) -> None:
    assert build_ended(status=word)


@pytest.mark.parametrize(
    "word",
    [
        "RUNNING",
        "ABORTING",  # the simulator's "stop sent, not yet in effect": still running
        "BUILDING",
        "QUEUED",
        "PENDING",
        "SUCCEEDED",  # a plausible word, but not one the notes name: not trusted
        "ABORT",
        "SUCCESS_PARTIAL",
        "SUCC ESS",
    ],
)
def test_running_and_unknown_status_words_mean_not_ended(word: str) -> None:
    assert not build_ended(status=word)


@pytest.mark.parametrize("value", [None, "", "   ", 0, 1, True, False, ["SUCCESS"], {"a": 1}])
def test_empty_missing_or_wrongly_typed_status_means_not_ended(value: Any) -> None:
    assert not build_ended(status=value)


@pytest.mark.parametrize("value", ["Finished", "finished", "FINISHED", " Finished "])
def test_finished_running_status_means_ended_in_any_case(value: str) -> None:
    assert build_ended(job_running_status=value)


@pytest.mark.parametrize("value", ["Running", "running", "Unfinished", "", None, 1, True])
def test_any_other_running_status_means_not_ended(value: Any) -> None:
    assert not build_ended(job_running_status=value)


def test_building_false_means_ended() -> None:
    assert build_ended(building=False)


@pytest.mark.parametrize("value", [True, None, 0, "false", "False", ""])
def test_building_true_or_not_a_boolean_means_not_ended(value: Any) -> None:
    assert not build_ended(building=value)


@pytest.mark.parametrize(
    ("fields", "ended"),
    [
        ({"building": True, "status": "SUCCESS"}, False),  # "still building" wins
        ({"building": True, "job_running_status": "Finished"}, False),
        ({"job_running_status": "Running", "status": "ABORTED"}, True),
        ({"job_running_status": "Finished", "status": "RUNNING"}, True),
        ({"job_running_status": "Running", "status": "ABORTING"}, False),
    ],
)
def test_one_positive_answer_is_enough_unless_building_says_otherwise(
    fields: dict[str, Any], ended: bool
) -> None:
    assert build_ended(**fields) is ended


def test_nothing_said_means_not_ended() -> None:
    assert not build_ended()


@pytest.mark.parametrize(
    ("status", "code", "not_found"),
    [(422, "DEVCB.00031006", True), (200, "DEVCB.00031006", True), (404, "CB.00060214", False),
     (422, "DEVCB.00031007", False), (422, "", False)],
)  # fmt: skip
def test_job_not_found_is_known_by_its_code(status: int, code: str, not_found: bool) -> None:
    assert codes.is_job_not_found(status, code) is not_found
