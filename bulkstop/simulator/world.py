"""The world: a CodeArts project of jobs whose builds start, run and finish over time.

:class:`World` is laid out once, at its *start* (the wall clock when the simulator is created),
from the seed and a :class:`~bulkstop.simulator.config.WorldConfig`: the jobs, their names,
creators and repositories, and each job's history of builds before the start. What happens later
is just as fixed: build ``k`` of a job starts at a time derived from a stable hash of
``(seed, job, k)``, runs a derived time and ends ``SUCCESS`` or ``FAILURE``. Later builds are
created when a call first reaches their start time, so the world at time ``t`` is the same
however often, and in whatever order, it was asked before. Only stops change it.

Time is passed in (``now``, wall-clock epoch seconds), never read here, so tests drive it
exactly. It only moves forward: a ``now`` earlier than one already seen counts as that one.

The state of a build at ``now``::

    no stop took hold, now < its natural end          RUNNING
    no stop took hold, now ≥ its natural end          SUCCESS or FAILURE
    stopped at s (effective at s + stop_delay):
        now < s + stop_delay                          ABORTING (still running)
        now ≥ s + stop_delay                          ABORTED, ended at s + stop_delay

A stop call on a running build is *ignored* with probability ``ignore_stop_ratio`` (decided per
call from ``(seed, job, build, n)``, ``n`` counting the calls for that build): it answers
"stopped" and changes nothing, and the build stays in :meth:`World.ignored_builds`.
"""

from __future__ import annotations

import hashlib
import heapq
from datetime import UTC, datetime
from typing import Any

from bulkstop.simulator import codes
from bulkstop.simulator.config import WorldConfig
from bulkstop.simulator.model import USERS, BuildView, SeededHash, StopOutcome, User

__all__ = ["PROJECT_NAME", "World", "WorldBuild", "WorldJob", "derive_project_id"]

#: The simulated project's display name (simulator-chosen).
PROJECT_NAME = "bulkstop-simulated-project"

# Job names are ``<team>-<part>-<kind>``: plausible, readable, and stable per seed.
_TEAMS = (
    "payments", "checkout", "search", "catalog", "identity", "billing",
    "mobile", "gateway", "ledger", "notify", "reports", "inventory",
)  # fmt: skip
_PARTS = ("api", "web", "worker", "sdk", "batch", "frontend", "service", "cli")
_KINDS = ("build", "ci", "nightly", "release", "pr-check", "docker")
_BRANCHES = ("develop", "release/2.3", "feature/login", "hotfix/1.9.1")
#: A job's builds are on its default branch this often; the rest are on one of _BRANCHES.
_DEFAULT_BRANCH_SHARE = 0.7
#: Share of builds that end FAILURE rather than SUCCESS when they end by themselves.
_FAILURE_SHARE = 0.2


def _ms(seconds: float) -> float:
    """Round to whole milliseconds: every time the world reports is in epoch ms."""
    return round(seconds * 1000.0) / 1000.0


def _hex(person: bytes, size: int, *parts: object) -> str:
    data = "\x1f".join(str(part) for part in parts).encode()
    return hashlib.blake2b(data, digest_size=size, person=person).hexdigest()


def derive_project_id(seed: int) -> str:
    """The world's project id when none is configured: 32 hex digits from the seed."""
    return _hex(b"bulkstop.proj", 16, seed)


class WorldBuild:
    """One build of a world job; only a stop changes it after it is created.

    Attributes:
        job: the job it belongs to.
        number: its ``build_no`` (1, 2, ... in start order).
        start / natural_end / queued: epoch seconds (whole milliseconds); ``natural_end`` is
            when it ends by itself unless a stop takes hold first.
        result: ``SUCCESS`` or ``FAILURE``, its state once it ends by itself.
        aborted_at: when a stop takes (or took) effect, else ``None``.
        stop_calls / stops_ignored: stop calls for it, and how many of them were ignored.
    """

    __slots__ = (
        "_day",
        "_day_count",
        "_ids",
        "_seed",
        "aborted_at",
        "branch",
        "commit_time",
        "job",
        "natural_end",
        "number",
        "queued",
        "result",
        "start",
        "stop_calls",
        "stops_ignored",
        "trigger_type",
        "user",
    )

    def __init__(
        self,
        job: WorldJob,
        number: int,
        start: float,
        natural_end: float,
        units: tuple[float, ...],
        seed: int,
    ) -> None:
        self.job = job
        self.number = number
        self.start = _ms(start)
        self.natural_end = _ms(natural_end)
        failed = units[2] < _FAILURE_SHARE
        self.result = codes.BUILD_STATUS_FAILURE if failed else codes.BUILD_STATUS_SUCCESS
        if job.timer:
            self.trigger_type = codes.TRIGGER_TIMER
        else:
            self.trigger_type = codes.TRIGGER_TYPES[int(units[3] * len(codes.TRIGGER_TYPES))]
        self.user = USERS[int(units[4] * len(USERS))]
        if units[5] < _DEFAULT_BRANCH_SHARE:
            self.branch = job.default_branch
        else:
            # The rest of [0, 1) spread evenly over the other branches.
            other = (units[5] - _DEFAULT_BRANCH_SHARE) / (1.0 - _DEFAULT_BRANCH_SHARE)
            self.branch = _BRANCHES[min(int(other * len(_BRANCHES)), len(_BRANCHES) - 1)]
        self.queued = _ms(start - 1.0 - 9.0 * units[6])
        self.commit_time = _ms(start - 60.0 - 86400.0 * units[7])
        self._seed = seed
        self._ids: str | None = None
        # The UTC day of the start (days since the epoch) and the job's count of builds that day.
        self._day = int(self.start // 86400.0)
        self._day_count = 1
        self.aborted_at: float | None = None
        self.stop_calls = 0
        self.stops_ignored = 0

    @property
    def commit_id(self) -> str:
        """The 40-hex-digit commit it builds (derived on first use: most are never shown)."""
        return self._derived_ids()[:40]

    @property
    def record_id(self) -> str:
        """Its 32-hex-digit build record id."""
        return self._derived_ids()[40:]

    @property
    def daily_build_number(self) -> str:
        """``YYYYMMDD.n``: the n-th build of its job on that UTC day."""
        day = datetime.fromtimestamp(self._day * 86400.0, UTC)
        return f"{day:%Y%m%d}.{self._day_count}"

    def _derived_ids(self) -> str:
        if self._ids is None:
            # One digest gives both ids: 20 bytes of commit, 16 of record.
            self._ids = _hex(b"bulkstop.ids", 36, self._seed, self.job.job_id, self.number)
        return self._ids

    def state(self, now: float) -> str:
        """The build's state word at ``now`` (see the module docstring)."""
        if self.aborted_at is not None:
            if now < self.aborted_at:
                return codes.BUILD_STATUS_ABORTING
            return codes.BUILD_STATUS_ABORTED
        return codes.BUILD_STATUS_RUNNING if now < self.natural_end else self.result

    def ended_at(self, now: float) -> float | None:
        """When the build ended, if it has by ``now``; ``None`` while it runs."""
        end = self.aborted_at if self.aborted_at is not None else self.natural_end
        return end if now >= end else None

    def is_running(self, now: float) -> bool:
        """Whether the build runs at ``now`` (an aborting build still does)."""
        return self.ended_at(now) is None

    def view(self, now: float) -> BuildView:
        """What the read APIs say about the build at ``now``."""
        job = self.job
        end = self.ended_at(now)
        return BuildView(
            job_id=job.job_id,
            number=self.number,
            state=self.state(now),
            running=end is None,
            start=self.start,
            end=end,
            queued=self.queued,
            branch=self.branch,
            commit_id=self.commit_id,
            commit_time=self.commit_time,
            trigger_type=self.trigger_type,
            user=self.user,
            daily_build_number=self.daily_build_number,
            record_id=self.record_id,
            repo_name=job.repo_name,
            build_project_id=job.build_project_id,
            project_id=job.project_id,
        )

    def __repr__(self) -> str:
        return f"WorldBuild({self.job.job_id}:{self.number}, aborted_at={self.aborted_at})"


class WorldJob:
    """One job of the world: who made it, what it builds, and its builds so far.

    Attributes:
        index: its position in the project (0-based; the timer job is last).
        job_id / name / project_id: its 32-character id, ``job_name`` and project.
        creator: the user who created it.
        repo_name / default_branch / build_project_id: what it builds.
        forbidden: listed, but reads of its builds and stops answer 403.
        timer: the runaway timer job.
        builds: every build started so far, ``builds[k - 1]`` being build ``k``.
    """

    __slots__ = (
        "build_project_id",
        "builds",
        "creator",
        "default_branch",
        "forbidden",
        "index",
        "job_id",
        "name",
        "project_id",
        "repo_name",
        "timer",
    )

    def __init__(
        self,
        *,
        index: int,
        job_id: str,
        name: str,
        project_id: str,
        creator: User,
        repo_name: str,
        default_branch: str,
        forbidden: bool,
        timer: bool,
    ) -> None:
        self.index = index
        self.job_id = job_id
        self.name = name
        self.project_id = project_id
        self.creator = creator
        self.repo_name = repo_name
        self.default_branch = default_branch
        self.build_project_id = _hex(b"bulkstop.bproj", 16, job_id)
        self.forbidden = forbidden
        self.timer = timer
        self.builds: list[WorldBuild] = []

    def build(self, number: int) -> WorldBuild | None:
        """Build ``number``, if it has started."""
        if 1 <= number <= len(self.builds):
            return self.builds[number - 1]
        return None

    @property
    def last(self) -> WorldBuild:
        """The build started last (every job has at least one)."""
        return self.builds[-1]

    def __repr__(self) -> str:
        return f"WorldJob({self.job_id}, {self.name!r}, builds={len(self.builds)})"


class World:
    """The jobs and builds of one simulated CodeArts project (see the module docstring).

    Attributes:
        config: the world's settings.
        seed: the seed everything is derived from.
        start: wall-clock epoch seconds the world was laid out at.
        project_id: the project's 32-hex-digit id.
        jobs: every job, in project order (the timer job, if any, last).
    """

    __slots__ = (
        "_by_id",
        "_hash_build",
        "_hash_stop",
        "_ignored",
        "_live",
        "_next",
        "_now",
        "config",
        "jobs",
        "project_id",
        "seed",
        "start",
    )

    def __init__(self, config: WorldConfig, *, seed: int, start: float) -> None:
        self.config = config
        self.seed = seed
        self.start = _ms(start)
        self.project_id = config.project_id or derive_project_id(seed)
        self._hash_build = SeededHash(b"bulkstop.wbuild", seed, count=8)
        self._hash_stop = SeededHash(b"bulkstop.wstop", seed)
        self._now = self.start
        self.jobs: list[WorldJob] = []
        self._by_id: dict[str, WorldJob] = {}
        # (start of the job's next build, job index, its number): the builds still to come.
        self._next: list[tuple[float, int, int]] = []
        # Builds that may still run; pruned as they end (ended builds never run again).
        self._live: dict[WorldBuild, None] = {}
        self._ignored: dict[WorldBuild, None] = {}
        self._lay_out()

    # --- reading -------------------------------------------------------------------------------

    def job(self, job_id: str) -> WorldJob | None:
        """The world's job with this id, or ``None``."""
        return self._by_id.get(job_id)

    def advance(self, now: float) -> float:
        """Start every build due by ``now``; return the time the world is at (never earlier)."""
        now = max(now, self._now)
        self._now = now
        upcoming = self._next
        while upcoming and upcoming[0][0] <= now:
            at, index, number = heapq.heappop(upcoming)
            job = self.jobs[index]
            self._add(job, number, at, at + self._future_duration(job, number))
            heapq.heappush(upcoming, self._following(job, number, at))
        return now

    def build(self, job_id: str, number: int, now: float) -> WorldBuild | None:
        """Build ``number`` of a world job if it has started by ``now``."""
        self.advance(now)
        job = self._by_id.get(job_id)
        return None if job is None else job.build(number)

    def running_builds(self, now: float) -> list[WorldBuild]:
        """Every build running at ``now`` (aborting ones included), in project and build order."""
        now = self.advance(now)
        live = self._live
        for build in [build for build in live if not build.is_running(now)]:
            del live[build]
        return sorted(live, key=lambda build: (build.job.index, build.number))

    def ignored_builds(self) -> list[WorldBuild]:
        """Every build that had a stop call ignored, in the order of the first such call."""
        return list(self._ignored)

    # --- changing ------------------------------------------------------------------------------

    def stop(self, job_id: str, number: int, now: float) -> StopOutcome:
        """A stop call for a build of a world job, at ``now``."""
        now = self.advance(now)
        job = self._by_id[job_id]
        build = job.build(number)
        if build is None:
            return StopOutcome.NO_SUCH_BUILD
        build.stop_calls += 1
        if build.aborted_at is not None:
            return StopOutcome.REPEAT
        if not build.is_running(now):
            return StopOutcome.FINISHED
        if self._hash_stop(job_id, number, build.stop_calls)[0] < self.config.ignore_stop_ratio:
            build.stops_ignored += 1
            self._ignored[build] = None
            return StopOutcome.IGNORED
        build.aborted_at = _ms(now + self.config.stop_delay)
        return StopOutcome.STOPPED

    # --- the simulator's own view --------------------------------------------------------------

    def snapshot(self, now: float) -> dict[str, Any]:
        """A JSON-able picture of the world at ``now``: its jobs, running and ignored builds."""
        running = self.running_builds(now)
        now = self._now
        return {
            "project_id": self.project_id,
            "start": round(self.start * 1000),
            "now": round(now * 1000),
            "jobs": [
                {
                    "id": job.job_id,
                    "job_name": job.name,
                    "builds": len(job.builds),
                    "forbidden": job.forbidden,
                    "timer": job.timer,
                }
                for job in self.jobs
            ],
            "running": [
                {
                    "job_id": build.job.job_id,
                    "build_no": build.number,
                    "state": build.state(now),
                    "start_time": round(build.start * 1000),
                }
                for build in running
            ],
            "ignored_stops": [
                {
                    "job_id": build.job.job_id,
                    "build_no": build.number,
                    "stops_ignored": build.stops_ignored,
                    "running": build.is_running(now),
                }
                for build in self._ignored
            ],
        }

    def __repr__(self) -> str:
        return (
            f"World(project_id={self.project_id!r}, jobs={len(self.jobs)}, "
            f"live={len(self._live)}, ignored={len(self._ignored)})"
        )

    # --- laying out ----------------------------------------------------------------------------

    def _lay_out(self) -> None:
        config = self.config
        count = config.jobs
        hash_job = SeededHash(b"bulkstop.wjob", self.seed, count=8)
        units = [hash_job(self.project_id, index) for index in range(count)]
        # Exact counts, not per-job coin flips: "30 % of 50 jobs" is 15 jobs, every time.
        by_rank = sorted(range(count), key=lambda index: units[index][0])
        running = by_rank[: _share(config.running_ratio, count)]
        older: set[int] = set()
        if config.builds_per_job >= 2:
            ranked = sorted(running, key=lambda index: units[index][1])
            older = set(ranked[: _share(config.older_running_ratio, len(running))])
        by_rank = sorted(range(count), key=lambda index: units[index][2])
        forbidden = set(by_rank[: _share(config.forbidden_ratio, count)])
        running_set = set(running)
        names: set[str] = set()
        for index in range(count):
            job = self._new_job(index, units[index], names, forbidden=index in forbidden)
            self._lay_out_history(job, running=index in running_set, older=index in older)
        if config.timer_interval is not None:
            job = self._new_job(count, hash_job(self.project_id, count), names, timer=True)
            self._lay_out_timer(job, config.timer_interval)

    def _new_job(
        self,
        index: int,
        units: tuple[float, ...],
        names: set[str],
        *,
        forbidden: bool = False,
        timer: bool = False,
    ) -> WorldJob:
        team = _TEAMS[int(units[3] * len(_TEAMS))]
        part = _PARTS[int(units[4] * len(_PARTS))]
        kind = "timer" if timer else _KINDS[int(units[5] * len(_KINDS))]
        name = f"{team}-{part}-{kind}"
        if name in names:
            name = f"{name}-{index}"
        names.add(name)
        job = WorldJob(
            index=index,
            job_id=_hex(b"bulkstop.jobid", 16, self.seed, self.project_id, index),
            name=name,
            project_id=self.project_id,
            creator=USERS[int(units[6] * len(USERS))],
            repo_name=f"{team}-{part}",
            default_branch="main" if units[7] < 0.5 else "master",
            forbidden=forbidden,
            timer=timer,
        )
        self.jobs.append(job)
        self._by_id[job.job_id] = job
        return job

    def _lay_out_history(self, job: WorldJob, *, running: bool, older: bool) -> None:
        """The job's builds before the start, laid out backwards from its last one."""
        config = self.config
        t0 = self.start
        low, high = config.min_build_time, config.max_build_time
        last = config.builds_per_job
        times: dict[int, tuple[float, float]] = {}
        units = {number: self._hash_build(job.job_id, number) for number in range(1, last + 1)}
        u = units[last]
        if older:
            # An older build has run long; the last one started after it and has ended.
            elapsed = high + low + high * u[0]
            old_start = t0 - elapsed
            times[last - 1] = (old_start, t0 + low + (high - low) * u[1])
            duration = low + (high - low) * u[2]
            start = old_start + (elapsed - duration) * (0.05 + 0.9 * u[3])
            times[last] = (start, start + duration)
            earliest = last - 1
        elif running:
            times[last] = (t0 - high * u[0], t0 + low + (high - low) * u[1])
            earliest = last
        else:
            end = t0 - 0.001 - config.build_interval * u[0]
            times[last] = (end - (low + (high - low) * u[1]), end)
            earliest = last
        following = times[earliest][0]
        for number in range(earliest - 1, 0, -1):
            u = units[number]
            start = following - config.build_interval * (0.2 + 1.6 * u[0])
            # History before the start has ended by then, however the gaps and durations fall.
            end = min(start + low + (high - low) * u[1], (start + t0) / 2)
            times[number] = (start, end)
            following = start
        for number in range(1, last + 1):
            self._add(job, number, *times[number], units[number])
        first_future = t0 + config.build_interval * (0.2 + 1.6 * self._hash_build(job.job_id, 0)[0])
        heapq.heappush(self._next, (_ms(first_future), job.index, last + 1))

    def _lay_out_timer(self, job: WorldJob, interval: float) -> None:
        """The runaway timer: a build every ``interval`` s, the last one at the start."""
        last = self.config.builds_per_job
        duration = self.config.timer_build_time
        for number in range(1, last + 1):
            start = self.start - (last - number) * interval
            self._add(job, number, start, start + duration)
        heapq.heappush(self._next, (_ms(self.start + interval), job.index, last + 1))

    def _following(self, job: WorldJob, number: int, at: float) -> tuple[float, int, int]:
        """The entry of the build after ``number`` (which started at ``at``) in the queue."""
        interval = self.config.timer_interval
        if job.timer and interval is not None:
            gap = interval
        else:
            gap = self.config.build_interval * (
                0.2 + 1.6 * self._hash_build(job.job_id, number + 1)[0]
            )
        return _ms(at + gap), job.index, number + 1

    def _future_duration(self, job: WorldJob, number: int) -> float:
        config = self.config
        if job.timer:
            return config.timer_build_time
        u = self._hash_build(job.job_id, number)
        return config.min_build_time + (config.max_build_time - config.min_build_time) * u[1]

    def _add(
        self,
        job: WorldJob,
        number: int,
        start: float,
        end: float,
        units: tuple[float, ...] | None = None,
    ) -> None:
        if units is None:
            units = self._hash_build(job.job_id, number)
        build = WorldBuild(job, number, start, end, units, self.seed)
        if job.builds and job.builds[-1]._day == build._day:
            build._day_count = job.builds[-1]._day_count + 1
        job.builds.append(build)
        if build.is_running(self._now):
            self._live[build] = None


def _share(ratio: float, count: int) -> int:
    """``ratio × count`` rounded half up (``round`` would round 0.5 to even)."""
    return int(ratio * count + 0.5)
