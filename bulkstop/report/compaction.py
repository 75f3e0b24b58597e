"""Rewriting a report in one atomic step: compaction to one record per row, column upgrades."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from bulkstop.report.encoding import LineEncoder
from bulkstop.report.files import fsync_dir
from bulkstop.report.index import ReportIndex
from bulkstop.report.paths import TEMP_SUFFIX, ReportFormat, temp_prefix
from bulkstop.report.reading import BOM

__all__ = ["compact", "rewrite"]

_REWRITE_BUFFER: Final = 1 << 20


def rewrite(path: Path, fmt: ReportFormat, lines: Iterable[bytes]) -> int:
    """Atomically replace ``path`` by a report of ``lines`` (bare record lines, see
    :meth:`LineEncoder.bare`): temp file, fsync, rename, fsync the directory.

    Returns the number of records written. If anything fails, ``path`` is left as it was.
    """
    encoder = LineEncoder(fmt)
    # mkstemp creates the file 0600, with O_EXCL and O_NOFOLLOW: never through a planted link.
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=TEMP_SUFFIX)
    temp = Path(temp_name)
    count = 0
    try:
        with os.fdopen(fd, "wb", buffering=_REWRITE_BUFFER) as out:
            out.write(encoder.header())
            for line in lines:
                out.write(encoder.join(line))
                count += 1
            out.write(encoder.footer())
            out.flush()
            if sys.platform != "win32":  # where a mode is more than a read-only flag
                with contextlib.suppress(OSError):  # keep the report's mode, e.g. 0640
                    os.fchmod(out.fileno(), stat.S_IMODE(os.lstat(path).st_mode))
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return count


def compact(path: Path, fmt: ReportFormat, index: ReportIndex, appended_from: int) -> int:
    """Rewrite ``path`` to one record per input row; return how many records it keeps.

    ``index`` is the report as it was before this run appended to it from ``appended_from``
    on, told by the run's writer which records it superseded. Kept: the records the index
    still has (each target's latest, in file order, with the line a resume handed it out at
    where that moved), then every line this run appended; ``invalid``/``duplicate`` records
    of earlier runs go, as this run reported every such row again. Kept lines keep their bytes
    (a carried record keeps its ``run``); only a moved one is parsed and written anew. Memory:
    none beyond the index.
    """
    encoder = LineEncoder(fmt)

    def lines() -> Iterator[bytes]:
        with path.open("rb") as source:
            for offset, moved_to in index.survivors():
                source.seek(offset)
                raw = source.readline()
                if moved_to is None:
                    yield _bare(raw, offset, fmt)
                else:
                    record = index.reader.parse_record(raw, offset)
                    yield encoder.bare(record._replace(line=moved_to))
            source.seek(appended_from)
            for raw in source:
                bare = _bare(raw, appended_from, fmt)
                if bare.strip() not in (b"", b"]"):  # JSON's closing bracket is written anew
                    yield bare

    return rewrite(path, fmt, lines())


def _bare(raw: bytes, offset: int, fmt: ReportFormat) -> bytes:
    """A line of the report as :meth:`LineEncoder.bare` makes one."""
    raw = raw.rstrip(b"\r\n")
    if offset == 0:
        raw = raw.removeprefix(BOM)
    if fmt == "json":
        raw = raw.strip().removeprefix(b",").removesuffix(b",")
    return raw + b"\n"
