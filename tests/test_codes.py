"""What CodeArts' answers mean, as bulkstop reads them (bulkstop.codes)."""

from __future__ import annotations

import pytest

from bulkstop import codes
from bulkstop.models import Outcome


@pytest.mark.parametrize(
    ("status", "code", "throttling"),
    [
        (429, "APIG.0308", True),
        (429, "", True),
        (400, "CB.00060211", True),
        (500, "CB.00060211", True),
        (400, "CB.00060200", False),
        (500, "CB.00060100", False),
    ],
)
def test_throttling_is_known_by_its_code_whatever_the_status(
    status: int, code: str, throttling: bool
) -> None:
    assert codes.is_throttling(status, code) is throttling


@pytest.mark.parametrize(
    ("status", "code", "maybe"),
    [
        (None, "", True),  # no answer: a timeout or a cut connection
        (500, "CB.00060101", True),
        (502, "", True),
        (500, "CB.00060211", False),  # throttled at the gateway: turned away
        (429, "APIG.0308", False),
        (400, "CB.00060200", False),
        (404, "CB.00060214", False),
        (401, "APIG.0301", False),
    ],
)
def test_what_may_have_been_carried_out(status: int | None, code: str, maybe: bool) -> None:
    assert codes.may_have_applied(status, code) is maybe


@pytest.mark.parametrize(
    ("status", "code", "failure"),
    [(500, "", True), (503, "", True), (408, "", True), (500, "CB.00060211", False),
     (404, "", False), (None, "", False)],
)  # fmt: skip
def test_server_failures_are_5xx_and_408_but_not_throttling(
    status: int | None, code: str, failure: bool
) -> None:
    assert codes.is_server_failure(status, code) is failure


def test_token_expiry_is_401_with_its_own_code() -> None:
    assert codes.is_token_expired(401, "APIG.0307")
    assert not codes.is_token_expired(401, "APIG.0301")
    assert not codes.is_token_expired(403, "APIG.0307")


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(401, Outcome.UNAUTHORIZED), (403, Outcome.FORBIDDEN), (404, Outcome.NOT_FOUND),
     (400, Outcome.REJECTED), (409, Outcome.REJECTED)],
)  # fmt: skip
def test_final_error_outcomes_by_status(status: int, outcome: Outcome) -> None:
    assert codes.error_outcome(status) is outcome
