"""The simulated builds: which jobs exist, which builds run, what a stop does to them.

Everything that is not changed by a request is *derived*, not stored: whether a job exists or a
build had already finished comes from a stable hash of the seed and the ids
(:func:`unit_hashes`, BLAKE2b), so a model of millions of builds costs nothing until they are
touched, and two simulators with the same seed agree. What requests change (stops) lives in a
dict for the lifetime of the model.

Status strings (simulator-chosen, CodeArts does not document them): ``RUNNING`` until stopped,
``ABORTED`` once stopped through the simulator, and ``SUCCESS`` or ``FAILED`` (about 4 to 1) for
builds that had finished before it started.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import UTC, datetime
from typing import Any

from bulkstop.simulator.codes import (
    BUILD_STATUS_ABORTED,
    BUILD_STATUS_FAILED,
    BUILD_STATUS_RUNNING,
    BUILD_STATUS_SUCCESS,
)
from bulkstop.simulator.config import SimulatorConfig

__all__ = ["BuildModel", "JobAccess", "SeededHash", "StopOutcome", "unit_hashes"]

_SCALE = float(1 << 64)
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def unit_hashes(person: bytes, *parts: object, count: int = 1) -> tuple[float, ...]:
    """``count`` independent numbers in [0, 1) derived from ``parts`` (stable across runs).

    ``person`` separates the uses (jobs, builds, faults) so that their numbers are unrelated.
    """
    data = "\x1f".join(str(part) for part in parts).encode()
    digest = hashlib.blake2b(data, digest_size=8 * count, person=person).digest()
    return _split(digest)


class SeededHash:
    """:func:`unit_hashes` with the first part (the seed) fixed, about twice as fast.

    ``SeededHash(person, seed, count)(*parts) == unit_hashes(person, seed, *parts, count)``:
    the hash state after the seed is computed once and copied per call.
    """

    __slots__ = ("_base",)

    def __init__(self, person: bytes, seed: object, *, count: int = 1) -> None:
        self._base = hashlib.blake2b(str(seed).encode(), digest_size=8 * count, person=person)

    def __call__(self, *parts: object) -> tuple[float, ...]:
        state = self._base.copy()
        state.update(("\x1f" + "\x1f".join(str(part) for part in parts)).encode())
        return _split(state.digest())

    def __repr__(self) -> str:
        return f"SeededHash(digest_size={self._base.digest_size})"


def _split(digest: bytes) -> tuple[float, ...]:
    return tuple(
        int.from_bytes(digest[i : i + 8], "big") / _SCALE for i in range(0, len(digest), 8)
    )


class JobAccess(enum.Enum):
    """Whether the caller may operate a job."""

    OK = "ok"
    UNKNOWN = "unknown"  #: no such job: 404
    FORBIDDEN = "forbidden"  #: exists, but not for this caller: 403


class StopOutcome(enum.Enum):
    """What one stop call did to a build."""

    STOPPED = "stopped"  #: it was running and is now stopped
    REPEAT = "repeat"  #: an earlier call had already stopped it
    FINISHED = "finished"  #: it had finished before the simulator started


class BuildModel:
    """The builds of a simulated CodeArts project.

    Every ``build_no ≥ 1`` of a known job exists. ``wall_start`` (epoch seconds) anchors the
    timestamps that status calls report.
    """

    __slots__ = (
        "_config",
        "_forbidden",
        "_hash_build",
        "_hash_job",
        "_hash_last",
        "_hash_result",
        "_hash_times",
        "_highest_seen",
        "_jobs",
        "_seed",
        "_stopped_at",
        "_unknown",
        "_wall_start",
    )

    def __init__(self, config: SimulatorConfig, *, wall_start: float) -> None:
        self._config = config
        self._seed = config.seed
        self._unknown = config.unknown_jobs
        self._forbidden = config.forbidden_jobs
        self._wall_start = wall_start
        self._jobs: dict[str, JobAccess] = {}
        self._stopped_at: dict[tuple[str, int], float] = {}
        self._highest_seen: dict[str, int] = {}
        seed = config.seed
        self._hash_job = SeededHash(b"bulkstop.job", seed)
        self._hash_build = SeededHash(b"bulkstop.build", seed)
        self._hash_result = SeededHash(b"bulkstop.result", seed)
        self._hash_times = SeededHash(b"bulkstop.times", seed, count=2)
        self._hash_last = SeededHash(b"bulkstop.last", seed)

    def access(self, job_id: str) -> JobAccess:
        """Whether ``job_id`` exists and may be operated (cached: one hash per job)."""
        cached = self._jobs.get(job_id)
        if cached is not None:
            return cached
        if job_id in self._unknown:
            access = JobAccess.UNKNOWN
        elif job_id in self._forbidden:
            access = JobAccess.FORBIDDEN
        else:
            u = self._hash_job(job_id)[0]
            unknown = self._config.unknown_job_ratio
            if u < unknown:
                access = JobAccess.UNKNOWN
            elif u < unknown + self._config.forbidden_job_ratio:
                access = JobAccess.FORBIDDEN
            else:
                access = JobAccess.OK
        self._jobs[job_id] = access
        return access

    def finished_from_start(self, job_id: str, build_no: int) -> bool:
        """Whether the build had already finished before the simulator started."""
        if (job_id, build_no) in self._config.finished_builds:
            return True
        ratio = self._config.finished_ratio
        return ratio > 0 and self._hash_build(job_id, build_no)[0] < ratio

    def stop(self, job_id: str, build_no: int, *, wall_now: float) -> StopOutcome:
        """Stop a build of a known job; only the first stop of a running build changes it."""
        key = (job_id, build_no)
        self._saw(job_id, build_no)
        if key in self._stopped_at:
            return StopOutcome.REPEAT
        if self.finished_from_start(job_id, build_no):
            return StopOutcome.FINISHED
        self._stopped_at[key] = wall_now
        return StopOutcome.STOPPED

    def status(self, job_id: str, build_no: int) -> str:
        """The build's status string (see the module docstring)."""
        if (job_id, build_no) in self._stopped_at:
            return BUILD_STATUS_ABORTED
        if self.finished_from_start(job_id, build_no):
            failed = self._hash_result(job_id, build_no)[0] < 0.2
            return BUILD_STATUS_FAILED if failed else BUILD_STATUS_SUCCESS
        return BUILD_STATUS_RUNNING

    def record_info(self, job_id: str, build_no: int) -> dict[str, Any]:
        """The ``result`` object of ``GET /v3/jobs/{job_id}/{build_no}/record-info``.

        Times are ``YYYY-MM-DD HH:MM:SS`` in UTC (simulator-chosen); ``finish_time`` is
        ``None`` while the build runs.
        """
        self._saw(job_id, build_no)
        status = self.status(job_id, build_no)
        started_ago, ran_for = self._hash_times(job_id, build_no)
        # Started 1 to 3 hours before the simulator; a finished build ended before it started.
        start = self._wall_start - 3600.0 - started_ago * 7200.0
        if status == BUILD_STATUS_RUNNING:
            finish: float | None = None
        elif status == BUILD_STATUS_ABORTED:
            finish = self._stopped_at[(job_id, build_no)]
        else:
            finish = start + (self._wall_start - start) * (0.1 + 0.8 * ran_for)
        return {
            "build_no": build_no,
            "status": status,
            "start_time": _format_time(start),
            "finish_time": None if finish is None else _format_time(finish),
            "duration": None if finish is None else round((finish - start) * 1000.0),
        }

    def running_status(self, job_id: str) -> dict[str, Any]:
        """The ``result`` object of ``GET /v1/job/{job_id}/running-status``.

        The job's last build is the highest ``build_no`` any request has named for it, or a
        seeded number in 1..100 when none was named higher.
        """
        seeded = 1 + int(self._hash_last(job_id)[0] * 100)
        last = max(seeded, self._highest_seen.get(job_id, 0))
        status = self.status(job_id, last)
        return {
            "last_job_id": job_id,
            "last_build_no": str(last),
            "last_build_status": status,
            "is_running": status == BUILD_STATUS_RUNNING,
        }

    def _saw(self, job_id: str, build_no: int) -> None:
        if build_no > self._highest_seen.get(job_id, 0):
            self._highest_seen[job_id] = build_no

    def __repr__(self) -> str:
        return f"BuildModel(seed={self._seed}, stopped={len(self._stopped_at)})"


def _format_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(_TIME_FORMAT)
