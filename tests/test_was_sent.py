"""Which records of a report a verification checks: those whose stop was sent."""

from __future__ import annotations

import pytest
from reportkit import result

from bulkstop.models import Outcome
from bulkstop.report.verdicts import was_sent
from bulkstop.verifying import targets_to_verify

NEVER_SENT = {Outcome.INVALID, Outcome.DUPLICATE, Outcome.DRY_RUN, Outcome.SKIPPED}


@pytest.mark.parametrize("outcome", sorted(NEVER_SENT, key=lambda o: o.value))
def test_a_row_no_stop_was_sent_for_is_not_verified(outcome: Outcome) -> None:
    # dry_run: only planned; skipped: --only-outcome left it to the earlier report.
    record = result(0, outcome, attempts=0, http_status=None, request_id="")

    assert not was_sent(record)
    assert targets_to_verify([record]) == []


@pytest.mark.parametrize(
    "outcome", sorted(set(Outcome) - NEVER_SENT - {Outcome.ABORTED}, key=lambda o: o.value)
)
def test_every_other_answered_row_is_verified(outcome: Outcome) -> None:
    assert was_sent(result(0, outcome))


def test_an_aborted_row_is_verified_only_when_it_may_have_been_sent() -> None:
    assert not was_sent(result(0, Outcome.ABORTED, attempts=0))
    assert was_sent(result(0, Outcome.ABORTED, attempts=1))
    assert was_sent(result(0, Outcome.ABORTED, attempts=0, maybe_applied=True))
