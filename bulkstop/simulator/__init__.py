"""A local CodeArts Build look-alike: the three stop APIs, build status, IAM tokens and AK/SK.

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
``GET /v3/jobs/{job_id}/{build_no}/         ``{"success", "message", "err_code", "result":
record-info``                               {"build_no", "status", "start_time", "finish_time",
                                            "duration"}}``
``GET /v1/job/{job_id}/running-status``     ``{"result": {"last_job_id", "last_build_no",
                                            "last_build_status", "is_running"}, "error": null,
                                            "status": "success"}``
``POST /v3/auth/tokens``                    IAM password login → 201, ``X-Subject-Token``
``GET /_sim/stats[?targets=1]``             the :class:`SimulatorStats` snapshot (no auth)
anything else                               404 ``CB.00060214`` "URL not found"
==========================================  ===================================================

Every response carries a unique 32-hex-digit ``X-Request-Id``. Error bodies are
``{"error_code", "error_msg"}``. A stop request is checked in the gateway's order: auth (401
``APIG.0301``, expired token ``APIG.0307``) → throttle (``ThrottleConfig.style``) → fault before
the stop → validation (400 ``CB.00060201`` bad job id, ``CB.00060200`` anything else) → job
access → build model → fault after the stop. Builds are deterministic from the seed (see
:mod:`bulkstop.simulator.model`); a build is running until its first successful stop, and every
later stop answers "not stopped".

Build status strings: ``RUNNING``, ``ABORTED`` (stopped here), ``SUCCESS``/``FAILED`` (finished
before the simulator started).

Simulator-chosen (not documented upstream; see :mod:`bulkstop.simulator.codes`)
---------------------------------------------------------------------------------
* 404 ``CB.00060404`` for an unknown job, 403 ``CB.00060403`` for a forbidden one;
* v1's not-stopped ``status`` value ``"fail"``;
* the build status strings above and the ``YYYY-MM-DD HH:MM:SS`` (UTC) time format;
* the reasons after "Incorrect IAM authentication information: " in ``APIG.0301`` messages;
* IAM errors in the Keystone shape ``{"error": {"code": 401, "title", "message"}}``;
* the truncated JSON of the ``bad_json_200`` fault and the HTML pages of 502/503/504.

Extending it
------------
* a new API: a target reader, its bodies and a route in :mod:`bulkstop.simulator.server`;
* a new fault: a field in :class:`FaultConfig`, its name in ``FAULT_KINDS`` and its answer in
  ``Simulator._fault_response`` (:mod:`bulkstop.simulator.faults` describes the kinds);
* a new auth mode: a branch in ``Authenticator.check`` (:mod:`bulkstop.simulator.auth`);
* a new counter: :class:`SimulatorStats` and its ``snapshot``.
"""

from __future__ import annotations

from bulkstop.simulator.config import FaultConfig, SimulatorConfig, ThrottleConfig
from bulkstop.simulator.server import Simulator, serve_forever
from bulkstop.simulator.stats import SimulatorStats, SlidingWindowMax

__all__ = [
    "FaultConfig",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "SlidingWindowMax",
    "ThrottleConfig",
    "serve_forever",
]
