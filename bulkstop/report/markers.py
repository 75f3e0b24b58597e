"""The in-flight markers: which targets a run was about to send, in ``<report>.inflight``.

Before a target's first attempt the writer appends one line to the sidecar,
``{"run":2,"line":7,"job_id":"...","build_no":20}``, so that after a crash the loader knows
which targets may have been stopped with no record saying so. A torn last line is dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from bulkstop.errors import InputError
from bulkstop.models import TargetKey
from bulkstop.report.files import open_own
from bulkstop.report.keys import build_number
from bulkstop.report.reading import BadLine, decode, json_object, lines, with_last

__all__ = ["Marker", "MarkerReader", "marker_line", "marker_lines"]


def marker_line(run: int, line: int, job_id: str, build_no: int) -> bytes:
    """The sidecar line that says run ``run`` is about to send a target (row ``line``)."""
    return marker_lines(run, ((line, job_id, build_no),))


def marker_lines(run: int, targets: Iterable[tuple[int, str, int]]) -> bytes:
    """The sidecar lines of :func:`marker_line`, one for each ``(line, job_id, build_no)``, as
    one run of bytes (a batch the engine announces; see ``ReportWriter.attempting_many``)."""
    texts = [
        # Formatted by hand when nothing needs escaping (a valid job id never does):
        # json.dumps built an encoder for every marker, one per target.
        f'{{"run":{run},"line":{line},"job_id":"{job_id}","build_no":{build_no}}}\n'
        if type(line) is int
        and type(build_no) is int
        and type(run) is int
        and job_id.isascii()
        and job_id.isalnum()
        else json.dumps({"run": run, "line": line, "job_id": job_id, "build_no": build_no},
                        separators=(",", ":")) + "\n"
        for line, job_id, build_no in targets
    ]
    # json.dumps escapes every non-ASCII character, a lone surrogate too: the text is ASCII
    return "".join(texts).encode("utf-8", "surrogatepass")


class Marker(NamedTuple):
    """One in-flight marker: run ``run`` was about to send the target ``key``."""

    run: int
    key: TargetKey
    #: byte offset of its line in the sidecar
    offset: int


class MarkerReader:
    """Reads a sidecar's markers in file order; after iterating, tells where its content ends.

    A missing sidecar has no markers. A bad line raises :class:`InputError` naming
    ``file:line``, except the last, which is taken as torn and dropped.

    Attributes:
        path: the sidecar.
        end: once iterated, the byte offset just after the last good marker.
    """

    __slots__ = ("end", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.end = 0

    def __iter__(self) -> Iterator[Marker]:
        path = self.path
        try:
            stream = os.fdopen(open_own(path, os.O_RDONLY, "the in-flight sidecar"), "rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
        with stream:
            for line, last in with_last(lines(stream)):
                if not line.complete:
                    break
                try:
                    obj = json_object(decode(line))
                    run, job_id, build_no = obj.get("run"), obj.get("job_id"), obj.get("build_no")
                    if not (
                        isinstance(run, int)
                        and isinstance(job_id, str)
                        and isinstance(build_no, int | str)
                    ):
                        raise BadLine("expected run, job_id and build_no")
                    key = TargetKey(job_id.strip(), build_number(str(build_no)))
                except (BadLine, ValueError) as exc:
                    if last:
                        break
                    raise InputError(f"{path}:{line.number}: {exc}") from None
                self.end = line.end
                yield Marker(run, key, line.start)

    def __repr__(self) -> str:
        return f"<MarkerReader {str(self.path)!r}>"
