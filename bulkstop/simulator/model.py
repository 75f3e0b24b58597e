"""The simulated builds: which jobs exist, which builds run, what a stop does to them.

Two kinds of job live here. The jobs of the *world* (:mod:`bulkstop.simulator.world`, when one
is configured) have a bounded history of builds that start, run and finish over time. Every
other 32-character job id exists too (unless the ratios or lists of the configuration say it is
unknown or forbidden), with every ``build_no ≥ 1``: such builds are *derived*, not stored.
Whether a job exists or a derived build had already finished comes from a stable hash of the
seed and the ids (:func:`unit_hashes`, BLAKE2b), so a model of millions of builds costs nothing
until they are touched, and two simulators with the same seed agree. What requests change
(stops) lives in a dict for the lifetime of the model.

:class:`BuildModel` is the one door: access, stops and :class:`BuildView` (what the read APIs
say about a build) for both kinds, dispatched on whether the job belongs to the world.

Derived builds' states: ``RUNNING`` until stopped, ``ABORTED`` once stopped (after
``SimulatorConfig.derived_stop_delay``, ``ABORTING`` until then; 0 by default: at once; the
world's ignored stops do not apply to them), and ``SUCCESS`` or ``FAILURE``
(about 4 to 1) for builds that had finished before the simulator started. Derived builds started
1 to 3 hours before the simulator; a derived job lists no records.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from bulkstop.simulator.codes import (
    BUILD_STATUS_ABORTED,
    BUILD_STATUS_ABORTING,
    BUILD_STATUS_FAILURE,
    BUILD_STATUS_RUNNING,
    BUILD_STATUS_SUCCESS,
)
from bulkstop.simulator.config import SimulatorConfig

if TYPE_CHECKING:
    from bulkstop.simulator.world import World

__all__ = [
    "USERS",
    "BuildModel",
    "BuildView",
    "JobAccess",
    "SeededHash",
    "StopOutcome",
    "User",
    "target_of",
    "target_text",
    "unit_hashes",
]

_SCALE = float(1 << 64)


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
    words = struct.unpack(f">{len(digest) // 8}Q", digest)
    return tuple(word / _SCALE for word in words)


class User(NamedTuple):
    """A simulated CodeArts user (simulator-chosen names)."""

    nickname: str
    user_name: str
    user_id: str


def _user(nickname: str, user_name: str) -> User:
    user_id = hashlib.blake2b(user_name.encode(), digest_size=16, person=b"bulkstop.user")
    return User(nickname, user_name, user_id.hexdigest())


#: The users who create jobs and start builds.
USERS: tuple[User, ...] = tuple(
    _user(nickname, user_name)
    for nickname, user_name in (
        ("Zhang Wei", "zhangwei"),
        ("Li Na", "lina"),
        ("Wang Fang", "wangfang"),
        ("Chen Jie", "chenjie"),
        ("Liu Yang", "liuyang"),
        ("Maria Silva", "msilva"),
        ("Ahmet Yilmaz", "ayilmaz"),
        ("Ana Costa", "acosta"),
    )
)


class BuildView(NamedTuple):
    """What the read APIs say about one build at one moment (times: epoch seconds)."""

    job_id: str
    number: int
    state: str
    #: not ended yet (an aborting build still runs)
    running: bool
    start: float
    #: when it ended; ``None`` while it runs
    end: float | None
    queued: float
    branch: str
    commit_id: str
    commit_time: float
    trigger_type: str
    user: User
    daily_build_number: str
    record_id: str
    repo_name: str
    build_project_id: str
    #: the CodeArts project, for builds of the world's jobs
    project_id: str | None


class JobAccess(enum.Enum):
    """Whether the caller may operate a job."""

    OK = "ok"
    UNKNOWN = "unknown"  #: no such job: 404
    FORBIDDEN = "forbidden"  #: exists, but not for this caller: 403


class StopOutcome(enum.Enum):
    """What one stop call did to a build."""

    STOPPED = "stopped"  #: it was running and is now stopped (a world build: stopping)
    REPEAT = "repeat"  #: an earlier call had already stopped it
    FINISHED = "finished"  #: it had already ended
    IGNORED = "ignored"  #: answered "stopped", but the world build keeps running
    NO_SUCH_BUILD = "no_such_build"  #: a world job that has not reached this build number


#: A job's access as the cache holds it, by position (see :meth:`BuildModel.access`).
_ACCESSES: tuple[JobAccess, ...] = tuple(JobAccess)


def target_text(job_id: str, build_no: int) -> str:
    """``job_id:build_no``: a build as the simulator's per-build tables key it (one string,
    see :class:`BuildModel`) and as its stats' JSON names it."""
    return f"{job_id}:{build_no}"


def target_of(text: str) -> tuple[str, int]:
    """The ``(job_id, build_no)`` of a :func:`target_text`."""
    job_id, build_no = text.rsplit(":", 1)  # a build number has no ":", a job id may
    return job_id, int(build_no)


class BuildModel:
    """The builds of the simulated service: the world's and the derived ones.

    Every ``build_no ≥ 1`` of a known job outside the world exists. ``wall_start`` (epoch
    seconds) anchors the timestamps of derived builds. Methods that depend on time take
    ``now`` (wall-clock epoch seconds).

    Its tables grow by one entry per build stopped and per job met, and they hold only
    strings and numbers: a table holding a tuple or an enum member is tracked by the cyclic
    garbage collector and put back among the young objects at each insertion, so every
    young collection walked all of it. After about 100,000 stops that cost the simulator a
    sixth of its time in pauses of up to 40 ms, which fell on whichever client was measured.
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
        "world",
    )

    def __init__(
        self, config: SimulatorConfig, *, wall_start: float, world: World | None = None
    ) -> None:
        self._config = config
        self._seed = config.seed
        self._unknown = config.unknown_jobs
        self._forbidden = config.forbidden_jobs
        self._wall_start = wall_start
        self.world = world
        self._jobs: dict[str, int] = {}  # job id -> index in _ACCESSES
        self._stopped_at: dict[str, float] = {}  # target_text -> when it was stopped
        self._highest_seen: dict[str, int] = {}
        seed = config.seed
        self._hash_job = SeededHash(b"bulkstop.job", seed)
        self._hash_build = SeededHash(b"bulkstop.build", seed)
        self._hash_result = SeededHash(b"bulkstop.result", seed)
        self._hash_times = SeededHash(b"bulkstop.times", seed, count=2)
        self._hash_last = SeededHash(b"bulkstop.last", seed)

    def access(self, job_id: str) -> JobAccess:
        """Whether ``job_id`` exists and may be operated (cached: one hash per job).

        The explicit lists win; then a world job exists (forbidden if the world says so); then
        the ratios decide.
        """
        cached = self._jobs.get(job_id)
        if cached is not None:
            return _ACCESSES[cached]
        world_job = None if self.world is None else self.world.job(job_id)
        if job_id in self._unknown:
            access = JobAccess.UNKNOWN
        elif job_id in self._forbidden:
            access = JobAccess.FORBIDDEN
        elif world_job is not None:
            access = JobAccess.FORBIDDEN if world_job.forbidden else JobAccess.OK
        else:
            u = self._hash_job(job_id)[0]
            unknown = self._config.unknown_job_ratio
            if u < unknown:
                access = JobAccess.UNKNOWN
            elif u < unknown + self._config.forbidden_job_ratio:
                access = JobAccess.FORBIDDEN
            else:
                access = JobAccess.OK
        self._jobs[job_id] = _ACCESSES.index(access)
        return access

    def in_world(self, job_id: str) -> bool:
        """Whether the job belongs to the world."""
        return self.world is not None and self.world.job(job_id) is not None

    def finished_from_start(self, job_id: str, build_no: int) -> bool:
        """Whether a derived build had already finished before the simulator started."""
        if (job_id, build_no) in self._config.finished_builds:
            return True
        ratio = self._config.finished_ratio
        return ratio > 0 and self._hash_build(job_id, build_no)[0] < ratio

    def stop(self, job_id: str, build_no: int, *, wall_now: float) -> StopOutcome:
        """Stop a build of a known job (see :class:`StopOutcome`)."""
        if self.world is not None and self.world.job(job_id) is not None:
            return self.world.stop(job_id, build_no, wall_now)
        key = target_text(job_id, build_no)
        self._saw(job_id, build_no)
        if key in self._stopped_at:
            return StopOutcome.REPEAT
        if self.finished_from_start(job_id, build_no):
            return StopOutcome.FINISHED
        self._stopped_at[key] = wall_now
        return StopOutcome.STOPPED

    def view(self, job_id: str, build_no: int, *, now: float) -> BuildView | None:
        """The build as the read APIs see it at ``now``; ``None`` for a world build not started."""
        if self.world is not None and self.world.job(job_id) is not None:
            build = self.world.build(job_id, build_no, now)
            return None if build is None else build.view(now)
        return self._derived_view(job_id, build_no, now)

    def last_build(self, job_id: str, *, now: float) -> BuildView:
        """The job's last build at ``now``.

        Outside the world: the highest ``build_no`` any request has named for the job, or a
        seeded number in 1..100 when none was named higher.
        """
        world = self.world
        if world is not None and world.job(job_id) is not None:
            world.advance(now)
            job = world.job(job_id)
            assert job is not None
            return job.last.view(now)
        seeded = 1 + int(self._hash_last(job_id)[0] * 100)
        last = max(seeded, self._highest_seen.get(job_id, 0))
        return self._derived_view(job_id, last, now)

    def records(self, job_id: str, *, now: float) -> list[BuildView]:
        """Every build of the job started by ``now``, newest first (none outside the world)."""
        world = self.world
        if world is None or world.job(job_id) is None:
            return []
        world.advance(now)
        job = world.job(job_id)
        assert job is not None
        return [build.view(now) for build in reversed(job.builds)]

    def _derived_state(self, job_id: str, build_no: int, now: float) -> str:
        stopped_at = self._stopped_at.get(target_text(job_id, build_no))
        if stopped_at is not None:
            if now < stopped_at + self._config.derived_stop_delay:
                return BUILD_STATUS_ABORTING  # still running, as a world build is meanwhile
            return BUILD_STATUS_ABORTED
        if self.finished_from_start(job_id, build_no):
            failed = self._hash_result(job_id, build_no)[0] < 0.2
            return BUILD_STATUS_FAILURE if failed else BUILD_STATUS_SUCCESS
        return BUILD_STATUS_RUNNING

    def _derived_view(self, job_id: str, build_no: int, now: float) -> BuildView:
        self._saw(job_id, build_no)
        state = self._derived_state(job_id, build_no, now)
        started_ago, ran_for = self._hash_times(job_id, build_no)
        # Started 1 to 3 hours before the simulator; a finished build ended before it started.
        start = round(self._wall_start - 3600.0 - started_ago * 7200.0, 3)
        if state in (BUILD_STATUS_RUNNING, BUILD_STATUS_ABORTING):
            end: float | None = None
        elif state == BUILD_STATUS_ABORTED:
            end = self._stopped_at[target_text(job_id, build_no)] + self._config.derived_stop_delay
        else:
            end = round(start + (self._wall_start - start) * (0.1 + 0.8 * ran_for), 3)
        user = USERS[int(started_ago * 7919) % len(USERS)]
        return BuildView(
            job_id=job_id,
            number=build_no,
            state=state,
            running=end is None,
            start=start,
            end=end,
            queued=start - 5.0,
            branch="master",
            commit_id=_hex40(self._seed, job_id, build_no),
            commit_time=start - 600.0,
            trigger_type="Manual",
            user=user,
            daily_build_number=f"{datetime.fromtimestamp(start, UTC):%Y%m%d}.{build_no}",
            record_id=_hex40(self._seed, job_id, build_no, "record")[:32],
            repo_name=f"repo-{job_id[:8]}",
            build_project_id=_hex40(self._seed, job_id)[:32],
            project_id=None,
        )

    def _saw(self, job_id: str, build_no: int) -> None:
        if build_no > self._highest_seen.get(job_id, 0):
            self._highest_seen[job_id] = build_no

    def __repr__(self) -> str:
        return f"BuildModel(seed={self._seed}, stopped={len(self._stopped_at)})"


def _hex40(*parts: object) -> str:
    data = "\x1f".join(str(part) for part in parts).encode()
    return hashlib.blake2b(data, digest_size=20, person=b"bulkstop.derive").hexdigest()
