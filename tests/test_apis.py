"""The three stop APIs without a network: request shapes, reading 2xx bodies, error bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from yarl import URL

from bulkstop.apis import STOP_APIS, ApiRequest, get_stop_api, parse_error_body
from bulkstop.models import Target
from bulkstop.transport import check_endpoint

JOB_ID = "f9d6c8466d614a9788e9a0acf6c15f46"
TARGET = Target(job_id=JOB_ID, build_no=20)
ENDPOINT = URL("https://cloudbuild-ext.cn-north-4.myhuaweicloud.com")


def test_legacy_request_is_a_post_to_v3_jobs_stop() -> None:
    call = get_stop_api("legacy").request(ENDPOINT, TARGET)

    assert call.method == "POST"
    assert call.url == ENDPOINT / "v3" / "jobs" / "stop"
    assert not call.url.query


def test_legacy_body_is_the_signed_golden_body_with_build_no_as_a_string() -> None:
    call = get_stop_api("legacy").request(ENDPOINT, TARGET)

    # Byte for byte the body of the official SDK's golden signing vector.
    assert call.body == b'{"job_id":"f9d6c8466d614a9788e9a0acf6c15f46","build_no":"20"}'
    assert json.loads(call.body)["build_no"] == "20"


def test_v3_request_puts_job_and_build_in_the_path_and_sends_no_body() -> None:
    call = get_stop_api("v3").request(ENDPOINT, TARGET)

    assert call.method == "POST"
    assert call.url.path == f"/v3/jobs/{JOB_ID}/20/stop"
    assert not call.url.query
    assert call.body == b""


def test_v1_request_sends_build_no_in_the_query_and_as_an_integer_in_the_body() -> None:
    call = get_stop_api("v1").request(ENDPOINT, TARGET)

    assert call.method == "POST"
    assert call.url.path == f"/v1/job/{JOB_ID}/stop"
    assert dict(call.url.query) == {"build_no": "20"}
    assert json.loads(call.body) == {"build_no": 20}


@pytest.mark.parametrize(
    ("api", "path"),
    [
        ("legacy", "/base/v3/jobs/stop"),
        ("v3", f"/base/v3/jobs/{JOB_ID}/20/stop"),
        ("v1", f"/base/v1/job/{JOB_ID}/stop"),
    ],
)
def test_request_keeps_the_endpoint_base_path(api: str, path: str) -> None:
    call = get_stop_api(api).request(URL("https://gw.example.com/base"), TARGET)

    assert call.url.host == "gw.example.com"
    assert call.url.path == path


JOINED = {
    "v3": lambda e, t: e.joinpath("v3", "jobs", t.job_id, str(t.build_no), "stop"),
    "v1": lambda e, t: e.joinpath("v1", "job", t.job_id, "stop").with_query(
        build_no=str(t.build_no)
    ),
}


@pytest.mark.parametrize("api", sorted(JOINED))
@pytest.mark.parametrize(
    "endpoint",
    ["https://gw.example.com", "http://127.0.0.1:8080/base", "http://[::1]:9/a%20b/c", "https://h/é"],
)
@pytest.mark.parametrize("build_no", [1, 20, 2**31 - 1])
def test_a_per_target_url_is_the_one_a_path_join_builds(
    api: str, endpoint: str, build_no: int
) -> None:
    target = Target(job_id="0" * 16 + "z" * 16, build_no=build_no)
    base = check_endpoint(endpoint)

    url = get_stop_api(api).request(base, target).url

    expected = JOINED[api](base, target)
    assert (str(url), url.path, url.raw_path, url.query) == (
        str(expected),
        expected.path,
        expected.raw_path,
        expected.query,
    )


@pytest.mark.parametrize("build_no", [1, 20, 2**31 - 1])
def test_v1_body_is_compact_json(build_no: int) -> None:
    call = get_stop_api("v1").request(ENDPOINT, Target(job_id=JOB_ID, build_no=build_no))

    assert call.body == json.dumps({"build_no": build_no}, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("api", "payload", "expected"),
    [
        ("legacy", {"result": True}, True),
        ("legacy", {"result": False}, False),
        ("legacy", {"result": "true"}, None),
        ("legacy", {"result": 1}, None),
        ("legacy", {"success": True}, None),
        ("v3", {"success": True, "result": ""}, True),
        ("v3", {"success": False, "result": ""}, False),
        ("v3", {"success": "true"}, None),
        ("v3", {"result": True}, None),
        ("v1", {"status": "success"}, True),
        ("v1", {"status": "failed"}, False),
        ("v1", {"status": "SUCCESS"}, False),
        ("v1", {"status": True}, None),
        ("v1", {"result": True}, None),
    ],
)
def test_stopped_reads_the_api_success_flag(api: str, payload: Any, expected: bool | None) -> None:
    assert get_stop_api(api).stopped(payload) is expected


@pytest.mark.parametrize("api", sorted(STOP_APIS))
@pytest.mark.parametrize("payload", [None, [], "stopped", 1, True, {}])
def test_stopped_is_none_for_a_body_that_is_not_an_object_with_the_flag(
    api: str, payload: Any
) -> None:
    assert get_stop_api(api).stopped(payload) is None


@pytest.mark.parametrize("name", ["legacy", "v3", "v1"])
def test_get_stop_api_returns_the_api_of_that_name(name: str) -> None:
    assert get_stop_api(name).name == name


def test_unknown_api_name_is_refused_with_the_known_names() -> None:
    with pytest.raises(ValueError, match=r"'v2'.*known: legacy, v1, v3"):
        get_stop_api("v2")


def test_stop_apis_are_keyed_by_their_own_names() -> None:
    assert {name: api.name for name, api in STOP_APIS.items()} == {
        "legacy": "legacy",
        "v3": "v3",
        "v1": "v1",
    }


@pytest.mark.parametrize(
    "payload",
    [
        {"error_code": "CB.00060200", "error_msg": "invalid parameter"},
        {"errorCode": "CB.00060200", "errorMsg": "invalid parameter"},
        {"code": "CB.00060200", "message": "invalid parameter"},
        {"error": {"code": "CB.00060200", "message": "invalid parameter"}},
        {"error": {"error_code": "CB.00060200", "error_msg": "invalid parameter"}},
        {"error": {"errorCode": "CB.00060200", "errorMsg": "invalid parameter"}},
        {"error_code": "CB.00060200", "error_msg": "invalid parameter", "request_id": "r-1"},
    ],
    ids=["snake", "camel", "code-message", "nested", "nested-snake", "nested-camel", "extra"],
)
def test_parse_error_body_reads_every_form(payload: dict[str, Any]) -> None:
    assert parse_error_body(payload) == ("CB.00060200", "invalid parameter")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"error_code": "APIG.0301"}, ("APIG.0301", "")),
        ({"error_msg": "boom"}, ("", "boom")),
        ({"code": 400, "message": "bad"}, ("400", "bad")),
        ({"error_code": None, "error_msg": None, "code": "X", "message": "m"}, ("X", "m")),
    ],
    ids=["code-only", "message-only", "numeric-code", "null-pair-falls-through"],
)
def test_parse_error_body_takes_partial_and_non_string_values(
    payload: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert parse_error_body(payload) == expected


def test_parse_error_body_prefers_top_level_keys_over_nested_ones() -> None:
    payload = {"error_code": "TOP", "error_msg": "top", "error": {"code": "IN", "message": "in"}}

    assert parse_error_body(payload) == ("TOP", "top")


@pytest.mark.parametrize(
    "payload",
    [None, "oops", ["error_code"], 42, {}, {"result": False}, {"error": "denied"}],
    ids=["none", "string", "list", "number", "empty", "no-error-keys", "error-not-object"],
)
def test_parse_error_body_gives_empty_pair_without_an_error_object(payload: Any) -> None:
    assert parse_error_body(payload) == ("", "")


def test_parse_error_body_looks_only_one_level_deep() -> None:
    assert parse_error_body({"error": {"error": {"code": "X", "message": "m"}}}) == ("", "")


def test_parse_error_body_survives_a_body_nested_deeper_than_the_recursion_limit() -> None:
    payload: dict[str, Any] = {"code": "X"}
    for _ in range(5000):
        payload = {"error": payload}

    assert parse_error_body(payload) == ("", "")


@pytest.mark.parametrize("name", ["legacy", "v3", "v1"])
def test_a_request_is_the_api_request_its_fields_make(name: str) -> None:
    made = STOP_APIS[name].request(URL("https://example.test"), Target("0" * 32, 5))
    assert type(made) is ApiRequest
    assert made == ApiRequest(method=made.method, url=made.url, body=made.body)
    assert (made.method, made.url.host) == ("POST", "example.test")
