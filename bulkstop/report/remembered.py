"""The settings a run was made with, kept beside its report in ``<report>.settings``.

A resume continues a run with the settings that made its records (the endpoint, the API, the
pace): they are written here before the first stop is sent, so that a crashed run remembers
them too, and read back by ``--resume``. What the settings *are* is the job's business
(:mod:`bulkstop.remember`); this module only keeps a flat mapping of option names to JSON
scalars, with the run number and the credential *mode* (``token``, ``password``, ``aksk``) —
never a credential::

    {"format": 1, "run": 2, "credential": "token", "input": "targets.csv",
     "settings": {"endpoint": "https://...", "api": "v1", "rate": 5.0, ...}}

``input`` is what the run read (``-`` for stdin), for the record: a resume is given its input
again, and ``bulkstop status`` shows the command that continues.

The file is written like every other file of a report (:mod:`~bulkstop.report.files`): 0600,
never through a link; and it is read only when it is the user's own and nobody else may write
it, since it names where a resume sends the credential. It is replaced whole by a rename, so
that a crash while it is written leaves the old one or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bulkstop.errors import InputError
from bulkstop.report.files import open_own, refuse_unsafe, replace_file
from bulkstop.report.paths import TEMP_SUFFIX, settings_path, temp_prefix

__all__ = ["SETTINGS_FORMAT", "RememberedSettings", "Scalar", "read_settings", "write_settings"]

#: The version of the file's layout.
SETTINGS_FORMAT: Final = 1
#: A file larger than this is not a settings file bulkstop wrote.
_MAX_SIZE: Final = 64 * 1024

Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RememberedSettings:
    """What ``<report>.settings`` says.

    Attributes:
        path: the file read.
        run: the number of the run that wrote it.
        credential: the credential mode of that run (``token``, ``password``, ``aksk``), or
            ``None`` when it needed none (the simulator).
        input: the input that run read (``-``: stdin), if recorded.
        values: option name → value, as the run was asked (see :mod:`bulkstop.remember`).
    """

    path: Path
    run: int
    credential: str | None
    values: Mapping[str, Scalar]
    input: str | None = None


def write_settings(
    report: Path,
    *,
    run: int,
    credential: str | None,
    values: Mapping[str, Scalar],
    input: str | None = None,
) -> Path:
    """Write (or replace) the settings file of ``report``, durably; return its path."""
    path = settings_path(report)
    document = {"format": SETTINGS_FORMAT, "run": run, "credential": credential,
                "input": input, "settings": dict(values)}  # fmt: skip
    data = json.dumps(document, indent=1, sort_keys=True, allow_nan=False).encode() + b"\n"
    refuse_unsafe(path, "the settings file")
    # Its temporary name is one that remove_stale_temps clears should the process die before
    # the rename.
    replace_file(path, data, prefix=temp_prefix(report), suffix=TEMP_SUFFIX)
    return path


def read_settings(report: Path) -> RememberedSettings | None:
    """The settings file of ``report``, or ``None`` when there is none (a report written
    before bulkstop kept one). Raises :class:`InputError` naming the file and the field for
    one that cannot be read or is not what bulkstop writes."""
    path = settings_path(report)
    try:
        fd = open_own(path, os.O_RDONLY, "the settings file")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as stream:
        _refuse_foreign(path, os.fstat(stream.fileno()))
        data = stream.read(_MAX_SIZE + 1)
    if len(data) > _MAX_SIZE:
        raise InputError(f"{path}: larger than {_MAX_SIZE} bytes, not a settings file")
    try:
        document = json.loads(data, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise InputError(f"{path}: expected a JSON object")
    if document.get("format") != SETTINGS_FORMAT:
        raise InputError(f"{path}: field format: expected {SETTINGS_FORMAT}")
    run = document.get("run")
    if type(run) is not int or run < 1:
        raise InputError(f"{path}: field run: expected a run number ≥ 1")
    credential = document.get("credential")
    if credential is not None and not isinstance(credential, str):
        raise InputError(f"{path}: field credential: expected a string or null")
    given = document.get("input")
    if given is not None and not isinstance(given, str):
        raise InputError(f"{path}: field input: expected a string or null")
    values = document.get("settings")
    if not isinstance(values, dict):
        raise InputError(f"{path}: field settings: expected a JSON object")
    for name, value in values.items():
        if not (value is None or isinstance(value, str | int | float)):  # bool is an int
            raise InputError(f"{path}: field settings.{name}: expected a string, number or null")
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{path}: field settings.{name}: not a finite number")
    return RememberedSettings(
        path=path, run=run, credential=credential, values=values, input=given
    )


def _refuse_foreign(path: Path, info: os.stat_result) -> None:
    """Refuse a settings file that another user wrote or may write: it chooses the endpoint
    (and the token file) a resume sends the credential to. bulkstop writes it 0600."""
    geteuid = getattr(os, "geteuid", None)  # not on Windows
    if geteuid is not None and info.st_uid != geteuid():
        raise InputError(
            f"{path}: owned by another user, so not trusted with where a resume sends the "
            "credential; remove it, or give the settings again as flags"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InputError(
            f"{path}: writable by other users, so not trusted with where a resume sends the "
            "credential; chmod 600 it after checking its endpoint, or remove it"
        )


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")
