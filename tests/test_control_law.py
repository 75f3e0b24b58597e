"""The control law of :mod:`bulkstop.pacing`, through the engine, against a gateway's window.

A fake client answers as an API gateway with a fixed window does — the simulator's own
:class:`~bulkstop.simulator.throttle.FixedWindowThrottle` decides, on the fake clock — after
``LATENCY`` seconds of fake time. The run is driven by the clock's autojump, so every arrival,
cut and pause happens at an exact time: these are the figures the control law promises, not
"roughly, on a quiet machine". (``tests/test_e2e_faults.py`` shows the same path over a real
socket, judged by outcomes and counts.)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import pytest
from fakeclock import FakeClock

from bulkstop import Outcome, Pacer, Reply, ReplyKind, Result, RetryPolicy, RunSettings, Stopper
from bulkstop.models import Target
from bulkstop.pacing import ThrottleControl
from bulkstop.simulator import ThrottleConfig
from bulkstop.simulator.throttle import FixedWindowThrottle

pytestmark = pytest.mark.anyio

JOB = "f9d6c8466d614a9788e9a0acf6c15f46"
LATENCY = 0.01
CONCURRENCY = 8
STOPPED = Reply(kind=ReplyKind.STOPPED, http_status=200)
THROTTLED = Reply(kind=ReplyKind.HTTP_ERROR, http_status=429, error_code="APIG.0308")


class RecordingControl(ThrottleControl):
    """The control law unchanged, noting each cut ``(time, new rate)`` and each pause."""

    def __init__(self, max_rate: float) -> None:
        super().__init__(max_rate)
        self.cut_log: list[tuple[float, float]] = []
        self.pause_log: list[float] = []

    def on_throttled(self, started_at: float, now: float, retry_after: float | None) -> float:
        cuts = self.cuts
        pause = super().on_throttled(started_at, now, retry_after)
        if self.cuts != cuts:
            self.cut_log.append((now, self.rate))
        self.pause_log.append(pause)
        return pause


@dataclass
class Gateway:
    """A stop API behind a gateway that admits ``limit`` requests per fixed ``window``."""

    clock: FakeClock
    limit: int
    window: float
    #: ``(arrival time, admitted)`` of every request, in order
    arrivals: list[tuple[float, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        config = ThrottleConfig(limit=self.limit, window=self.window)
        self._throttle = FixedWindowThrottle(config, start=self.clock.now())

    async def stop(self, target: Target) -> Reply:
        now = self.clock.now()
        admitted = self._throttle.admit(now) is None
        self.arrivals.append((now, admitted))
        await self.clock.sleep(LATENCY)
        return STOPPED if admitted else THROTTLED

    async def refresh_credentials(self, generation: int) -> bool:
        return False

    def per_window(self, admitted: bool) -> list[int]:
        """How many requests each window admitted (or refused), window 0 first."""
        counts = Counter(math.floor(t / self.window) for t, ok in self.arrivals if ok is admitted)
        return [counts[index] for index in range(max(counts, default=-1) + 1)]


@dataclass(frozen=True)
class Run:
    gateway: Gateway
    control: RecordingControl
    pacer: Pacer
    results: list[Result]


async def run_against(*, limit: int, window: float, rate: float, count: int) -> Run:
    """Stop ``count`` targets at up to ``rate`` a second through ``Gateway(limit, window)``."""
    clock = FakeClock()
    gateway = Gateway(clock, limit, window)
    control = RecordingControl(rate)
    pacer = Pacer(rate=rate, clock=clock, control=control)
    stopper = Stopper(
        gateway,
        pacer=pacer,
        settings=RunSettings(concurrency=CONCURRENCY, seed=1),
        clock=clock,
    )
    results: list[Result] = []
    async with clock.autojump():
        async with stopper.run([(JOB, n) for n in range(1, count + 1)]) as stream:
            async for result in stream:
                results.append(result)
    assert Counter(r.outcome for r in results) == {Outcome.STOPPED: count}
    return Run(gateway, control, pacer, results)


# --------------------------------------------------------------------------------------------
# A gateway that admits 20 a second, met at 500 a second


async def twenty_a_second() -> Run:
    return await run_against(limit=20, window=1.0, rate=500, count=30)


async def test_the_first_refusal_cuts_the_rate_to_95_percent_of_what_the_gateway_admitted() -> None:
    run = await twenty_a_second()

    # The 21st request starts at 20 × 2 ms and is refused 10 ms later; the 20 admitted before
    # it all started within that second. No later refusal cuts again: none is answered to a
    # request the gateway admitted after the cut, and from then on 19 a second fits.
    assert run.control.cut_log == [(pytest.approx(0.05), pytest.approx(0.95 * 20))]


async def test_the_gateway_refuses_only_the_calls_in_flight_and_one_probe_per_pause() -> None:
    run = await twenty_a_second()

    # Second 0: 20 admitted; refused are the 5 started at 2 ms intervals before the first
    # refusal came back, and then one probe after each of the 3 pauses that end within it.
    # Second 1, at 19 a second: the 10 left, none refused.
    assert run.gateway.per_window(admitted=True) == [20, 10]
    assert run.gateway.per_window(admitted=False) == [5 + 3]


async def test_the_pause_grows_while_the_window_stays_closed() -> None:
    run = await twenty_a_second()

    # The answers to the 5 calls in flight when the first pause began are one signal (0.1 s
    # each); every refused probe after it grows the pause by half (0.15, 0.225, 0.3375 s);
    # the first admitted answer ends the streak, and nothing more pauses.
    assert run.control.pause_log == pytest.approx([0.1] * 5 + [0.15, 0.225, 0.3375])


# --------------------------------------------------------------------------------------------
# A gateway that admits 10 per 2-second window, met at 50 a second


async def test_a_window_closed_for_a_while_is_one_cut_not_one_per_refusal() -> None:
    """Each window is spent in about a second, then refuses everything until it ends: one cut
    per window that let something through, none while it is closed (a law that cut at every
    pause collapsed the rate)."""
    run = await run_against(limit=10, window=2.0, rate=50, count=30)

    assert run.gateway.per_window(admitted=True) == [10, 10, 10]
    assert run.gateway.per_window(admitted=False) == [6, 2]
    # 0.95 × the 10 admitted in the second before the first refusal, then × the 9 admitted in
    # the second before the refusal that ended window 1.
    assert [rate for _, rate in run.control.cut_log] == pytest.approx([0.95 * 10, 0.95 * 9])


# --------------------------------------------------------------------------------------------
# Retry-After, capped


@dataclass
class OnceThenStopped:
    """Answers ``first`` to the first call, then ``STOPPED``; notes when each call started."""

    clock: FakeClock
    first: Reply
    starts: list[float] = field(default_factory=list)

    async def stop(self, target: Target) -> Reply:
        self.starts.append(self.clock.now())
        await self.clock.sleep(LATENCY)
        return self.first if len(self.starts) == 1 else STOPPED

    async def refresh_credentials(self, generation: int) -> bool:
        return False


@pytest.mark.parametrize(
    "first",
    [
        Reply(kind=ReplyKind.HTTP_ERROR, http_status=503, retry_after=1.0, maybe_applied=True),
        THROTTLED._replace(retry_after=1.0),
    ],
    ids=["503", "429"],
)
async def test_a_retry_after_beyond_the_cap_is_waited_out_for_the_cap(first: Reply) -> None:
    clock = FakeClock()
    client = OnceThenStopped(clock, first)
    policy = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, max_retry_after=0.2)
    stopper = Stopper(
        client,
        pacer=Pacer(rate=1000, clock=clock),
        settings=RunSettings(concurrency=1, retry=policy, seed=1),
        clock=clock,
    )
    async with clock.autojump(), stopper.run([(JOB, 1)]) as stream:
        [result] = [result async for result in stream]

    assert result.attempts == 2
    # "Retry-After: 1", capped at 0.2 s from the answer, which came 10 ms after the start;
    # the backoff (at most 10 ms) is shorter.
    assert client.starts == [0.0, pytest.approx(LATENCY + 0.2)]
