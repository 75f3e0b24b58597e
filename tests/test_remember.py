"""What a run remembers of its settings (bulkstop.remember) and the file that keeps them
(bulkstop.report.remembered)."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest

from bulkstop.cli.output import _resume_hint
from bulkstop.errors import InputError, UsageError
from bulkstop.guards import FailureThreshold
from bulkstop.job import JobSettings
from bulkstop.remember import (
    NOT_REMEMBERED,
    changes,
    refuse_meaning_changes,
    remembered_values,
)
from bulkstop.report import read_settings, settings_path, write_settings


def test_every_setting_is_remembered_but_those_listed_as_not() -> None:
    settings = JobSettings(input="in.csv", endpoint="https://e.example", api="v1", rate=3.0)

    values = remembered_values(settings)

    names = {field.name for field in dataclasses.fields(JobSettings)}
    assert set(values) == names - NOT_REMEMBERED
    assert {"input", "report", "resume", "overwrite", "retry_failed"} <= NOT_REMEMBERED
    assert values["endpoint"] == "https://e.example"
    assert values["api"] == "v1"
    assert values["rate"] == 3.0


def test_a_setting_added_to_the_settings_is_remembered_by_default() -> None:
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Extended(JobSettings):
        verify_timeout: float = 7.5

    assert remembered_values(Extended(input="in.csv"))["verify_timeout"] == 7.5


@pytest.mark.parametrize(
    ("threshold", "spelled"),
    [(FailureThreshold.parse("10"), "10"), (FailureThreshold.parse("2.5%"), "2.5%")],
)
def test_values_are_kept_as_the_command_line_spells_them(
    threshold: FailureThreshold, spelled: str
) -> None:
    settings = JobSettings(input="in.csv", token_file=Path("/run/t"), max_failures=threshold)

    values = remembered_values(settings)

    assert values["token_file"] == "/run/t"
    assert values["max_failures"] == spelled
    assert FailureThreshold.parse(spelled) == threshold


def test_changes_name_each_setting_set_otherwise_and_ignore_int_versus_float() -> None:
    recorded = remembered_values(JobSettings(input="in.csv", api="v1", rate=10.0))
    now = JobSettings(input="in.csv", api="v3", rate=10, adaptive=False)

    assert [(c.name, c.remembered, c.now) for c in changes(recorded, now)] == [
        ("api", "v1", "v3"),
        ("adaptive", True, False),
    ]


def test_a_setting_the_file_does_not_hold_is_no_change() -> None:
    assert changes({"rate": 10.0}, JobSettings(input="in.csv", api="v1")) == []


def test_a_change_of_meaning_is_refused_naming_the_flag_and_both_values() -> None:
    recorded = remembered_values(JobSettings(input="in.csv", region="cn-north-4"))

    with pytest.raises(UsageError) as raised:
        refuse_meaning_changes(
            recorded, JobSettings(input="in.csv", region="cn-east-3", rate=1), Path("r.settings")
        )

    message = str(raised.value)
    assert "--region cn-east-3 (the run recorded cn-north-4)" in message
    assert "r.settings" in message
    assert "--rate" not in message  # the pace may change freely


def test_allow_settings_change_lets_the_meaning_change() -> None:
    recorded = remembered_values(JobSettings(input="in.csv", api="v1"))
    now = JobSettings(input="in.csv", api="legacy", allow_settings_change=True)

    refuse_meaning_changes(recorded, now, Path("r.settings"))  # no error


# --- the settings file ------------------------------------------------------------------------


def test_the_settings_file_round_trips_and_is_private(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"

    path = write_settings(report, run=3, credential="aksk", values={"rate": 2.0, "region": None})

    assert path == settings_path(report) == tmp_path / "r.csv.settings"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    read = read_settings(report)
    assert read is not None
    assert (read.run, read.credential, dict(read.values)) == (
        3,
        "aksk",
        {"rate": 2.0, "region": None},
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv.settings"]  # no temp left


def test_no_settings_file_reads_as_none(tmp_path: Path) -> None:
    assert read_settings(tmp_path / "r.csv") is None


def test_the_settings_file_is_never_written_through_a_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    os.symlink(target, settings_path(tmp_path / "r.csv"))

    with pytest.raises(UsageError, match="symbolic link"):
        write_settings(tmp_path / "r.csv", run=1, credential=None, values={})
    assert target.read_text() == "keep"


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_settings_file_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    # Whoever can write it chooses the endpoint (and token file) a resume sends the credential to.
    write_settings(tmp_path / "r.csv", run=1, credential="token", values={"endpoint": "https://a"})
    os.chmod(settings_path(tmp_path / "r.csv"), mode)

    with pytest.raises(InputError, match="writable by other users") as raised:
        read_settings(tmp_path / "r.csv")
    assert str(raised.value).startswith(f"{tmp_path / 'r.csv.settings'}: ")


def test_a_settings_file_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_settings(tmp_path / "r.csv", run=1, credential="token", values={"endpoint": "https://a"})
    owner = settings_path(tmp_path / "r.csv").stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)

    with pytest.raises(InputError, match="owned by another user"):
        read_settings(tmp_path / "r.csv")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "not JSON"),
        ("[]", "expected a JSON object"),
        ('{"format": 9, "run": 1, "settings": {}}', "field format"),
        ('{"format": 1, "run": 0, "settings": {}}', "field run"),
        ('{"format": 1, "run": 1, "credential": 5, "settings": {}}', "field credential"),
        ('{"format": 1, "run": 1, "settings": []}', "field settings:"),
        ('{"format": 1, "run": 1, "settings": {"rate": [1]}}', "field settings.rate"),
        ('{"format": 1, "run": 1, "settings": {"rate": NaN}}', "not JSON"),
    ],
)
def test_a_bad_settings_file_is_one_line_naming_the_file_and_field(
    tmp_path: Path, content: str, says: str
) -> None:
    settings_path(tmp_path / "r.csv").write_text(content)

    with pytest.raises(InputError) as raised:
        read_settings(tmp_path / "r.csv")

    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'r.csv.settings'}: ")
    assert says in message
    assert "\n" not in message


def test_a_bad_remembered_value_is_a_usage_error_naming_the_field(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bulkstop.cli import main

    report = tmp_path / "r.csv"
    report.write_text("")
    (tmp_path / "in.csv").write_text("job_id,build_no\n")
    write_settings(report, run=1, credential=None, values={"rate": -4})

    result = CliRunner().invoke(main, ["run", str(tmp_path / "in.csv"), "--report", str(report),
                                       "--resume"])  # fmt: skip

    assert result.exit_code == 2
    assert f"{report}.settings: field settings.rate: " in result.stderr
    assert json.loads(settings_path(report).read_text())["settings"] == {"rate": -4}


# --- the resume hint --------------------------------------------------------------------------


def test_the_resume_hint_is_the_short_command_quoted_for_a_shell() -> None:
    settings = JobSettings(input="my targets.csv", endpoint="https://e.example", api="v1")

    assert _resume_hint(settings, Path("out/r 1.csv")) == (
        "bulkstop run 'my targets.csv' --report 'out/r 1.csv' --resume"
    )


def test_the_resume_hint_for_stdin_says_to_feed_the_same_input() -> None:
    settings = JobSettings(input="-", input_format="jsonl", simulate=True)

    assert _resume_hint(settings, Path("r.csv")) == (
        "bulkstop run - --input-format jsonl --report r.csv --resume, with the same input on stdin"
    )
