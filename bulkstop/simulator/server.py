"""The simulator's HTTP side: routes, the order of checks, and the server's lifetime.

A stop request goes through the same steps as at the real service, gateway first:

    arrival (stats) → latency → auth (401) → throttle (429/400/500) → fault before the stop
    → validation (400) → job access (404/403) → build model (200) → fault after the stop

The target is read before throttling only so that per-target statistics see throttled requests
too; its validation error is answered in its place in the order above. A read request (job
lists, build records, one build: :mod:`bulkstop.simulator.reads`) goes

    arrival (stats) → auth (401) → read throttle (its own windows) → validation (400)
    → job or project access (404/403) → answer (200)

and is not faulted. IAM requests are neither throttled nor faulted.

Adding a stop API: a ``_target_*`` reader for its parameters, its success/failure bodies in
``_STOP_BODIES``, a handler and a route in :meth:`Simulator._build_app`. Adding a read API: its
name and route in :data:`~bulkstop.simulator.reads.READ_APIS` and its answer in
:class:`~bulkstop.simulator.reads.ReadAnswers` (routes and counters follow from the first).
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import logging
import re
import secrets
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Final, Self

import anyio
from aiohttp import web

from bulkstop.log import get_logger
from bulkstop.simulator import codes
from bulkstop.simulator.auth import Authenticator
from bulkstop.simulator.codes import ErrorReply
from bulkstop.simulator.config import SimulatorConfig
from bulkstop.simulator.faults import HTML_502, HTML_503, HTML_504, TRUNCATED_JSON, Fault, FaultPlan
from bulkstop.simulator.model import BuildModel, JobAccess, StopOutcome
from bulkstop.simulator.reads import READ_APIS, ReadAnswers
from bulkstop.simulator.stats import SimulatorStats
from bulkstop.simulator.throttle import FixedWindowThrottle, ThrottleReply
from bulkstop.simulator.world import World

__all__ = ["Simulator", "serve_forever"]

log = get_logger(__name__)

_JSON: Final = "application/json"
_HTML: Final = "text/html"
_JOB_ID = re.compile(r"[0-9a-z]{32}")
_DIGITS = re.compile(r"[0-9]{1,10}")
#: build_no is a Java int upstream; larger numbers are refused as invalid parameters.
_MAX_BUILD_NO: Final = 2**31 - 1
#: How long close() lets aiohttp wait for handlers before cancelling them (handlers that pause
#: are woken by close() itself, so this is only a safety net).
_SHUTDOWN_TIMEOUT: Final = 1.0

#: (stopped body, not-stopped body) per stop API.
_STOP_BODIES: Final[Mapping[str, tuple[bytes, bytes]]] = {
    "legacy": (b'{"result": true}', b'{"result": false}'),
    "v3": (b'{"success": true, "result": ""}', b'{"success": false, "result": ""}'),
    "v1": (
        b'{"status": "success"}',
        json.dumps({"status": codes.V1_NOT_STOPPED}).encode(),
    ),
}

_Target = tuple[str, int]


def _check_job_id(value: Any) -> ErrorReply | None:
    if value is None or value == "":
        return codes.INVALID_PARAMETER
    if not isinstance(value, str) or _JOB_ID.fullmatch(value) is None:
        return codes.INVALID_JOB_ID
    return None


def _read_build_no(value: Any) -> int | None:
    """A build number given as digits or a JSON integer, in 1..2³¹-1; else ``None``."""
    if isinstance(value, str):
        if _DIGITS.fullmatch(value) is None:
            return None
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        return None
    return number if 1 <= number <= _MAX_BUILD_NO else None


def _target(job_id: Any, build_no: Any) -> _Target | ErrorReply:
    problem = _check_job_id(job_id)
    if problem is not None:
        return problem
    number = _read_build_no(build_no)
    if number is None:
        return codes.INVALID_PARAMETER
    return str(job_id), number


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _target_legacy(request: web.Request, body: bytes) -> _Target | ErrorReply:
    payload = _json_object(body)
    if payload is None:
        return codes.INVALID_PARAMETER
    return _target(payload.get("job_id"), payload.get("build_no"))


def _target_v3(request: web.Request, body: bytes) -> _Target | ErrorReply:
    match = request.match_info
    return _target(match["job_id"], match["build_no"])


def _target_v1(request: web.Request, body: bytes) -> _Target | ErrorReply:
    job_id = request.match_info["job_id"]
    problem = _check_job_id(job_id)
    if problem is not None:
        return problem
    numbers: list[int | None] = []
    query_value = request.query.get("build_no")
    if query_value is not None:
        numbers.append(_read_build_no(query_value))
    if body.strip():
        payload = _json_object(body)
        if payload is None:
            return codes.INVALID_PARAMETER
        if "build_no" in payload:
            numbers.append(_read_build_no(payload["build_no"]))
    # Given twice (the safe way to call v1), the two must agree.
    if not numbers or len(set(numbers)) != 1 or numbers[0] is None:
        return codes.INVALID_PARAMETER
    return job_id, numbers[0]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP reset, writing nothing."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0 makes close() send RST instead of FIN: the client sees "connection reset".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _wake(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


class Simulator:
    """A CodeArts Build look-alike on a local port; an async context manager.

    ``async with Simulator(config) as sim:`` starts it on 127.0.0.1 with a free port
    (``sim.url``) and stops it on exit. ``sim.stats`` is live; ``sim.stats.snapshot()`` is a
    JSON-able copy. ``monotonic`` and ``wall`` replace the clocks: ``monotonic`` drives the
    throttle windows and the AK lockout, ``wall`` (a ``now()`` callable for epoch seconds) the
    world's time, build timestamps and the AK/SK date check.

    With a world configured, ``sim.world`` is it, :meth:`running_builds` lists its builds
    running right now and :meth:`ignored_stops` those whose stop was ignored (the same as
    ``GET /_sim/world``).
    """

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.stats = SimulatorStats()
        self.url = ""
        self._monotonic = monotonic
        self._wall = wall
        wall_start = wall()
        self.world: World | None = None
        if config.world is not None:
            self.world = World(config.world, seed=config.seed, start=wall_start)
        self._model = BuildModel(config, wall_start=wall_start, world=self.world)
        self._reads = ReadAnswers(config.reads, self._model)
        self._auth = Authenticator(config, monotonic=monotonic, wall=wall)
        self._faults = FaultPlan(config.faults, seed=config.seed)
        self._throttle: FixedWindowThrottle | None = None
        self._throttle_reply: ThrottleReply | None = None
        if config.throttle is not None:
            self._throttle = FixedWindowThrottle(config.throttle, start=monotonic())
            self._throttle_reply = ThrottleReply(config.throttle)
        # Read calls have their own windows: one shared, or one per read API.
        self._read_throttles: dict[str, FixedWindowThrottle] = {}
        self._read_throttle_reply: ThrottleReply | None = None
        read_throttle = config.reads.throttle
        if read_throttle is not None:
            self._read_throttle_reply = ThrottleReply(read_throttle)
            scopes = [name for name, _ in READ_APIS] if config.reads.throttle_per_api else ["*"]
            for scope in scopes:
                self._read_throttles[scope] = FixedWindowThrottle(read_throttle, start=monotonic())
        self._latency = config.latency
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._waiters: set[asyncio.Future[bool]] = set()
        self._debug = False

    # --- lifetime ----------------------------------------------------------------------------

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, allow_non_loopback: bool = False
    ) -> str:
        """Listen on ``host:port`` (0: a free port) and return the base URL.

        Hosts other than loopback raise :class:`ValueError` unless ``allow_non_loopback``: the
        simulator accepts any token by default and must not be reachable from elsewhere.
        """
        if self._runner is not None:
            raise RuntimeError("the simulator is already started")
        if not allow_non_loopback and not _is_loopback(host):
            raise ValueError(
                f"refusing to listen on {host!r}: only loopback hosts are allowed "
                "(pass allow_non_loopback=True to override)"
            )
        self._debug = bool(log.is_enabled_for(logging.DEBUG))
        runner = web.AppRunner(
            self._build_app(), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        # Windows and rates count from the moment the simulator can be reached.
        started = self._monotonic()
        if self._throttle is not None:
            self._throttle.start = started
        for throttle in self._read_throttles.values():
            throttle.start = started
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        log.info("sim.listening", url=self.url)
        return self.url

    async def close(self) -> None:
        """Stop serving, promptly: paused handlers (latency, hang) are woken and reset."""
        runner = self._runner
        if runner is None:
            return
        self._runner = None
        self._closing = True
        for waiter in list(self._waiters):
            _wake(waiter, True)
        # Shielded: a close that a cancellation interrupts would leave the port bound.
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
        log.info("sim.closed", url=self.url, requests_total=self.stats.requests_total)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Simulator(url={self.url!r}, seed={self.config.seed})"

    # --- the world, as the simulator knows it --------------------------------------------------

    def running_builds(self) -> list[tuple[str, int]]:
        """The world's builds running right now (aborting ones too), as ``(job_id, build_no)``.

        Empty without a world: builds outside it are not enumerable.
        """
        if self.world is None:
            return []
        return [(b.job.job_id, b.number) for b in self.world.running_builds(self._wall())]

    def ignored_stops(self) -> list[tuple[str, int]]:
        """The world's builds that had a stop call ignored, as ``(job_id, build_no)``."""
        if self.world is None:
            return []
        return [(b.job.job_id, b.number) for b in self.world.ignored_builds()]

    def world_snapshot(self) -> dict[str, Any]:
        """What ``GET /_sim/world`` answers: the world's jobs, running and ignored builds."""
        if self.world is None:
            return {"project_id": None, "jobs": [], "running": [], "ignored_stops": []}
        return self.world.snapshot(self._wall())

    def _build_app(self) -> web.Application:
        app = web.Application()
        router = app.router
        router.add_post("/v3/jobs/stop", self._legacy)
        router.add_post("/v3/jobs/{job_id}/{build_no}/stop", self._v3)
        router.add_post("/v1/job/{job_id}/stop", self._v1)
        for api, route in READ_APIS:
            router.add_get(route, self._read_handler(api))
        router.add_post("/v3/auth/tokens", self._iam_tokens)
        router.add_get("/_sim/stats", self._stats)
        router.add_get("/_sim/world", self._world)
        # Last: anything else is "URL not found", whatever the method.
        router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    # --- responses ---------------------------------------------------------------------------

    def _respond(
        self,
        status: int,
        body: bytes,
        content_type: str = _JSON,
        extra: Mapping[str, str] | None = None,
    ) -> web.Response:
        self.stats.responded(status)
        headers = {
            "X-Request-Id": f"{self._id_prefix}{next(self._ids):016x}",
            "Content-Type": content_type,
        }
        if extra:
            headers.update(extra)
        return web.Response(status=status, body=body, headers=headers)

    def _error(self, reply: ErrorReply) -> web.Response:
        return self._respond(reply.status, reply.body)

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; ``True`` when close() cut the wait short."""
        if self._closing:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        handle = loop.call_later(seconds, _wake, waiter, False)
        self._waiters.add(waiter)
        try:
            return await waiter
        finally:
            handle.cancel()
            self._waiters.discard(waiter)

    def _authenticate(self, request: web.Request, body: bytes) -> ErrorReply | None:
        headers = request.headers
        if "X-Security-Token" in headers:
            self.stats.security_token_requests += 1
        denial = self._auth.check(headers, request.method, request.rel_url, body)
        if denial is not None:
            self.stats.auth_failures += 1
        return denial

    # --- stop APIs ---------------------------------------------------------------------------

    async def _legacy(self, request: web.Request) -> web.StreamResponse:
        return await self._stop(request, "legacy", _target_legacy)

    async def _v3(self, request: web.Request) -> web.StreamResponse:
        return await self._stop(request, "v3", _target_v3)

    async def _v1(self, request: web.Request) -> web.StreamResponse:
        return await self._stop(request, "v1", _target_v1)

    async def _stop(
        self,
        request: web.Request,
        api: str,
        read_target: Callable[[web.Request, bytes], _Target | ErrorReply],
    ) -> web.StreamResponse:
        if api not in self.config.stop_apis:
            return await self._not_found(request)  # a route this service does not have
        stats = self.stats
        stats.requests_total += 1
        stats.stop_arrived(api, self._monotonic())
        response = await self._stop_steps(request, api, read_target)
        if self._debug:
            log.debug(
                "sim.request",
                api=api,
                path=request.path,
                status=response.status,
                request_id=response.headers.get("X-Request-Id", ""),
            )
        return response

    async def _stop_steps(
        self,
        request: web.Request,
        api: str,
        read_target: Callable[[web.Request, bytes], _Target | ErrorReply],
    ) -> web.StreamResponse:
        if self._latency and await self._pause(self._latency):
            _reset(request)
            return web.Response()
        body = await request.read()
        denial = self._authenticate(request, body)
        if denial is not None:
            return self._error(denial)
        target = read_target(request, body)
        if isinstance(target, tuple):
            self.stats.target_seen(target)
        if self._throttle is not None:
            wait = self._throttle.admit(self._monotonic())
            if wait is not None:
                return self._throttled(wait)
        if isinstance(target, ErrorReply):
            return self._error(target)
        job_id, build_no = target
        fault = self._faults.decide(job_id, build_no) if self._faults.enabled else None
        if fault is not None and not fault.after_stop:
            return await self._fault_response(request, fault)
        status, answer = self._apply_stop(api, job_id, build_no)
        if fault is not None:
            return await self._fault_response(request, fault)
        return self._respond(status, answer)

    def _apply_stop(self, api: str, job_id: str, build_no: int) -> tuple[int, bytes]:
        access = self._model.access(job_id)
        if access is not JobAccess.OK:
            reply = codes.JOB_NOT_FOUND if access is JobAccess.UNKNOWN else codes.JOB_FORBIDDEN
            return reply.status, reply.body
        outcome = self._model.stop(job_id, build_no, wall_now=self._wall())
        stopped_body, not_stopped_body = _STOP_BODIES[api]
        if outcome is StopOutcome.STOPPED:
            self.stats.stopped((job_id, build_no))
            return 200, stopped_body
        if outcome is StopOutcome.IGNORED:
            self.stats.ignored_stops += 1
            return 200, stopped_body
        if outcome is StopOutcome.NO_SUCH_BUILD:
            self.stats.unknown_builds += 1
            return codes.BUILD_NOT_FOUND.status, codes.BUILD_NOT_FOUND.body
        if outcome is StopOutcome.REPEAT:
            self.stats.repeat_stops += 1
        else:
            self.stats.already_finished += 1
        return 200, not_stopped_body

    def _throttled(self, wait: float) -> web.Response:
        reply = self._throttle_reply
        assert reply is not None
        self.stats.throttled += 1
        return self._respond(reply.status, reply.body, extra=reply.headers(wait, self._wall()))

    async def _fault_response(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        self.stats.fault(fault.kind, after_stop=fault.after_stop)
        kind = fault.kind
        if kind == "error_500":
            reply = codes.INTERNAL_ERROR if fault.variant < 0.5 else codes.NETWORK_BUSY
            return self._error(reply)
        if kind == "html_502":
            return self._respond(502, HTML_502, _HTML)
        if kind == "unavailable_503":
            return self._respond(503, HTML_503, _HTML, {"Retry-After": "1"})
        if kind == "bad_json_200":
            return self._respond(200, TRUNCATED_JSON)
        if kind == "hang" and not await self._pause(self.config.faults.hang_seconds):
            # The gateway gives up on the backend; the client has long timed out.
            return self._respond(504, HTML_504, _HTML)
        # "reset", or a hang that close() interrupted. aiohttp silently drops the response
        # returned for a connection that is gone.
        _reset(request)
        return web.Response()

    # --- read APIs ----------------------------------------------------------------------------

    def _read_handler(self, api: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return await self._read(request, api)

        return handler

    async def _read(self, request: web.Request, api: str) -> web.Response:
        stats = self.stats
        stats.requests_total += 1
        stats.read_requests[api] += 1
        denial = self._authenticate(request, await request.read())
        if denial is not None:
            return self._error(denial)
        throttles = self._read_throttles
        if throttles:
            throttle = throttles.get(api) or throttles["*"]
            wait = throttle.admit(self._monotonic())
            if wait is not None:
                reply = self._read_throttle_reply
                assert reply is not None
                stats.read_throttled += 1
                return self._respond(
                    reply.status, reply.body, extra=reply.headers(wait, self._wall())
                )
        answer = self._reads.answer(api, request.match_info, request.query, self._wall())
        if isinstance(answer, ErrorReply):
            response = self._error(answer)
        else:
            status, body = answer
            response = self._respond(status, json.dumps(body).encode())
        if self._debug:
            log.debug("sim.read", api=api, path=request.path, status=response.status)
        return response

    # --- IAM, statistics, everything else -----------------------------------------------------

    async def _iam_tokens(self, request: web.Request) -> web.Response:
        self.stats.requests_total += 1
        self.stats.iam_token_requests += 1
        if not self.config.iam_enabled:
            return self._error(codes.URL_NOT_FOUND)
        answer = self._auth.issue(await request.read())
        extra = {"X-Subject-Token": answer.token} if answer.token else None
        if self._debug:
            log.debug("sim.iam_token", status=answer.status)
        return self._respond(answer.status, answer.body, extra=extra)

    async def _stats(self, request: web.Request) -> web.Response:
        targets = request.query.get("targets", "") not in ("", "0", "false")
        body = json.dumps(self.stats.snapshot(targets=targets)).encode()
        headers = {"X-Request-Id": f"{self._id_prefix}{next(self._ids):016x}"}
        return web.Response(body=body, content_type=_JSON, headers=headers)

    async def _world(self, request: web.Request) -> web.Response:
        body = json.dumps(self.world_snapshot()).encode()
        headers = {"X-Request-Id": f"{self._id_prefix}{next(self._ids):016x}"}
        return web.Response(body=body, content_type=_JSON, headers=headers)

    async def _not_found(self, request: web.Request) -> web.Response:
        self.stats.requests_total += 1
        if self._debug:
            log.debug("sim.not_found", method=request.method, path=request.path)
        return self._error(codes.URL_NOT_FOUND)


async def serve_forever(
    config: SimulatorConfig,
    host: str,
    port: int,
    on_ready: Callable[[str], Awaitable[None] | None],
    *,
    allow_non_loopback: bool = False,
) -> None:
    """Run a simulator until cancelled; ``on_ready(url)`` is called once it listens."""
    simulator = Simulator(config)
    await simulator.start(host, port, allow_non_loopback=allow_non_loopback)
    try:
        ready = on_ready(simulator.url)
        if ready is not None:
            await ready
        await asyncio.Event().wait()
    finally:
        await simulator.close()
