"""A local CodeArts Build look-alike: stops, reads of builds, a world of jobs, IAM and AK/SK.

Used by ``bulkstop run --simulate``, ``bulkstop simulate --port P``, end-to-end tests and
benchmarks. It is an aiohttp server on loopback, fast enough for tens of thousands of requests
(nothing per request is heavier than a dict update and one BLAKE2b hash)::

    async with Simulator(SimulatorConfig(token="t", throttle=ThrottleConfig(limit=10))) as sim:
        ...  # point a client at sim.url
        print(sim.stats.snapshot())

What is simulated
-----------------
==========================================  ===================================================
``POST /v3/jobs/stop`` (legacy)             body ``{"job_id", "build_no"}`` (string or number)
                                            → ``{"result": true|false}``
``POST /v3/jobs/{job_id}/{build_no}/stop``  → ``{"success": true|false, "result": ""}``
``POST /v1/job/{job_id}/stop``              ``?build_no=N`` and/or body ``{"build_no": N}``
                                            (both must agree) → ``{"status": "success"|"fail"}``
the eleven read APIs                        job lists, a job's records, one build, running
                                            status: see :mod:`bulkstop.simulator.reads`
``POST /v3/auth/tokens``                    IAM password login → 201, ``X-Subject-Token``
``GET /_sim/stats[?targets=1]``             the :class:`SimulatorStats` snapshot (no auth)
``GET /_sim/world``                         the world's jobs, the builds running now and the
                                            builds whose stop was ignored (no auth)
anything else                               404 ``CB.00060214`` "URL not found"
==========================================  ===================================================

Every response carries a unique 32-hex-digit ``X-Request-Id``. Error bodies are
``{"error_code", "error_msg"}``. A stop request is checked in the gateway's order: auth (401
``APIG.0301``, expired token ``APIG.0307``) → throttle (``ThrottleConfig.style``) → fault before
the stop → validation (400 ``CB.00060201`` bad job id, ``CB.00060200`` anything else) → job
access → build model → fault after the stop. Read requests: auth → read throttle (its own
windows, ``ReadConfig.throttle``) → validation → job access → answer.

Two kinds of job
----------------
* The **world** (``SimulatorConfig.world``, :class:`WorldConfig`; on by default in
  ``bulkstop simulate``): a CodeArts project of jobs with build histories over time, driven by
  the injected wall clock (:mod:`bulkstop.simulator.world`). Builds start, run and end by
  themselves; a stop takes effect after ``stop_delay`` (``ABORTING`` until then, still running),
  and a share of stop calls is acknowledged but ignored. ``Simulator.running_builds()`` and
  ``GET /_sim/world`` say what runs right now.
* **Every other** 32-character job id exists (unless the ratios or lists make it unknown or
  forbidden), with every ``build_no ≥ 1`` running until its first successful stop unless hashed
  "finished" (:mod:`bulkstop.simulator.model`); it lists no records.

Build states: ``RUNNING``, ``ABORTING`` (stopped, not yet in effect), ``ABORTED``, ``SUCCESS``,
``FAILURE``.

Simulator-chosen (not documented upstream; see :mod:`bulkstop.simulator.codes`)
---------------------------------------------------------------------------------
* 404 ``CB.00060404`` for an unknown job, 403 ``CB.00060403`` for a forbidden one, 404
  ``CB.00060405`` for a build number a world job has not reached, 404 ``CB.00060406`` for a
  project that is not the world's;
* v1's not-stopped ``status`` value ``"fail"``;
* the running build states ``RUNNING`` and ``ABORTING`` (neither is a terminal word), and the
  running value ``Running`` of ``job_running_status`` / ``last_job_running_status`` / the
  running-status ``last_build_status`` (``Finished`` is documented);
* which build state maps to which ``last_build_status`` (``building``, ``blue``, ``red``,
  ``aborted``), and that ``build_status`` filters on the job's last build only;
* ``start_time``/``end_time`` of the record lists read in UTC; the history's times as
  ``yyyy-MM-dd HH:mm:ss`` UTC; ``null`` ``finish_time``/``duration``/``end_time`` while running;
* records newest first; ``page_size``/``limit`` default 10, ``interval`` default 30;
* trigger types other than ``Manual``, the user, job and project names, ``region``
  ``cn-north-4``;
* the reasons after "Incorrect IAM authentication information: " in ``APIG.0301`` messages;
* IAM errors in the Keystone shape ``{"error": {"code": 401, "title", "message"}}``;
* the truncated JSON of the ``bad_json_200`` fault and the HTML pages of 502/503/504.

Extending it
------------
* a new stop API: a target reader, its bodies and a route in :mod:`bulkstop.simulator.server`;
* a new read API: its route in ``READ_APIS`` and answer in :mod:`bulkstop.simulator.reads`;
* a new fault: a field in :class:`FaultConfig`, its name in ``FAULT_KINDS`` and its answer in
  ``Simulator._fault_response`` (:mod:`bulkstop.simulator.faults` describes the kinds);
* a new auth mode: a branch in ``Authenticator.check`` (:mod:`bulkstop.simulator.auth`);
* a new counter: :class:`SimulatorStats` and its ``snapshot``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bulkstop.simulator.config import (
    FaultConfig,
    ReadConfig,
    SimulatorConfig,
    ThrottleConfig,
    WorldConfig,
)
from bulkstop.simulator.stats import SimulatorStats, SlidingWindowMax
from bulkstop.simulator.world import World

if TYPE_CHECKING:
    from bulkstop.simulator.server import Simulator, serve_forever

__all__ = [
    "FaultConfig",
    "ReadConfig",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "SlidingWindowMax",
    "ThrottleConfig",
    "World",
    "WorldConfig",
    "serve_forever",
]

#: Imported on first use: the server pulls in aiohttp's web side, which ``bulkstop --help`` and
#: the configuration classes do not need.
_LAZY = {"Simulator": "bulkstop.simulator.server", "serve_forever": "bulkstop.simulator.server"}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value
