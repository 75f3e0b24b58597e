"""End to end: the engine and the real client against a throttling, failing simulator.

Everything runs in-process on 127.0.0.1: a :class:`Simulator` with a throttle or injected
faults, a :class:`CodeArtsClient` (with a short timeout where the simulator hangs), and a
:class:`Stopper` with small backoffs. After each run the simulator's own statistics
(``GET /_sim/stats?targets=1``) say what really happened, and the run's results must agree
with them target by target: every row ends with exactly one result, every request bulkstop
counted reached the server, and a build the simulator stopped is never reported
``not_stopped``.

The simulator decides faults from ``(seed, job_id, build_no, attempt)`` alone, so which target
fails how is the same on every run; only timing varies. So these tests judge outcomes and
counts, never timing: the control law's figures (the rate a gateway's window leaves, its cuts
and pauses) and the waits of ``Retry-After`` are checked exactly on the fake clock, in
``tests/test_control_law.py``.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import structlog

from bulkstop import (
    CodeArtsClient,
    Outcome,
    Pacer,
    Result,
    RetryPolicy,
    RunAborted,
    RunSettings,
    RunStats,
    ServerFailing,
    Stopper,
    TokenAuth,
)
from bulkstop.simulator import FaultConfig, Simulator, SimulatorConfig, ThrottleConfig

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

TOKEN = "e2e-faults-token-61c9f0"  # the simulator's throwaway token
CONCURRENCY = 8
#: Client timeouts: short where the simulator hangs (a hung request then costs little, and an
#: answer of this in-process simulator takes milliseconds), and roomy elsewhere, so that a busy
#: machine cannot turn a slow answer into a spurious timeout.
HANG_TIMEOUT = 0.3
TIMEOUT = 5.0
#: Small backoffs keep a run short; Retry-After is capped so that the simulator's whole-second
#: values (it rounds up) do not park the run.
POLICY = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, max_retry_after=0.1)
#: Targets of a run: enough that every injected fault and the throttle occur (the simulator's
#: seeded choices make them occur on every run), few enough that a run takes a fraction of a
#: second.
COUNT = 30

Key = tuple[str, int]


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    """Warnings only: at debug level the simulator would log every request."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()


def targets(count: int) -> list[Key]:
    """``count`` distinct targets spread over a few jobs."""
    jobs = [hashlib.blake2b(f"faults-{j}".encode(), digest_size=16).hexdigest() for j in range(7)]
    return [(jobs[i % len(jobs)], i // len(jobs) + 1) for i in range(count)]


@dataclass(frozen=True, slots=True)
class Run:
    """One run: what bulkstop said and what the simulator saw."""

    targets: list[Key]
    results: list[Result]
    stats: RunStats
    server: dict[str, Any]
    aborted: RunAborted | None = None

    def by_target(self) -> dict[Key, Result]:
        return {(r.job_id, int(r.build_no)): r for r in self.results}

    def outcomes(self) -> Counter[Outcome]:
        return Counter(r.outcome for r in self.results)

    def sent(self, key: Key) -> int:
        return int(self.server["stop_requests_per_target"].get(f"{key[0]}:{key[1]}", 0))

    def stopped_by_server(self, key: Key) -> int:
        return int(self.server["effective_stops_per_target"].get(f"{key[0]}:{key[1]}", 0))


async def stop_all(
    config: SimulatorConfig,
    rows: Sequence[Key],
    *,
    policy: RetryPolicy = POLICY,
    pacer: Pacer | None = None,
    settings: dict[str, Any] | None = None,
    call_timeout: float | None = None,
) -> Run:
    """Stop ``rows`` against a fresh simulator; return the results, the server's stats, and
    what ended the run early if something did."""
    timeout = call_timeout
    if timeout is None:
        timeout = HANG_TIMEOUT if config.faults.hang else TIMEOUT
    async with Simulator(config) as simulator:
        async with CodeArtsClient(
            simulator.url, TokenAuth(TOKEN), timeout=timeout, pool_size=CONCURRENCY
        ) as client:
            stopper = Stopper(
                client,
                pacer=pacer if pacer is not None else Pacer(rate=500),
                settings=RunSettings(
                    concurrency=CONCURRENCY, retry=policy, seed=1, **(settings or {})
                ),
            )
            run = stopper.run(list(rows))
            collected: list[Result] = []
            aborted: RunAborted | None = None
            try:
                async with run as results:
                    async for result in results:
                        collected.append(result)
            except RunAborted as exc:
                aborted = exc
        # The statistics endpoint, as an operator would read it (it needs no credential).
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{simulator.url}/_sim/stats", params={"targets": "1"}) as got:
                server = await got.json()
    return Run(list(rows), collected, run.stats, server, aborted)


def assert_one_result_per_row(run: Run) -> None:
    """Every row came out exactly once, as itself."""
    lines = Counter(result.line for result in run.results)
    assert sorted(lines) == list(range(1, len(run.targets) + 1))
    assert max(lines.values()) == 1
    for result in run.results:
        assert (result.job_id, int(result.build_no)) == run.targets[result.line - 1]


def assert_server_agrees(run: Run) -> None:
    """Requests and stops as bulkstop counted them are what the simulator saw."""
    assert run.server["stop_requests"] == run.stats.requests
    confirmed = unconfirmed = 0
    for key, result in run.by_target().items():
        assert run.sent(key) == result.attempts, (key, result)
        if result.outcome is Outcome.STOPPED:
            assert run.stopped_by_server(key) == 1, (key, result)
            confirmed += 1
        elif run.stopped_by_server(key):
            # Stopped during this run, the answer lost: never a plain "not stopped".
            assert result.outcome in (Outcome.UNCERTAIN, Outcome.FAILED), (key, result)
            unconfirmed += 1
    assert run.server["effective_stops"] == confirmed + unconfirmed


def running(**config: Any) -> SimulatorConfig:
    """A simulator whose builds are all running until stopped."""
    return SimulatorConfig(token=TOKEN, finished_ratio=0.0, **config)


# --------------------------------------------------------------------------------------------
# Throttling


#: Every refusal style, two of them with ``Retry-After`` in seconds (the HTTP-date form is met
#: by the mixed test further down, a 429 without one by the adaptive test).
THROTTLE_CASES = [("apig429", "seconds"), ("cb400", "none"), ("cb500", "seconds")]


@pytest.mark.parametrize(("style", "retry_after"), THROTTLE_CASES)
async def test_throttled_run_stops_every_target_once(style: Any, retry_after: Any) -> None:
    """Each way of saying "too many requests" is recognised, waited out and retried.

    The rate stays fixed at 100/s against a limit of 60/s, so every window of the run fills
    and refuses (adaptive pacing, which would settle under the limit, has its own test). At
    that rate about one call is in flight when a refusal comes back, so pauses stay short.
    """
    throttle = ThrottleConfig(limit=12, window=0.2, style=style, retry_after=retry_after)
    pacer = Pacer(rate=100, adaptive=False)
    run = await stop_all(running(throttle=throttle), targets(COUNT), pacer=pacer)

    assert_one_result_per_row(run)
    assert run.outcomes() == {Outcome.STOPPED: COUNT}
    assert_server_agrees(run)
    assert run.server["effective_stops"] == COUNT
    assert run.server["throttled"] > 0  # the throttle really refused some requests
    assert run.stats.throttled == run.server["throttled"]
    assert run.stats.requests == COUNT + run.server["throttled"]


async def test_adaptive_pacing_against_a_throttle_stops_every_target_once() -> None:
    """The whole path of the control law over a real socket: refusals come back, the rate is
    cut, and every target is still stopped exactly once (the law's figures are checked on the
    fake clock)."""
    count = 16  # the window of 12 is spent at once; at the cut rate the rest take a while
    pacer = Pacer(rate=500)
    throttle = ThrottleConfig(limit=12, window=0.2)
    run = await stop_all(running(throttle=throttle), targets(count), pacer=pacer)

    assert_one_result_per_row(run)
    assert run.outcomes() == {Outcome.STOPPED: count}
    assert_server_agrees(run)
    assert run.server["throttled"] > 0
    assert run.stats.throttled == run.server["throttled"]
    assert run.stats.requests == count + run.server["throttled"]
    assert pacer.control.cuts >= 1  # the refusals reached the control law
    assert pacer.rate < 500


# --------------------------------------------------------------------------------------------
# Faults before the stop: retried, and every target ends stopped


FAULT_KINDS = ["error_500", "html_502", "unavailable_503", "reset", "hang", "bad_json_200"]


@pytest.mark.parametrize("kind", FAULT_KINDS)
async def test_transient_faults_are_retried_until_stopped(kind: str) -> None:
    faults = FaultConfig(**{kind: 0.25}, hang_seconds=1.0)
    run = await stop_all(running(faults=faults), targets(COUNT))

    assert_one_result_per_row(run)
    assert run.outcomes() == {Outcome.STOPPED: COUNT}
    assert_server_agrees(run)
    assert run.server["faults"][kind] > 0
    assert run.stats.retries == run.server["faults"][kind]  # one retry per fault, no more
    assert run.server["effective_stops"] == COUNT


# --------------------------------------------------------------------------------------------
# Faults after the stop: the build is stopped, the answer is lost


@pytest.mark.parametrize("kind", FAULT_KINDS)
async def test_fault_after_the_stop_is_reported_uncertain_not_not_stopped(kind: str) -> None:
    faults = FaultConfig(**{kind: 0.25}, after_stop=1.0, hang_seconds=1.0)
    run = await stop_all(running(faults=faults), targets(COUNT))

    assert_one_result_per_row(run)
    assert_server_agrees(run)
    assert run.server["faults_after_stop"] > 0
    for key, result in run.by_target().items():
        assert run.stopped_by_server(key) == 1
        if result.attempts == 1:
            assert result.outcome is Outcome.STOPPED
        else:
            # The first attempt stopped it and lost the answer; a retry heard "not stopped".
            assert result.outcome is Outcome.UNCERTAIN, result
            assert "may" in result.detail
    assert run.outcomes()[Outcome.UNCERTAIN] > 0


async def test_mixed_faults_and_throttling_never_lose_a_row() -> None:
    share = 0.04
    faults = FaultConfig(
        error_500=share,
        html_502=share,
        unavailable_503=share,
        reset=share,
        hang=share,
        bad_json_200=share,
        after_stop=0.5,
        hang_seconds=1.0,
    )
    throttle = ThrottleConfig(limit=40, window=0.2, retry_after="http-date")
    run = await stop_all(running(faults=faults, throttle=throttle), targets(60))

    assert run.server["throttled"] > 0
    assert sum(run.server["faults"].values()) > 0
    assert_one_result_per_row(run)
    assert_server_agrees(run)
    assert set(run.outcomes()) <= {Outcome.STOPPED, Outcome.UNCERTAIN, Outcome.FAILED}
    for key, result in run.by_target().items():
        if result.outcome in (Outcome.STOPPED, Outcome.UNCERTAIN):
            assert run.stopped_by_server(key) == 1, result


# --------------------------------------------------------------------------------------------
# A storm: many faults of every kind, for a while


#: 30 % of the calls fail, 5 % for each kind of fault.
STORM = {kind: 0.05 for kind in FAULT_KINDS}
#: How long a hung call of the storm lasts, and the client's timeout there: short, since the
#: storm hangs some fifteen calls (a spurious timeout is one more transient failure, retried).
STORM_HANG = 0.25


@pytest.mark.parametrize("after_stop", [0.0, 1.0], ids=["before-stop", "after-stop"])
async def test_a_fault_storm_fails_no_target_that_still_had_attempts_left(
    after_stop: float,
) -> None:
    """The run-wide retry budget only slows the run down: under a storm a target ends
    ``failed`` by its own attempts, never after one or two because the run had spent its
    budget."""
    policy = RetryPolicy(
        max_attempts=10, initial_backoff=0.01, max_backoff=0.05, max_retry_after=0.05
    )
    faults = FaultConfig(**STORM, after_stop=after_stop, hang_seconds=STORM_HANG)
    # a budget with no reserve, refilled at 120 tokens a second: the storm spends it at once,
    # and retries wait for it
    run = await stop_all(
        running(faults=faults),
        targets(200),
        policy=policy,
        pacer=Pacer(rate=500),
        settings={"budget_reserve": 0.0, "budget_refill": 120.0},
        call_timeout=STORM_HANG,
    )

    assert_one_result_per_row(run)
    assert_server_agrees(run)
    assert sum(run.server["faults"].values()) > 50
    assert run.stats.budget_waits > 0  # the budget was spent, and made retries wait
    cut_short = [r for r in run.results if r.outcome is Outcome.FAILED and r.attempts < 10]
    assert cut_short == []
    assert set(run.outcomes()) <= {Outcome.STOPPED, Outcome.UNCERTAIN, Outcome.FAILED}


# --------------------------------------------------------------------------------------------
# A dying server


async def test_a_dying_server_ends_the_run_and_leaves_the_rest_unsent() -> None:
    """Every call fails: targets that used up their own attempts are ``failed``; once the
    server has failed everything for the guard's window the run ends, and the rest is
    ``aborted``, unsent, for ``--resume``."""
    count = 200
    run = await stop_all(
        running(faults=FaultConfig(error_500=1.0)),
        targets(count),
        settings={"failing_server_window": 0.5},
    )

    assert isinstance(run.aborted, ServerFailing)
    assert str(run.aborted).startswith("the server failed 100 % of calls for the last 0.5 s (")
    assert run.stats.aborted_by is run.aborted
    assert_one_result_per_row(run)
    assert_server_agrees(run)
    outcomes = run.outcomes()
    assert set(outcomes) <= {Outcome.FAILED, Outcome.ABORTED}
    assert all(
        r.attempts == POLICY.max_attempts for r in run.results if r.outcome is Outcome.FAILED
    )
    unsent = [r for r in run.results if r.outcome is Outcome.ABORTED and r.attempts == 0]
    assert len(unsent) > count / 2
    assert run.server["by_status"] == {"500": run.stats.requests}
    assert run.server["effective_stops"] == 0
