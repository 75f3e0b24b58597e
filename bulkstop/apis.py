"""The three CodeArts stop APIs: how each request is shaped and how each answer is read.

========  ==========================================  ==================================
name      request                                     "stopped" when the 2xx body has
========  ==========================================  ==================================
legacy    ``POST /v3/jobs/stop`` + JSON body          ``result`` true
          ``{"job_id", "build_no": "<string>"}``
v3        ``POST /v3/jobs/{job_id}/{build_no}/stop``  ``success`` true
v1        ``POST /v1/job/{job_id}/stop?build_no=N``   ``status == "success"``
          + JSON body ``{"build_no": N}``
========  ==========================================  ==================================

v1 sends ``build_no`` both ways: the SDK uses the query, the docs show a body; both is safe.
Adding an API is adding one :class:`StopApi` here and an entry in :data:`STOP_APIS`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Protocol

from yarl import URL

from bulkstop.models import Target, new_named_tuple

__all__ = [
    "STOP_APIS",
    "ApiRequest",
    "LegacyStopApi",
    "StopApi",
    "V1StopApi",
    "V3StopApi",
    "get_stop_api",
    "parse_error_body",
]


class ApiRequest(NamedTuple):
    """One stop call's method, URL and body (a named tuple: one is made per request)."""

    method: str
    url: URL
    body: bytes


class StopApi(Protocol):
    """One stop API: build the request for a target, read a 2xx body."""

    @property
    def name(self) -> str: ...

    def request(self, endpoint: URL, target: Target) -> ApiRequest: ...

    def stopped(self, payload: Any) -> bool | None:
        """``True`` stopped, ``False`` not stopped, ``None`` when the body is not this API's."""
        ...


@functools.lru_cache(maxsize=16)
def _legacy_url(endpoint: URL) -> URL:
    return endpoint.joinpath("v3", "jobs", "stop")


@functools.lru_cache(maxsize=16)
def _base(endpoint: URL, *segments: str) -> str:
    """``endpoint`` joined with ``segments``, as the encoded text a per-target URL starts with."""
    return str(endpoint.joinpath(*segments))


def _target_url(base: str, tail: str) -> URL:
    # A Target's job_id is 32 of [0-9a-z] and its build_no an int: nothing in ``tail`` needs
    # quoting, so the URL is parsed as already encoded, at a fraction of a joinpath's cost.
    return URL(base + tail, encoded=True)


class LegacyStopApi:
    """``POST /v3/jobs/stop`` with ``build_no`` as a JSON string (the product brief's API)."""

    name = "legacy"

    def request(self, endpoint: URL, target: Target) -> ApiRequest:
        # One request per target at thousands a second: the body is formatted rather than
        # built by json.dumps (which makes a new encoder per call for compact separators),
        # and the URL, the same for every target, is joined once per endpoint. A Target's
        # job_id is 32 of [0-9a-z]: nothing in it needs escaping in JSON.
        body = b'{"job_id":"%b","build_no":"%d"}' % (target.job_id.encode(), target.build_no)
        return new_named_tuple(ApiRequest, ("POST", _legacy_url(endpoint), body))

    def stopped(self, payload: Any) -> bool | None:
        if isinstance(payload, dict):
            value = payload.get("result")
            if isinstance(value, bool):
                return value
        return None


class V3StopApi:
    """``POST /v3/jobs/{job_id}/{build_no}/stop``, no body."""

    name = "v3"

    def request(self, endpoint: URL, target: Target) -> ApiRequest:
        tail = f"/{target.job_id}/{target.build_no}/stop"
        url = _target_url(_base(endpoint, "v3", "jobs"), tail)
        return new_named_tuple(ApiRequest, ("POST", url, b""))

    def stopped(self, payload: Any) -> bool | None:
        if isinstance(payload, dict):
            value = payload.get("success")
            if isinstance(value, bool):
                return value
        return None


class V1StopApi:
    """``POST /v1/job/{job_id}/stop`` with ``build_no`` in the query and in the body."""

    name = "v1"

    def request(self, endpoint: URL, target: Target) -> ApiRequest:
        tail = f"/{target.job_id}/stop?build_no={target.build_no}"
        # what json.dumps({"build_no": N}, separators=(",", ":")) gives, without an encoder
        body = b'{"build_no":%d}' % target.build_no
        url = _target_url(_base(endpoint, "v1", "job"), tail)
        return new_named_tuple(ApiRequest, ("POST", url, body))

    def stopped(self, payload: Any) -> bool | None:
        if isinstance(payload, dict):
            value = payload.get("status")
            if isinstance(value, str):
                return value == "success"
        return None


STOP_APIS: dict[str, StopApi] = {
    api.name: api for api in (LegacyStopApi(), V3StopApi(), V1StopApi())
}


def get_stop_api(name: str) -> StopApi:
    try:
        return STOP_APIS[name]
    except KeyError:
        known = ", ".join(sorted(STOP_APIS))
        raise ValueError(f"unknown stop API {name!r}; known: {known}") from None


def parse_error_body(payload: Any) -> tuple[str, str]:
    """``(code, message)`` from any error body form the SDK accepts, else ``("", "")``.

    Forms: ``error_code/error_msg``, ``errorCode/errorMsg``, ``code/message``, and each of
    these nested one level under ``error``.
    """
    if not isinstance(payload, dict):
        return "", ""
    found = _flat_error(payload)
    if found is None:
        # One level only: the body is untrusted, and recursing into it would let a deeply
        # nested answer raise RecursionError out of the client.
        nested = payload.get("error")
        if isinstance(nested, dict):
            found = _flat_error(nested)
    return found or ("", "")


def _flat_error(payload: dict[str, Any]) -> tuple[str, str] | None:
    for code_key, msg_key in (
        ("error_code", "error_msg"),
        ("errorCode", "errorMsg"),
        ("code", "message"),
    ):
        code, msg = payload.get(code_key), payload.get(msg_key)
        if code is not None or msg is not None:
            return _text(code), _text(msg)
    return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)
