"""Pacing: when the next request may start.

Three parts, each a small object with its state on show, combined by :class:`Pacer`:

* :class:`RateLimiter` — GCRA on request *starts*: in any window of W seconds it starts at
  most ``rate × W + burst`` requests. Callers reserve a slot (no lock, no queue: the
  reservation is a single arithmetic step on the event loop) and sleep until it.
* :class:`PauseGate` — a run-wide pause. Only time ends a pause: a request that finishes
  during it changes nothing, and a later, longer pause extends it.
* :class:`ThrottleControl` — the control law that turns throttling answers into a rate.

The control law (kept here and only here):

1. Start at the ceiling ``max_rate`` (the user's ``--rate``).
2. On a throttling answer to a request that was *started after the last cut* (answers to
   requests sent under the old rate say nothing new), at least ``hold`` seconds after the
   last cut (a fixed-window gateway keeps refusing until its window ends; refusals inside
   one window are one signal, not many), and — after the first cut — only once the server
   has accepted a request started since the last cut (a gateway whose window is closed for
   the rest of a minute refuses everything whatever the rate; cutting again and again while
   it does would leave the rate far below the limit when the window opens):

       rate ← max(min_rate, target × accepted_last_second)   when that is below rate
       rate ← max(min_rate, decrease × rate)                  otherwise

   where ``accepted_last_second`` counts requests started in the last second that the
   server accepted — the rate the server just proved it allows. When too few were accepted
   to measure (< ``min_sample``), or the measure would not lower the rate, the
   multiplicative cut applies. (The count assumes the gateway's window is a second or
   longer, as API Gateway's are: per second, minute, hour or day.)
3. Every throttling answer pauses all workers: ``Retry-After`` when given (capped), else
   ``pause_base × pause_growth^k``, capped at ``pause_max``, where k counts the throttled
   answers since the last accepted one — only those to requests started after the previous
   pause began (the calls already in flight when a pause begins are one signal, not many);
   an accepted answer resets k.
4. Every accepted answer to a request started after the last cut adds
   ``increase × rate_at_last_cut / rate`` to the rate: about ``increase × rate_at_last_cut``
   requests/s per second of success (additive increase, scale-free), never above ``max_rate``.
   A transient failure (5xx, timeout, reset, unreadable answer) is accepted by the gateway —
   it counts for ``accepted_last_second`` and closes a throttling streak — but adds nothing:
   a failing server never talks the rate up.
5. Backpressure: while retries find the run's retry budget spent and its debt deepening
   (:mod:`bulkstop.retry`), the engine says so with :meth:`Pacer.slow_down`, and the rate is
   cut like a throttle cut — ``rate ← max(min_rate, decrease × rate)`` — under the first two
   conditions of rule 2 (a request started after the last cut, ``hold`` seconds since it).
   There is no pause: the retry waits for its budget, and first attempts go on at the lower
   rate until successes raise it again by rule 4.

So the rate rides just under the server's limit: it creeps up by a few percent a second,
meets the limit, and falls back to ``target`` × what the server allowed; and it sinks, a cut a
second at most, while the server fails more calls than the retry budget pays for.
"""

from __future__ import annotations

import math
from array import array
from typing import Final, overload

from bulkstop.clock import Clock, MonotonicClock

__all__ = ["Pacer", "PauseGate", "RateLimiter", "ThrottleControl"]

#: How many more accepted start times are kept before those older than a second are dropped.
_FORGET_EVERY: Final = 4096


class RateLimiter:
    """GCRA limiter on request starts.

    Attributes:
        rate: requests per second now (may be changed at any time with :meth:`set_rate`).
        burst: how many requests may start back to back after an idle period (≥ 1).
        tat: the theoretical arrival time — when the bucket would be empty again.
    """

    __slots__ = ("burst", "rate", "tat")

    def __init__(self, rate: float, burst: int = 1) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a positive number, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be ≥ 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self.tat = -math.inf

    def set_rate(self, rate: float) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a positive number, got {rate!r}")
        self.rate = float(rate)

    def next_slot(self, now: float) -> float:
        """The slot :meth:`reserve` would give now, without reserving it."""
        return max(now, self.tat - (self.burst - 1) / self.rate)

    def try_reserve(self, now: float) -> bool:
        """Reserve the slot at ``now`` if :meth:`next_slot` is ``now``; else reserve nothing."""
        if self.tat - (self.burst - 1) / self.rate > now:
            return False
        self.tat = max(self.tat, now) + 1.0 / self.rate
        return True

    def reserve(self, now: float) -> float:
        """Reserve the next start slot; return its time (``≥ now``).

        ``slot = max(now, tat - (burst-1)·T)`` and ``tat = max(tat, now) + T`` with
        ``T = 1/rate``: after an idle period ``burst`` slots are at ``now``, then one per T.
        """
        interval = 1.0 / self.rate
        slot = max(now, self.tat - (self.burst - 1) * interval)
        self.tat = max(self.tat, now) + interval
        return slot

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate:.3f}, burst={self.burst}, tat={self.tat:.3f})"


class PauseGate:
    """A run-wide pause that only time can end.

    Attributes:
        until: the clock time at which the current pause ends (``-inf`` when never paused).
        pauses: how many times a pause was started or extended.
    """

    __slots__ = ("_clock", "pauses", "until")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.until = -math.inf
        self.pauses = 0

    def pause_until(self, until: float) -> None:
        """Pause everyone until ``until``; an earlier end never shortens a pause."""
        if until > self.until:
            self.until = until
            self.pauses += 1

    def is_paused(self, now: float) -> bool:
        return now < self.until

    async def wait(self, deadline: float | None = None) -> bool:
        """Return ``True`` once no pause is in force (re-checking, since a pause may be extended).

        With a ``deadline``, return ``False`` instead, at once, as soon as the pause in force
        ends after it: a caller with a deadline never waits out a pause it cannot outlast.
        """
        while True:
            remaining = self.until - self._clock.now()
            if remaining <= 0:
                return True
            if deadline is not None and self.until > deadline:
                return False
            await self._clock.sleep(remaining)

    def __repr__(self) -> str:
        return f"PauseGate(until={self.until:.3f}, pauses={self.pauses})"


class ThrottleControl:
    """The control law of the module docstring; pure state, no waiting.

    Attributes:
        rate: the rate the limiter should run at now.
        max_rate / min_rate: the bounds of ``rate``.
        last_cut: clock time of the last cut (``-inf`` before any).
        rate_at_cut: the rate right after the last cut (sets the increase step).
        consecutive_throttles: throttling answers since the last accepted one.
        cuts: how many cuts so far.
    """

    __slots__ = (
        "_accepted",
        "_accepted_head",
        "_accepted_since_cut",
        "_forget_at",
        "consecutive_throttles",
        "cuts",
        "decrease",
        "hold",
        "increase",
        "last_cut",
        "max_rate",
        "min_rate",
        "min_sample",
        "pause_base",
        "pause_growth",
        "pause_max",
        "pause_started",
        "rate",
        "rate_at_cut",
        "target",
    )

    def __init__(
        self,
        max_rate: float,
        *,
        min_rate: float | None = None,
        decrease: float = 0.7,
        target: float = 0.95,
        increase: float = 0.05,
        hold: float = 1.0,
        min_sample: int = 5,
        pause_base: float = 0.1,
        pause_growth: float = 1.5,
        pause_max: float = 2.0,
    ) -> None:
        if not max_rate > 0:
            raise ValueError("max_rate must be > 0")
        self.max_rate = float(max_rate)
        self.min_rate = float(min_rate) if min_rate is not None else min(0.1, self.max_rate)
        self.decrease = decrease
        self.target = target
        self.increase = increase
        self.hold = hold
        self.min_sample = min_sample
        self.pause_base = pause_base
        self.pause_growth = pause_growth
        self.pause_max = pause_max
        self.rate = self.max_rate
        self.rate_at_cut = self.max_rate
        self.last_cut = -math.inf
        self.cuts = 0
        self.consecutive_throttles = 0
        self.pause_started = -math.inf
        # Start times of accepted requests, oldest first; those before _accepted_head are
        # older than a second. Doubles in an array, not float objects in a deque: at an
        # unlimited rate a second holds tens of thousands of them (8 bytes each, not 32).
        self._accepted = array("d")
        self._accepted_head = 0
        # Forgotten now and then, when this many are kept: 4096 more than after the last
        # time (at thousands of answers a second, a second's worth is more than 4096 each time).
        self._forget_at = _FORGET_EVERY
        self._accepted_since_cut = 0  # accepted requests started after the last cut

    def accepted_last_second(self, now: float) -> int:
        accepted = self._accepted
        head = self._accepted_head
        end = len(accepted)
        oldest = now - 1.0
        while head < end and accepted[head] <= oldest:
            head += 1
        if head > 1024 and 2 * head > end:  # drop the old half at once (one memmove)
            del accepted[:head]
            end -= head
            head = 0
        self._accepted_head = head
        return end - head

    def on_accepted(self, started_at: float, now: float) -> None:
        """An answer that was not a throttling one (success or an ordinary error)."""
        # on_failed's bookkeeping, written out: this runs once per answer
        self.consecutive_throttles = 0
        accepted = self._accepted
        accepted.append(started_at)
        if started_at >= self.last_cut:
            self._accepted_since_cut += 1
            if self.rate < self.max_rate:
                step = self.increase * self.rate_at_cut / self.rate
                self.rate = min(self.max_rate, self.rate + step)
        if len(accepted) > self._forget_at:  # now and then, forget what is older than a second
            self._forget(now)

    def _forget(self, now: float) -> None:
        self.accepted_last_second(now)
        self._forget_at = len(self._accepted) + _FORGET_EVERY

    def on_failed(self, started_at: float, now: float) -> None:
        """A transient failure: the gateway let the request through, the server failed it."""
        self.consecutive_throttles = 0
        self._accepted.append(started_at)
        if started_at >= self.last_cut:
            self._accepted_since_cut += 1
        if len(self._accepted) > self._forget_at:  # now and then, forget what is older
            self._forget(now)

    def on_overloaded(self, started_at: float, now: float) -> bool:
        """Rule 5: the retry budget is spent; cut the rate when rule 2's timing allows.

        ``started_at`` is the start of the request whose failure found the budget spent.
        Returns whether the rate was cut.
        """
        if started_at < self.last_cut or now - self.last_cut < self.hold:
            return False
        self._cut(max(self.min_rate, self.decrease * self.rate), now)
        return True

    def _cut(self, rate: float, now: float) -> None:
        self.rate = rate
        self.rate_at_cut = rate
        self.last_cut = now
        self._accepted_since_cut = 0
        self.cuts += 1

    def on_throttled(self, started_at: float, now: float, retry_after: float | None) -> float:
        """A throttling answer: maybe cut the rate; return how long everyone should pause."""
        if started_at >= self.pause_started or self.consecutive_throttles == 0:
            self.consecutive_throttles += 1
            self.pause_started = now
        if (
            started_at >= self.last_cut
            and now - self.last_cut >= self.hold
            and (self.cuts == 0 or self._accepted_since_cut > 0)
        ):
            accepted = self.accepted_last_second(now)
            measured = self.target * accepted
            if accepted >= self.min_sample and measured < self.rate:
                new_rate = measured
            else:
                new_rate = self.decrease * self.rate
            self._cut(max(self.min_rate, new_rate), now)
        if retry_after is not None:
            return retry_after  # the caller caps it (RetryPolicy.max_retry_after)
        growth = self.pause_growth ** (self.consecutive_throttles - 1)
        return min(self.pause_max, self.pause_base * growth)

    def __repr__(self) -> str:
        return (
            f"ThrottleControl(rate={self.rate:.2f}, max_rate={self.max_rate:.2f}, "
            f"cuts={self.cuts}, consecutive_throttles={self.consecutive_throttles})"
        )


class Pacer:
    """Limiter + pause gate + control law, shared by every worker of one or more runs.

    ``await pacer.acquire()`` returns when a request may start and gives its start time;
    report the answer with :meth:`on_accepted`, :meth:`on_failed` or :meth:`on_throttled`
    passing that time, and a spent retry budget with :meth:`slow_down`.
    With ``adaptive=False`` the rate stays fixed (throttling still pauses).
    """

    __slots__ = ("adaptive", "clock", "control", "gate", "limiter", "throttled")

    def __init__(
        self,
        rate: float = 10.0,
        burst: int = 1,
        *,
        adaptive: bool = True,
        clock: Clock | None = None,
        control: ThrottleControl | None = None,
    ) -> None:
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.limiter = RateLimiter(rate, burst)
        self.gate = PauseGate(self.clock)
        self.control = control if control is not None else ThrottleControl(rate)
        self.adaptive = adaptive
        self.throttled = 0

    @property
    def rate(self) -> float:
        return self.limiter.rate

    def try_acquire(self) -> float | None:
        """Take a start slot if one is free right now (no pause, limiter ready), else ``None``.

        Never waits and reserves nothing when it returns ``None``; the engine calls it first so
        that the common case costs no timer and no cancel scope.
        """
        now = self.clock.now()
        if now < self.gate.until or not self.limiter.try_reserve(now):  # gate.is_paused(now)
            return None
        return now

    @overload
    async def acquire(self) -> float: ...

    @overload
    async def acquire(self, until: float) -> float | None: ...

    async def acquire(self, until: float | None = None) -> float | None:
        """Wait for a start slot outside any pause; return the start time.

        With ``until`` (a clock time: a target's deadline), return ``None`` instead as soon as
        it is clear that no slot can be had by then — a pause that ends later, or a slot
        beyond it — without waiting for it and without reserving a slot. Nothing then waits
        past ``until``.
        """
        clock = self.clock
        limiter = self.limiter
        while True:
            if not await self.gate.wait(until):
                return None
            now = clock.now()
            if until is not None and limiter.next_slot(now) > until:
                return None
            slot = limiter.reserve(now)
            delay = slot - now
            if delay > 0:
                await clock.sleep(delay)
            now = clock.now()
            if not self.gate.is_paused(now):
                return now
            # A pause began while we waited for our slot: the slot is forfeited (conservative).

    def on_accepted(self, started_at: float, now: float | None = None) -> None:
        """Record an answer that was not a throttling one, received at ``now`` (the clock's
        time when not given: a caller that read it already passes it on)."""
        if self.adaptive:
            control = self.control
            control.on_accepted(started_at, self.clock.now() if now is None else now)
            if control.rate != self.limiter.rate:
                self.limiter.set_rate(control.rate)

    def on_failed(self, started_at: float, now: float | None = None) -> None:
        """Record a transient failure (rule 4: it never raises the rate), received at
        ``now`` (as for :meth:`on_accepted`)."""
        if self.adaptive:
            self.control.on_failed(started_at, self.clock.now() if now is None else now)

    def slow_down(self, started_at: float) -> bool:
        """Rule 5: the retry budget is spent. Returns whether the rate was cut."""
        if not self.adaptive:
            return False
        if not self.control.on_overloaded(started_at, self.clock.now()):
            return False
        self.limiter.set_rate(self.control.rate)
        return True

    def on_throttled(self, started_at: float, retry_after: float | None = None) -> float:
        """Record a throttling answer; pause everyone; return the pause length."""
        self.throttled += 1
        now = self.clock.now()
        pause = self.control.on_throttled(started_at, now, retry_after)
        if self.adaptive:
            self.limiter.set_rate(self.control.rate)
        self.gate.pause_until(now + pause)
        return pause

    def __repr__(self) -> str:
        return f"Pacer({self.limiter!r}, {self.gate!r}, {self.control!r}, adaptive={self.adaptive})"
