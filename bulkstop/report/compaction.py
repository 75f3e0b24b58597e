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

from bulkstop.models import TargetKey
from bulkstop.report.encoding import LineEncoder
from bulkstop.report.files import fsync_dir
from bulkstop.report.keys import record_key
from bulkstop.report.paths import TEMP_SUFFIX, ReportFormat, temp_prefix
from bulkstop.report.reading import BOM, ReportReader

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


def compact(path: Path, fmt: ReportFormat, run: int) -> tuple[int, int]:
    """Rewrite ``path`` to one record per input row; return (records before, records after).

    Keyed records: the last of each key survives. ``invalid``/``duplicate`` records: only
    those of ``run``, which reported every such row of the input again. Survivors keep their
    file order and their bytes (a carried-over record keeps its ``run``). One parsing pass
    notes where each survivor's line is; a second pass copies those lines. Memory O(keys).
    """
    latest: dict[TargetKey, tuple[int, int]] = {}
    current: list[tuple[int, int]] = []
    reader = ReportReader(path, fmt)
    for record in reader:
        span = reader.span
        key = record_key(record)
        if key is None:
            if record.run == run:
                current.append(span)
        else:
            latest[key] = span
    spans = sorted([*latest.values(), *current])

    def lines() -> Iterator[bytes]:
        with path.open("rb") as source:
            for start, end in spans:
                source.seek(start)
                raw = source.read(end - start).rstrip(b"\r\n")
                if start == 0:
                    raw = raw.removeprefix(BOM)
                if fmt == "json":
                    raw = raw.strip().removeprefix(b",").removesuffix(b",")
                yield raw + b"\n"

    return reader.records, rewrite(path, fmt, lines())
