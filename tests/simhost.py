"""Simulators on a background event loop, for end-to-end tests whose client runs elsewhere.

A test that drives ``bulkstop run`` — in-process through click's ``CliRunner`` (which runs its
own event loop) or as a subprocess — needs a simulator that serves while the test's own thread
waits. :class:`SimulatorHost` serves any number of them from one event loop on one thread, on
127.0.0.1; each :class:`HostedSimulator` reads its statistics on that loop (its counters are
not locked), so a test knows exactly what a run sent. Starting one costs a few milliseconds,
where a ``bulkstop simulate`` process costs the second that importing bulkstop takes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from bulkstop.simulator import Simulator, SimulatorConfig

T = TypeVar("T")

#: No call to the simulators' loop may take longer than this.
CALL_TIMEOUT = 10.0


class SimulatorHost:
    """One event loop on a background thread, serving the simulators started on it."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="simulators", daemon=True
        )
        self._thread.start()
        self._started: list[Simulator] = []

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the simulators' loop and return its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=CALL_TIMEOUT)

    def start(self, config: SimulatorConfig) -> HostedSimulator:
        """A new simulator with ``config``, listening on a free port of 127.0.0.1."""
        simulator = Simulator(config)
        url = self.call(simulator.start())
        self._started.append(simulator)
        return HostedSimulator(url, simulator, self)

    def close(self) -> None:
        """Close every simulator still open, then the loop."""
        for simulator in self._started:
            self.call(simulator.close())
        self._started.clear()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT)
        self._loop.close()


@dataclass(frozen=True)
class HostedSimulator:
    """A simulator served by a :class:`SimulatorHost`."""

    url: str
    simulator: Simulator
    host: SimulatorHost

    def stats(self, *, targets: bool = False) -> dict[str, Any]:
        """A snapshot of its counters (``GET /_sim/stats``), with ``targets``: per target."""

        async def snapshot() -> dict[str, Any]:
            return self.simulator.stats.snapshot(targets=targets)

        return self.host.call(snapshot())

    def close(self) -> None:
        """Stop serving now (a later :meth:`SimulatorHost.close` does nothing more to it)."""
        self.host.call(self.simulator.close())
