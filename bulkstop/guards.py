"""Run-wide guards: when a run should give up on purpose.

* :class:`FailureThreshold` — ``--max-failures N`` or ``N%``: too many targets ended badly.
* :class:`AuthBreaker` — K authentication/authorisation failures in a row: the credential is
  dead (five AK/SK failures in a row lock an AK for five minutes), so stop before making it
  worse. Any other answer closes the streak. A 403 is about one job as much as about the
  credential, so within a streak only the first 403 of each job counts: a list with many
  builds of one job the user may not touch does not abort the run.
* :class:`FailingServerGuard` — the server failed (nearly) every call for a sustained time:
  end the run, resumable, instead of burning every remaining row one by one.
* :class:`SystematicFaultGuard` — the run's first answers all show that the call itself is
  wrong (the stop API is not served there, the host does not resolve, nothing listens, the
  certificate is not trusted): end the run after a handful of targets, with a diagnosis.

All are plain state, free of I/O and of the clock (times are passed in); the engine feeds
them each answer and ends the run when one says so.
"""

from __future__ import annotations

import collections
import math
import re
from dataclasses import dataclass

__all__ = ["AuthBreaker", "FailingServerGuard", "FailureThreshold", "SystematicFaultGuard"]

_THRESHOLD = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*")


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureThreshold:
    """Abort when failures exceed a count, or a percentage once ``min_sample`` targets ended.

    A failure is a sent target whose outcome is neither ``stopped`` nor ``not_stopped``.
    """

    count: int | None = None
    percent: float | None = None
    min_sample: int = 20

    @classmethod
    def parse(cls, text: str, *, min_sample: int = 20) -> FailureThreshold:
        """``"10"`` → more than 10 failures; ``"5%"`` → more than 5 % after ``min_sample``."""
        match = _THRESHOLD.fullmatch(text)
        if not match:
            raise ValueError(f"expected a count like 10 or a percentage like 5%, got {text!r}")
        number, percent = match.groups()
        if percent:
            value = float(number)
            if not 0 <= value < 100:
                raise ValueError(f"percentage must be in [0, 100), got {text!r}")
            return cls(percent=value, min_sample=min_sample)
        if "." in number:
            raise ValueError(f"a failure count must be a whole number, got {text!r}")
        return cls(count=int(number), min_sample=min_sample)

    def exceeded(self, failures: int, finished: int) -> bool:
        if self.count is not None and failures > self.count:
            return True
        if self.percent is not None and finished >= self.min_sample:
            return failures * 100.0 > self.percent * finished
        return False

    def describe(self) -> str:
        if self.count is not None:
            return f"more than {self.count} failures"
        return f"more than {self.percent:g}% failures (after {self.min_sample} targets)"


class AuthBreaker:
    """Trips after ``limit`` authentication failures in a row (``limit`` 0 disables it).

    Attributes:
        limit: failures in a row that trip it.
        streak: failures in a row so far.
        tripped: whether it has tripped (it stays tripped).
    """

    __slots__ = ("_forbidden_jobs", "limit", "streak", "tripped")

    def __init__(self, limit: int = 5) -> None:
        if limit < 0:
            raise ValueError("limit must be ≥ 0")
        self.limit = limit
        self.streak = 0
        self.tripped = False
        self._forbidden_jobs: set[str] = set()

    def record(self, auth_failure: bool, *, forbidden_job: str | None = None) -> bool:
        """Feed one answer; return ``True`` when this answer trips the breaker.

        ``forbidden_job`` names the job of a 403, so repeats of one job count once.
        """
        if not auth_failure:
            self.streak = 0
            self._forbidden_jobs.clear()
            return False
        if forbidden_job is not None:
            if forbidden_job in self._forbidden_jobs:
                return False
            self._forbidden_jobs.add(forbidden_job)
        self.streak += 1
        if self.limit and not self.tripped and self.streak >= self.limit:
            self.tripped = True
            return True
        return False

    def __repr__(self) -> str:
        return f"AuthBreaker(limit={self.limit}, streak={self.streak}, tripped={self.tripped})"


class FailingServerGuard:
    """Trips when the server failed at least ``share`` of the calls of the last ``window`` s.

    Fed every answer with its time and whether the server failed it (a 5xx, a timeout, a
    reset, an unreadable answer, an untrusted certificate; throttling answers are not fed:
    they are the gateway's "not now", paced elsewhere). It trips when all of these hold:

    * it has watched for at least ``window`` seconds (its first answer is that old), so a
      bad start alone never trips it;
    * the window holds at least ``min_calls`` answers;
    * at least ``share`` of them are failures.

    Answers are counted per slot of ``window / slots`` seconds (slot *k* covers
    ``[k·w, (k+1)·w)``), and the window is the last ``slots`` slots, the current one
    included: memory stays ``slots`` counters whatever the rate. ``window`` 0 disables it.

    Attributes:
        window: seconds of answers judged (0: never trips).
        share: the share of failures that trips it, in (0, 1].
        min_calls: answers the window must hold to be judged.
        first: clock time of the first answer fed (``None`` before).
        total / failed: answers and failures in the window now.
        tripped: whether it has tripped (it stays tripped).
    """

    __slots__ = (
        "_slot_width",
        "_slots",
        "failed",
        "first",
        "min_calls",
        "share",
        "slots",
        "total",
        "tripped",
        "window",
    )

    def __init__(
        self, window: float = 30.0, *, share: float = 0.95, min_calls: int = 10, slots: int = 30
    ) -> None:
        if not (window >= 0 and math.isfinite(window)):
            raise ValueError(f"window must be ≥ 0 seconds, got {window!r}")
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share!r}")
        if min_calls < 1 or slots < 1:
            raise ValueError("min_calls and slots must be ≥ 1")
        self.window = window
        self.share = share
        self.min_calls = min_calls
        self.slots = slots
        self._slot_width = window / slots
        self.first: float | None = None
        self.total = 0
        self.failed = 0
        self.tripped = False
        # [slot index, answers, failures], oldest first
        self._slots: collections.deque[list[int]] = collections.deque()

    @property
    def enabled(self) -> bool:
        return self.window > 0

    def record(self, now: float, failed: bool) -> bool:
        """Feed one answer; return ``True`` when this answer trips the guard."""
        if self.tripped or not self.window:
            return False
        if self.first is None:
            self.first = now
        index = math.floor(now / self._slot_width)
        slots = self._slots
        if slots and slots[-1][0] == index:
            current = slots[-1]
        else:  # a new slot: only then can the oldest fall out of the window
            current = [index, 0, 0]
            slots.append(current)
            while slots[0][0] <= index - self.slots:
                _, answers, failures = slots.popleft()
                self.total -= answers
                self.failed -= failures
        current[1] += 1
        self.total += 1
        if failed:
            current[2] += 1
            self.failed += 1
        # the share first: it rules out a healthy server at once
        if (
            self.failed >= self.share * self.total
            and now - self.first >= self.window
            and self.total >= self.min_calls
        ):
            self.tripped = True
            return True
        return False

    def describe(self) -> str:
        """What it saw, for the message that ends the run."""
        percent = math.floor(100 * self.failed / self.total) if self.total else 0
        return (
            f"the server failed {percent} % of calls for the last {self.window:g} s "
            f"({self.failed} of {self.total})"
        )

    def __repr__(self) -> str:
        return (
            f"FailingServerGuard(window={self.window:g}, share={self.share:g}, "
            f"failed={self.failed}, total={self.total}, tripped={self.tripped})"
        )


class SystematicFaultGuard:
    """Judges a run by its first answered targets: do they all show the call itself is wrong?

    Each target is fed once, with the fault its first real answer showed (``None`` when it
    showed none; throttling and expired-token answers are no answer yet). The first target
    that shows no fault, or a fault other than the first one's, *clears* the guard for the
    rest of the run (the call works, or the picture is mixed and per-target handling is the
    honest answer). When ``limit`` targets in a row show the same fault, it *trips*.
    :meth:`conclude` trips it early, on what it has seen, when no further answer can come
    (every worker holds a target waiting for this verdict, or the input has ended).
    ``limit`` 0 disables it: it is cleared from the start.

    Attributes:
        limit: targets showing one fault that trip it.
        state: ``"watching"``, ``"cleared"`` or ``"tripped"``.
        fault: the fault the first answers showed (``None`` before one did).
        seen: targets that showed it so far.
    """

    __slots__ = ("fault", "limit", "seen", "state")

    def __init__(self, limit: int = 5) -> None:
        if limit < 0:
            raise ValueError("limit must be ≥ 0")
        self.limit = limit
        self.state = "watching" if limit else "cleared"
        self.fault: str | None = None
        self.seen = 0

    @property
    def watching(self) -> bool:
        return self.state == "watching"

    @property
    def tripped(self) -> bool:
        return self.state == "tripped"

    def record(self, fault: str | None) -> bool:
        """Feed one target's first answer; return ``True`` when it trips the guard."""
        if not self.watching:
            return False
        if fault is None or (self.fault is not None and fault != self.fault):
            self.state = "cleared"
            return False
        self.fault = fault
        self.seen += 1
        if self.seen >= self.limit:
            self.state = "tripped"
            return True
        return False

    def conclude(self) -> bool:
        """No further answer can come: trip on what was seen, if anything; return whether."""
        if not self.watching or not self.seen:
            return False
        self.state = "tripped"
        return True

    def __repr__(self) -> str:
        return (
            f"SystematicFaultGuard(limit={self.limit}, state={self.state!r}, "
            f"fault={self.fault!r}, seen={self.seen})"
        )
