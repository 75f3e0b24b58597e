"""``run --resume``: continue with the settings the report remembers, unless a flag says otherwise.

Click tells an option given on the command line (or by its environment variable) from one left
at its default (:meth:`click.Context.get_parameter_source`). On a resume, every option left at
its default takes the value the report's run recorded (:mod:`bulkstop.remember`), converted and
checked by the option itself exactly as if it had been typed; an option given again wins, with
a notice. A change that would make the earlier records mean something else is the job's to
refuse (:func:`bulkstop.remember.refuse_meaning_changes`), so library callers get the same rule.

The credential is chosen afresh: a remembered ``--token-file`` is used only when no credential
variable is set now (a token rotated into ``CODEARTS_TOKEN`` wins over yesterday's file).
"""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from bulkstop.errors import UsageError

__all__ = ["with_remembered"]

#: Where a value came from when nobody gave it.
_UNGIVEN = (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def with_remembered(
    ctx: click.Context, options: dict[str, Any], *, doing: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """``options`` with every option the user did not give taken from the report's settings,
    and the notices to print once the run is under way: which remembered settings are used,
    and which a flag overrides.

    ``doing`` names what a command other than a resume does with the report's targets (e.g.
    ``"verifying"``): the recorded settings then apply to it too. Unchanged, with no notice,
    when this is neither a resume nor such a command, or the report keeps no settings.
    """
    report = options.get("report")
    if not (doing or options.get("resume")) or report is None:
        return options, []
    from bulkstop.remember import NOT_REMEMBERED, as_scalar, flag, same, shown
    from bulkstop.report import read_settings

    remembered = read_settings(report)
    if remembered is None:
        return options, []
    params = {param.name: param for param in ctx.command.params if param.name}
    merged = dict(options)
    used: list[str] = []
    overridden: list[str] = []
    for name, raw in remembered.values.items():
        param = params.get(name)
        if param is None or name not in options or name in NOT_REMEMBERED:
            continue  # a setting this command does not take, or one it never remembers
        if ctx.get_parameter_source(name) in _UNGIVEN:
            if name == "token_file" and raw is not None and _credential_in_environment():
                # The credential is the one given now: a remembered file would win over the
                # variable (a token rotated into it), and no flag could take the file back.
                continue
            try:
                value = None if raw is None else param.process_value(ctx, raw)
            except click.BadParameter as exc:
                raise UsageError(
                    f"{remembered.path}: field settings.{name}: {exc.format_message()}"
                ) from None
            merged[name] = value
            if not same(as_scalar(value), as_scalar(param.get_default(ctx))):
                used.append(f"{flag(name)} {shown(raw)}")
        elif not same(raw, as_scalar(options[name])):
            # (A change of meaning the job refuses, naming both values, before this is shown.)
            overridden.append(
                f"{flag(name)} {shown(as_scalar(options[name]))} overrides {shown(raw)}"
            )
    settings = " ".join(used) if used else "the defaults"
    notices = [
        f"bulkstop: {doing or 'resuming'} with the settings run {remembered.run} recorded:"
        f" {settings}"
    ]
    notices.extend(f"bulkstop: given again: {line}" for line in overridden)
    return merged, notices


def _credential_in_environment() -> bool:
    """Whether a credential variable is set (any of the three ways)."""
    import os

    from bulkstop.credentials import AKSK_VARIABLES, IAM_VARIABLES, TOKEN_VARIABLE

    return any(os.environ.get(name) for name in (TOKEN_VARIABLE, *IAM_VARIABLES, *AKSK_VARIABLES))
