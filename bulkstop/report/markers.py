"""The in-flight markers: which targets a run was about to send, in ``<report>.inflight``.

Before a target's first attempt the writer appends one line to the sidecar,
``{"run":2,"line":7,"job_id":"...","build_no":20}``, so that after a crash the loader knows
which targets may have been stopped with no record saying so. A torn last line is dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bulkstop.errors import InputError
from bulkstop.models import TargetKey
from bulkstop.report.files import open_own
from bulkstop.report.keys import build_number
from bulkstop.report.reading import BadLine, decode, json_object, lines, with_last

__all__ = ["Marker", "read_markers"]


@dataclass(frozen=True, slots=True)
class Marker:
    run: int
    key: TargetKey


def read_markers(path: Path) -> tuple[list[Marker], int]:
    """The in-flight markers of a sidecar and the byte offset where its good content ends."""
    markers: list[Marker] = []
    end = 0
    try:
        stream = os.fdopen(open_own(path, os.O_RDONLY, "the in-flight sidecar"), "rb")
    except FileNotFoundError:
        return markers, end
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
            markers.append(Marker(run, key))
            end = line.end
    return markers, end
