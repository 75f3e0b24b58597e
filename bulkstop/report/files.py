"""Opening a report's files safely: never through a link, only regular files, created 0600.

The report is the user's record of an incident, so every file bulkstop creates for it (the
report, ``<report>.inflight``, ``<report>.lock`` and the temporary files of a compaction) is
created readable by its owner only (0600), and none of them is ever opened through a symbolic
link: a link, or anything but a regular file, where one of them belongs is refused with a
:class:`UsageError`.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Final

from bulkstop.errors import UsageError
from bulkstop.log import get_logger
from bulkstop.report.paths import temp_pattern

__all__ = [
    "PRIVATE",
    "check_report_path",
    "fsync_dir",
    "open_own",
    "refuse_report_as_input",
    "refuse_unsafe",
    "remove_stale_temps",
    "replace_file",
    "same_file",
]

log = get_logger(__name__)

#: Never open the last component of a path through a symbolic link.
_NOFOLLOW: Final[int] = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC: Final[int] = getattr(os, "O_CLOEXEC", 0)
#: A FIFO planted where a report file belongs would make open() wait for a reader; with this
#: flag it opens at once and is then refused as no regular file. Regular files ignore it.
_NONBLOCK: Final[int] = getattr(os, "O_NONBLOCK", 0)
#: The mode of every file bulkstop creates for a report: it describes an incident.
PRIVATE: Final = 0o600


def refuse_unsafe(path: Path, what: str) -> None:
    """Raise :class:`UsageError` when ``path`` is a symbolic link or exists as something other
    than a regular file. ``what`` names the file in the message (``"the report"``)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise UsageError(
            f"{what} {path} is a symbolic link; bulkstop never writes through one: "
            "remove the link, or give the real path"
        )
    if not stat.S_ISREG(mode):
        raise UsageError(f"{what} {path} is not a regular file")


def open_own(path: Path, flags: int, what: str) -> int:
    """Open a file bulkstop writes for a report (report, sidecar, lock) and return its fd.

    Never through a symbolic link (``O_NOFOLLOW``), only a regular file, and one that
    ``flags`` creates (``O_CREAT``) is created 0600. A link or other file found there is a
    :class:`UsageError` (see :func:`refuse_unsafe`); other failures raise ``OSError``.
    """
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK, PRIVATE)
    except OSError:
        refuse_unsafe(path, what)  # a link or a directory there: say so plainly
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{what} {path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_report_path(path: Path) -> None:
    """Refuse a report path that bulkstop cannot safely write: see the module docstring."""
    directory = path.parent
    if not directory.is_dir():
        raise UsageError(f"cannot write the report {path}: directory {directory} does not exist")
    if not path.is_symlink() and path.is_dir():
        raise UsageError(f"cannot write the report {path}: it is a directory")
    refuse_unsafe(path, "the report")


def refuse_report_as_input(input_name: str, stdin: IO[bytes] | None, report_path: Path) -> None:
    """Refuse a report that is the input itself (same path, a link, a hard link, or stdin
    redirected from it): writing the report would destroy the rows still to be read.

    ``input_name`` is the input's path, or ``"-"`` with ``stdin`` the stream it reads.
    """
    try:
        report = report_path.stat()
    except OSError:
        return  # no report yet; one that cannot be read is the writer's to report
    try:
        given = os.stat(input_name) if stdin is None else os.fstat(stdin.fileno())
    except (OSError, ValueError):  # no such input (open_source says so), or not a file
        return
    if (given.st_dev, given.st_ino) == (report.st_dev, report.st_ino):
        what = f"the input {input_name} itself" if stdin is None else "the file stdin reads"
        raise UsageError(
            f"the report {report_path} is {what}: writing the report would destroy the "
            "input; choose another --report path"
        )


def same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` (not followed) still names the file open at ``fd``."""
    try:
        named = os.lstat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def replace_file(path: Path, data: bytes, *, prefix: str, suffix: str) -> None:
    """Replace ``path`` by a file holding ``data``, atomically and privately.

    A temporary file beside it — created 0600 with ``O_EXCL`` by mkstemp, so never through a
    planted link, named ``prefix…suffix`` — is written, fsynced and renamed over ``path`` (the
    rename replaces a link itself, never what it points to), then the directory is fsynced. If
    anything fails, ``path`` is left as it was and the temporary file is removed.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a created or replaced directory entry durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse to fsync a directory; the data is synced
        pass
    finally:
        os.close(fd)


def remove_stale_temps(report: Path) -> None:
    """Remove the temporary files an interrupted compaction of ``report`` left beside it.

    Only regular files named like those (:func:`~bulkstop.report.paths.temp_pattern`) go,
    never through a link and never anything else. Called under the report's lock, so no other
    bulkstop process is compacting this report meanwhile.
    """
    pattern = temp_pattern(report)
    try:
        entries = os.scandir(report.parent)
    except OSError:
        return
    with entries:
        for entry in entries:
            try:
                if not (pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)):
                    continue
                os.unlink(entry.path)
            except OSError:
                continue
            log.info("report.stale_temp_removed", path=entry.path)
