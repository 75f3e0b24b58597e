"""What a run remembers of its settings, and what a resume may change of them.

A report's records mean something only with the settings that made them: ``not_found`` from
the v1 API of one endpoint says nothing about the legacy API of another. So every run keeps its
settings beside its report (:mod:`bulkstop.report.remembered`), and a resume continues with
them.

Everything in :class:`~bulkstop.job.JobSettings` is remembered except :data:`NOT_REMEMBERED`
— what belongs to one invocation (the input and report named again, ``resume`` itself, the
choices a resume makes afresh) — so a setting added to ``JobSettings`` is remembered without
anyone having to think of it. Values are kept as the command line spells them (a path as its
text, a failure threshold as ``10`` or ``5%``).

Of the remembered settings, :data:`CHANGES_MEANING` are those whose change would make the
earlier records mean something else (another endpoint, region, simulator or API): a resume
that changes one is refused unless ``allow_settings_change`` is set — or unless it carries no
earlier record over (a run the server never answered, every target aborted), when no record
is kept to be misread. Any other setting given again on a resume simply wins.

The credential is never remembered; its *mode* (token, password, AK/SK) is, for the record,
and so is ``token_file``: a path says where the token is, which the report's owner may know,
and without it a resume of a ``--token-file`` run would find no credential. The token itself
never leaves that file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final, NamedTuple

from bulkstop.errors import UsageError

if TYPE_CHECKING:
    from bulkstop.job import JobSettings
    from bulkstop.report.remembered import Scalar

__all__ = [
    "CHANGES_MEANING",
    "NOT_REMEMBERED",
    "Change",
    "as_scalar",
    "changes",
    "flag",
    "refuse_meaning_changes",
    "remembered_values",
    "same",
    "shown",
]

#: The settings of :class:`~bulkstop.job.JobSettings` that a run does not remember: the
#: input and the report are named again on a resume, and the rest is what one invocation
#: decides for itself.
NOT_REMEMBERED: Final[frozenset[str]] = frozenset(
    {
        "input",
        "input_format",  # describes the input, which is given again
        "report",
        "resume",
        "overwrite",
        "retry_failed",
        "allow_settings_change",
        "dry_run",
    }
)

#: Remembered settings that a resume may not change without ``allow_settings_change``: with
#: another value the earlier records would describe calls to somewhere, or of a kind, that
#: this run does not make.
CHANGES_MEANING: Final[tuple[str, ...]] = ("endpoint", "region", "simulate", "api")


def flag(name: str) -> str:
    """The command-line option of the setting ``name``: ``max_attempts`` → ``--max-attempts``."""
    return "--" + name.replace("_", "-")


def as_scalar(value: object) -> Scalar:
    """A setting as the command line spells it, for the settings file."""
    from bulkstop.guards import FailureThreshold

    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, FailureThreshold):
        return f"{value.count}" if value.count is not None else f"{value.percent:g}%"
    if isinstance(value, frozenset):  # --only-outcome
        from bulkstop.subset import spell_outcomes

        return spell_outcomes(value)
    raise TypeError(f"cannot remember a setting of type {type(value).__name__}")


def remembered_values(settings: JobSettings) -> dict[str, Scalar]:
    """Every remembered setting of ``settings`` (all but :data:`NOT_REMEMBERED`)."""
    return {
        field.name: as_scalar(getattr(settings, field.name))
        for field in dataclasses.fields(settings)
        if field.name not in NOT_REMEMBERED
    }


class Change(NamedTuple):
    """A remembered setting that this run sets otherwise."""

    name: str
    remembered: Scalar
    now: Scalar

    def describe(self) -> str:
        return f"{flag(self.name)} {shown(self.now)} (the run recorded {shown(self.remembered)})"


def shown(value: Scalar) -> str:
    """A remembered value as a message shows it."""
    if value is None:
        return "none"
    if value is True or value is False:
        return "on" if value else "off"
    return str(value)


def changes(remembered: Mapping[str, Scalar], settings: JobSettings) -> list[Change]:
    """The remembered settings that ``settings`` sets otherwise, in ``settings``' order.

    A setting the file does not hold (one added to bulkstop after it was written) is no
    change."""
    now = remembered_values(settings)
    return [
        Change(name, remembered[name], value)
        for name, value in now.items()
        if name in remembered and not same(remembered[name], value)
    ]


def same(a: Scalar, b: Scalar) -> bool:
    """Whether two remembered values are the same setting (``10`` and ``10.0`` are)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def refuse_meaning_changes(
    remembered: Mapping[str, Scalar], settings: JobSettings, where: Path
) -> None:
    """Raise :class:`UsageError` when ``settings`` change one of :data:`CHANGES_MEANING`
    that the run recorded in ``where`` was made with, unless they allow it."""
    if settings.allow_settings_change:
        return
    refused = [c for c in changes(remembered, settings) if c.name in CHANGES_MEANING]
    if refused:
        what = "; ".join(change.describe() for change in refused)
        raise UsageError(
            f"--resume: {what}, recorded in {where}: the records of that run would then mean "
            "something else; leave the option out to continue as recorded, or add "
            "--allow-settings-change"
        )
