"""A list of builds as a file: what ``bulkstop discover`` writes, and ``bulkstop run`` reads.

Columns :data:`BUILD_COLUMNS` (``job_id`` and ``build_no`` first, the rest ignored by
``run``), in CSV with a header, JSON lines, or a JSON array of one object a line. Values as
the report writes them (:mod:`bulkstop.report.encoding`): times UTC ISO-8601 with ``Z``, an
unknown one empty (CSV) or ``null`` (JSON); CSV cells one line each, and a text a spreadsheet
would run as a formula written behind a ``'``.

A list written to a path is written whole or not at all: into a temporary file beside it,
created 0600 and never through a link, fsynced and renamed over the path
(:class:`BuildListWriter`). The path itself is refused when it is a link or not a regular file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Final, Literal

from bulkstop.errors import UsageError
from bulkstop.report.encoding import csv_cell, format_time
from bulkstop.report.files import fsync_dir, refuse_unsafe

if TYPE_CHECKING:
    from bulkstop.discover import DiscoveredBuild

__all__ = ["BUILD_COLUMNS", "BuildListFormat", "BuildListWriter", "build_list_format"]

BuildListFormat = Literal["csv", "jsonl", "json"]
#: The columns of a build list, in order.
BUILD_COLUMNS: Final = (
    "job_id",
    "build_no",
    "job_name",
    "status",
    "start_time",
    "branch",
    "commit_id",
    "trigger_type",
    "executor",
)
_EXTENSIONS: Final[dict[str, BuildListFormat]] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}


def build_list_format(path: Path | None, given: str | None) -> BuildListFormat:
    """The format: ``given`` wins; else the path's extension; CSV for stdout (``None``).

    Raises :class:`UsageError` for a path whose extension says nothing."""
    if given is not None:
        if given not in ("csv", "jsonl", "json"):
            raise UsageError(f"--format: expected csv, jsonl or json, got {given!r}")
        return given  # type: ignore[return-value]
    if path is None:
        return "csv"
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise UsageError(
            f"--output {path}: cannot tell the format from its extension; use .csv, .jsonl"
            " or .json, or give --format"
        )
    return found


def _values(build: DiscoveredBuild) -> dict[str, object]:
    return {
        "job_id": build.job_id,
        "build_no": build.build_no,
        "job_name": build.job_name,
        "status": build.status,
        "start_time": None if build.start_time is None else format_time(build.start_time),
        "branch": build.branch,
        "commit_id": build.commit_id,
        "trigger_type": build.trigger_type,
        "executor": build.executor,
    }


class BuildListWriter:
    """Writes builds, one a line, to a stream (stdout, as they come) or a path (whole).

    Args:
        fmt: ``csv``, ``jsonl`` or ``json``.
        path: the file to write (atomically, at :meth:`close`); ``None``: ``stream``.
        stream: the text stream to write to when there is no path (stdout).

    Attributes:
        written: builds written so far.
    """

    __slots__ = ("_csv", "_out", "_path", "_started", "_temp", "fmt", "written")

    def __init__(
        self, fmt: BuildListFormat, *, path: Path | None = None, stream: IO[str] | None = None
    ) -> None:
        self.fmt = fmt
        self.written = 0
        self._path = path
        self._temp: Path | None = None
        if path is not None:
            self._out = self._open_temp(path)
        elif stream is not None:
            self._out = stream
        else:
            raise ValueError("give a path or a stream")
        self._csv = csv.writer(self._out, lineterminator="\n")
        self._started = False

    def _start(self) -> None:
        """The header (CSV) or the opening bracket (JSON): written with the first build, or
        at :meth:`close`, so that a discovery that fails before it starts writes nothing
        (a pipe into ``bulkstop run -`` then reads no input rather than an empty list)."""
        if self._started:
            return
        self._started = True
        if self.fmt == "csv":
            self._csv.writerow(BUILD_COLUMNS)
        elif self.fmt == "json":
            self._out.write("[\n")

    def _open_temp(self, path: Path) -> IO[str]:
        directory = path.parent
        if not directory.is_dir():
            raise UsageError(f"cannot write {path}: directory {directory} does not exist")
        if not path.is_symlink() and path.is_dir():
            raise UsageError(f"cannot write {path}: it is a directory")
        refuse_unsafe(path, "the output")
        # mkstemp: created 0600 with O_EXCL (never through a planted link)
        fd, name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        self._temp = Path(name)
        return io.open(fd, "w", encoding="utf-8", newline="")  # noqa: UP020 - an fd, not a path

    def write(self, build: DiscoveredBuild) -> None:
        """Write one build."""
        self._start()
        values = _values(build)
        if self.fmt == "csv":
            self._csv.writerow([csv_cell(values[name]) for name in BUILD_COLUMNS])
        else:
            lead = "," if self.fmt == "json" and self.written else ""
            self._out.write(lead + json.dumps(values, ensure_ascii=False) + "\n")
        self.written += 1
        if self._path is None:
            self._out.flush()  # a pipe's reader (bulkstop run -) gets each build at once

    def close(self) -> None:
        """End the list; a path's file is fsynced and renamed over the path."""
        self._start()
        if self.fmt == "json":
            self._out.write("]\n")
        self._out.flush()
        if self._path is None or self._temp is None:
            return
        try:
            os.fsync(self._out.fileno())
            self._out.close()
            os.replace(self._temp, self._path)
        except BaseException:
            self.discard()
            raise
        self._temp = None
        fsync_dir(self._path.parent)

    def discard(self) -> None:
        """Leave the path as it was: drop the temporary file (a failed discovery)."""
        if self._temp is not None:
            with contextlib.suppress(OSError):
                self._out.close()
            self._temp.unlink(missing_ok=True)
            self._temp = None

    def __enter__(self) -> BuildListWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def __repr__(self) -> str:
        where = "stream" if self._path is None else repr(str(self._path))
        return f"<BuildListWriter {self.fmt} → {where} written={self.written}>"
