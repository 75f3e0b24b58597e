"""The data types: what a Target accepts, and how records are checked when read back."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bulkstop.models import (
    REPORT_FIELDS,
    RESULT_ADAPTER,
    InputRow,
    Outcome,
    Result,
    Target,
    TargetKey,
    _parse_target,
    key_digest,
    parse_target,
)

JOB = "f9d6c8466d614a9788e9a0acf6c15f46"


def test_a_target_is_a_normalised_pair() -> None:
    target = Target(JOB, 20)
    assert (target.job_id, target.build_no) == (JOB, 20)
    assert target.key == (JOB, 20)
    assert type(target.key) is TargetKey
    assert (target.key.job_id, target.key.build_no) == (JOB, 20)
    assert target == Target(job_id=JOB, build_no=20)
    assert hash(target) == hash(Target(JOB, 20))
    assert target != Target(JOB, 21)


def test_a_key_digest_is_the_same_in_every_process_and_tells_keys_apart() -> None:
    # pinned: structures of different processes (a run and its resume) may compare digests
    assert key_digest(TargetKey(JOB, 20)) == 0x2BC1787E0E22D4652DCAB579B49D9B67
    digests = {
        key_digest(key)
        for key in (TargetKey(JOB, 20), TargetKey(JOB, 21), Target(JOB[::-1], 20).key)
    }
    assert len(digests) == 3
    assert all(0 <= digest < 2**128 for digest in digests)


@pytest.mark.parametrize(
    ("job_id", "build_no", "message"),
    [
        ("abc", 1, "job_id: must be 32 characters of [0-9a-z], got 'abc' (3 characters)"),
        (JOB.upper(), 1, "job_id: must be lowercase [0-9a-z]"),
        (JOB, 0, "build_no: must be an integer ≥ 1, got 0"),
        (JOB, True, "build_no: must be an integer ≥ 1, got True"),
        (None, 1, "job_id: missing"),
        # valid once stripped or converted, which only parse_target does
        (f" {JOB} ", 1, "not normalised: ' f9d6"),
        (JOB, "7", "not normalised: 'f9d6c8466d614a9788e9a0acf6c15f46', '7'"),
    ],
)
def test_a_target_refuses_what_is_not_normalised(job_id: Any, build_no: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        Target(job_id, build_no)


def test_a_target_cannot_be_changed() -> None:
    target = Target(JOB, 20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.build_no = 21  # type: ignore[misc]


def test_a_parsed_target_is_a_target_like_any_other() -> None:
    parsed = parse_target(JOB, "20")
    assert isinstance(parsed, Target)
    assert (parsed, hash(parsed), repr(parsed)) == (
        Target(JOB, 20),
        hash(Target(JOB, 20)),
        repr(Target(JOB, 20)),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.build_no = 21  # type: ignore[misc]


def test_parse_target_normalises_what_target_refuses() -> None:
    assert parse_target(f"  {JOB}\t", " 7 ") == Target(JOB, 7)
    assert parse_target(JOB, "+3") == "build_no: must be an integer ≥ 1, got '+3'"
    assert parse_target("", "") == "job_id: missing; build_no: missing"


_JOB_CHARS = "0123456789abcdefABCZ \t\u00b2\u0663"
_BUILD_TEXT = st.text(alphabet="0123456789 +-.\u00b2\u0663x", max_size=14)


@given(
    job_id=st.one_of(st.text(alphabet=_JOB_CHARS, min_size=30, max_size=34), st.just(JOB)),
    build_no=st.one_of(
        st.integers(min_value=-5, max_value=2**31 + 5),
        st.integers(),
        _BUILD_TEXT,
        st.booleans(),
        st.none(),
    ),
)
def test_the_quick_path_for_normal_rows_agrees_with_the_general_one(
    job_id: str, build_no: Any
) -> None:
    assert parse_target(job_id, build_no) == _parse_target(job_id, build_no)


@pytest.mark.parametrize(
    ("build_no", "expected"),
    [
        (2147483647, Target(JOB, 2147483647)),
        ("2147483647", Target(JOB, 2147483647)),
        ("0002147483647", Target(JOB, 2147483647)),  # leading zeros do not count
        ("0" * 5000 + "7", Target(JOB, 7)),
        (2147483648, "build_no: must be at most 2147483647, got 2147483648"),
        ("2147483648", "build_no: must be at most 2147483647, got 2147483648"),
        ("99999999999", "build_no: must be at most 2147483647, got 99999999999"),
        ("9" * 40, "build_no: must be at most 2147483647, got a number of 40 digits"),
        (2**100, "build_no: must be at most 2147483647, got a number of 101 bits"),
    ],
    ids=[
        "max",
        "max-digits",
        "max-zeros",
        "zeros",
        "max+1",
        "max+1-digits",
        "11-digits",
        "40-digits",
        "2**100",
    ],
)
def test_build_no_is_bounded_by_codearts_int32(build_no: Any, expected: Target | str) -> None:
    assert parse_target(JOB, build_no) == expected


def test_a_target_refuses_a_build_no_beyond_int32() -> None:
    with pytest.raises(ValueError, match=r"^build_no: must be at most 2147483647, got 2147483648$"):
        Target(JOB, 2**31)


def test_input_rows_carry_the_raw_text_of_invalid_rows() -> None:
    row = InputRow.from_values(4, "ABC", "x")
    assert row.target is None
    assert (row.line, row.raw_job_id, row.raw_build_no) == (4, "ABC", "x")
    assert row.error is not None
    assert row.error.startswith("job_id: ")
    good = InputRow.from_values(5, JOB, 2)
    assert good.target == Target(JOB, 2)
    assert good.error is None


@pytest.mark.parametrize("build_no", [2, "2", " 2 ", "0002"])
def test_a_valid_row_is_the_row_its_constructor_makes_and_as_frozen(build_no: Any) -> None:
    row = InputRow.from_values(5, JOB, build_no)
    made = InputRow(
        line=5, target=Target(JOB, 2), error=None, raw_job_id=JOB, raw_build_no=str(build_no)
    )
    assert row == made
    assert hash(row) == hash(made)
    assert repr(row) == repr(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.line = 6  # type: ignore[misc]


def test_result_fields_are_the_report_columns_in_order() -> None:
    assert REPORT_FIELDS == (
        "line", "job_id", "build_no", "outcome", "http_status", "error_code", "error_msg",
        "request_id", "attempts", "started_at", "finished_at", "elapsed_ms", "detail",
        "maybe_applied", "run", "verified", "build_status",
    )  # fmt: skip
    result = Result(line=3, job_id=JOB, build_no="2", outcome=Outcome.STOPPED)
    assert list(result) == [3, JOB, "2", Outcome.STOPPED, None, "", "", "", 0, None, None,
                            None, "", False, 1, "", ""]  # fmt: skip


def test_records_read_back_are_validated_field_by_field() -> None:
    record = RESULT_ADAPTER.validate_python(
        {
            "line": "3",
            "job_id": JOB,
            "build_no": "2",
            "outcome": "not_stopped",
            "http_status": "200",
            "started_at": "2026-11-28T10:00:00.250Z",
            "run": "2",
        }
    )
    assert record == Result(
        line=3,
        job_id=JOB,
        build_no="2",
        outcome=Outcome.NOT_STOPPED,
        http_status=200,
        started_at=datetime(2026, 11, 28, 10, 0, 0, 250000, tzinfo=UTC),
        run=2,
    )
    assert isinstance(record, Result)
    with pytest.raises(ValidationError) as caught:
        RESULT_ADAPTER.validate_python({"line": "x", "job_id": JOB, "outcome": "gone"})
    # Which fields are at fault is ours to rely on; how pydantic types and words each error
    # changes between its releases.
    assert {error["loc"] for error in caught.value.errors()} == {
        ("line",),
        ("build_no",),
        ("outcome",),
    }
