"""Run-wide guards: when a run should give up on purpose.

* :class:`FailureThreshold` — ``--max-failures N`` or ``N%``: too many targets ended badly.
* :class:`AuthBreaker` — K authentication/authorisation failures in a row: the credential is
  dead (five AK/SK failures in a row lock an AK for five minutes), so stop before making it
  worse. Any other answer closes the streak. A 403 is about one job as much as about the
  credential, so within a streak only the first 403 of each job counts: a list with many
  builds of one job the user may not touch does not abort the run.

Both are plain state; the engine asks them after each answer and aborts the run when they say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["AuthBreaker", "FailureThreshold"]

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
