"""What a dry run puts where a run has its client and its report writer.

A dry run (``JobSettings(dry_run=True)``) reads, validates, dedupes and carries over exactly
as a run does — it is the same job and the same engine, with
:attr:`~bulkstop.engine.RunSettings.dry_run` set, so every target a run would send ends
``dry_run`` instead of being sent. What it must not do is contact anything: its client is
:class:`NoCalls`, which fails loudly if the engine ever asked it for a call. Its report is
written as a run's would be; a dry run of a *resume* leaves the report as it is (it is the
record of real calls) and counts with :class:`PlanOnly` instead.

A report a dry run wrote is no record of calls: its ``dry_run`` rows are unsent, so a
``--resume`` of it sends them — which is how a checked plan is then carried out.
"""

from __future__ import annotations

from pathlib import Path

from bulkstop.models import Reply, Result, Target

__all__ = ["NoCalls", "PlanOnly"]


class NoCalls:
    """The client of a dry run: it is never called, and says so if it is."""

    __slots__ = ("endpoint",)

    def __init__(self, endpoint: str) -> None:
        #: where a run would send its stops (shown, never contacted)
        self.endpoint = endpoint

    async def stop(self, target: Target) -> Reply:
        raise RuntimeError("a dry run sends no stop")

    async def refresh_credentials(self, generation: int) -> bool:
        raise RuntimeError("a dry run has no credential")

    def __repr__(self) -> str:
        return f"<NoCalls {self.endpoint!r}>"


class PlanOnly:
    """A report writer that writes nothing: a dry run of a resume leaves the report alone.

    Attributes:
        path: the report that is not written.
        written: results it was handed.
    """

    __slots__ = ("path", "written")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0

    def attempting(self, line: int, job_id: str, build_no: int) -> None:
        raise RuntimeError("a dry run sends no stop")

    def write(self, result: Result) -> None:
        self.written += 1

    def finalize(self) -> Path:
        return self.path

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<PlanOnly {str(self.path)!r} written={self.written}>"
