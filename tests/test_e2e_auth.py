"""End to end: every credential way against the simulator, and no secret anywhere it could leak.

The simulators run in this process, on one event loop in a background thread
(``tests/simhost.py``). Each ``bulkstop run`` is declared as a :class:`Case` next to the test
that checks it and made the first time a test asks for it, with an environment that holds only
the credentials the case gives it (every ``CODEARTS_*`` and ``HUAWEICLOUD_*`` variable of the
test's own environment is removed). Each case has a simulator of its own, so its counters tell
exactly what that run sent.

Most cases run in-process, through click's ``CliRunner``, each with a logging redactor of its
own (one run's registered secrets cannot hide another's leak). One run per credential way —
with debug logs as JSON — is a real process, so that the leak scans also see whatever a real
interpreter writes that an in-process run would not capture; those run side by side.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import pytest
import structlog
from click.testing import CliRunner
from simhost import HostedSimulator, SimulatorHost
from yarl import URL

from bulkstop import cli, logconfig
from bulkstop.auth import OutgoingRequest
from bulkstop.clock import MonotonicClock
from bulkstop.credentials import CredentialOptions, resolve_auth
from bulkstop.iam import IamPasswordAuth
from bulkstop.simulator import SimulatorConfig

pytestmark = pytest.mark.e2e

# Distinctive secrets, so that even a piece of one (a prefix, say) is found in the output.
PIECE = 8
TOKEN = "tok-SECRET-7f3a91c4e2b8d605"
DECOY_TOKEN = "tok-SECRET-decoy-0b5e28a7c41f"  # beside --token-file, which must win over it
IAM_PASSWORD = "pw-SECRET-c93d1a7e5f20b846"
WRONG_PASSWORD = "pw-SECRET-wrong-61f0d2a9"
SK = "sk-SECRET-4e8b2f61a9d07c35"
WRONG_SK = "sk-SECRET-wrong-93a7c5e1"
SECURITY_TOKEN = "sts-SECRET-a1d6e09f37b4c852"
SECRETS = (TOKEN, DECOY_TOKEN, IAM_PASSWORD, WRONG_PASSWORD, SK, WRONG_SK, SECURITY_TOKEN)
#: What the simulator's IAM issues: "MII" and 64 URL-safe characters.
ISSUED_TOKEN = re.compile(r"MII[A-Za-z0-9_-]{64}")

#: The simulator's own token in IAM and AK/SK cases, never given to bulkstop: without one the
#: simulator takes any token, and a run could pass without the credential under test.
UNSHARED_TOKEN = "unshared-simulator-token-5d2c"
AK = "AKSIMULATOR000000001"
PROJECT_ID = "0123456789abcdef0123456789abcdef"
IAM_USER, IAM_DOMAIN, IAM_PROJECT = "ops-bot", "acme", "cn-north-4"

TOKEN_SIMULATOR = {"token": TOKEN}
IAM_SIMULATOR = {
    "token": UNSHARED_TOKEN,
    "iam_user": IAM_USER,
    "iam_password": IAM_PASSWORD,
    "iam_domain": IAM_DOMAIN,
}
AKSK_SIMULATOR = {"token": UNSHARED_TOKEN, "aksk": (AK, SK)}
TOKEN_ENV = {"CODEARTS_TOKEN": TOKEN}
IAM_ENV = {
    "HUAWEICLOUD_USERNAME": IAM_USER,
    "HUAWEICLOUD_PASSWORD": IAM_PASSWORD,
    "HUAWEICLOUD_DOMAIN": IAM_DOMAIN,
}
AKSK_ENV = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
IAM_ARGS = ("--iam-endpoint", "{url}", "--project-name", IAM_PROJECT)
TOKEN_FILE_ARGS = ("--token-file", "{inputs}/token")

CONCURRENCY = 8
BREAKER = 5  # --auth-breaker's default
RUN_TIMEOUT = 60.0  # seconds; a process run takes one or two, this only bounds a hang


# --- simulators on a background loop -----------------------------------------------------------


def start_simulator(host: SimulatorHost, config: Mapping[str, Any]) -> HostedSimulator:
    """A new simulator on which every build is running, so every good stop is ``stopped``."""
    return host.start(SimulatorConfig(seed=0, finished_ratio=0.0, **config))


# --- CLI runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One ``bulkstop run``: its simulator, the credentials in its environment, extra options.

    In ``args`` and ``endpoint``, ``{url}`` is the simulator's URL and ``{inputs}`` the folder
    holding the targets, ``inputs`` (name → content) and a token file ``token`` with TOKEN.
    ``process`` runs it as a subprocess instead of in this process.
    """

    simulator: Mapping[str, Any]
    credentials: Mapping[str, str]
    args: tuple[str, ...] = ()
    targets: int = 60
    log_level: str = "info"
    log_format: str = "console"
    endpoint: str = "{url}"
    inputs: Mapping[str, bytes] = field(default_factory=dict)
    process: bool = False


CASES: dict[str, Case] = {}


def case(name: str, **settings: Any) -> str:
    """Declare a CLI run for ``cli_runs`` to make; the name is what tests look it up by."""
    assert name not in CASES, name
    CASES[name] = Case(**settings)
    return name


def outside_variables() -> list[str]:
    """Every variable of this environment that could hand a run a credential."""
    return [name for name in os.environ if name.startswith(("CODEARTS_", "HUAWEICLOUD_"))]


def job_id(number: int) -> str:
    return f"{number:08x}" * 4


class CliRun:
    """One case: inputs in ``inputs/``, all it writes in ``out/``, its streams in ``streams/``."""

    def __init__(self, spec: Case, workdir: Path) -> None:
        self.spec = spec
        self.workdir = workdir
        self.report = workdir / "out" / "report.csv"
        self.code = -1
        self.stdout = self.stderr = ""
        self.stats: dict[str, Any] = {}
        self._simulator: HostedSimulator | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def _prepare(self, host: SimulatorHost) -> list[str]:
        """Write the inputs, start the simulator; the arguments of ``bulkstop run``."""
        spec = self.spec
        inputs = self.workdir / "inputs"
        for folder in ("inputs", "out", "streams"):
            (self.workdir / folder).mkdir()
        targets_csv = inputs / "targets.csv"
        targets_csv.write_text(
            "job_id,build_no\n"
            + "".join(f"{job_id(i)},{i % 7 + 1}\n" for i in range(spec.targets)),
            encoding="utf-8",
        )
        (inputs / "token").write_text(TOKEN + "\n", encoding="utf-8")
        for name, content in spec.inputs.items():
            (inputs / name).write_bytes(content)
        simulator = self._simulator = start_simulator(host, spec.simulator)

        def fill(text: str) -> str:
            return text.format(url=simulator.url, inputs=inputs)

        return [
            "run", str(targets_csv),
            "--endpoint", fill(spec.endpoint),
            "--report", str(self.report),
            "--rate", "500",
            "--concurrency", str(CONCURRENCY),
            "--progress", "never",
            "--log-level", spec.log_level,
            "--log-format", spec.log_format,
            *map(fill, spec.args),
        ]  # fmt: skip

    def run_here(self, host: SimulatorHost) -> None:
        """Run the case in this process, to its end."""
        args = self._prepare(host)
        env: dict[str, str | None] = dict.fromkeys(outside_variables())
        env.update(self.spec.credentials)
        # A redactor of its own: secrets an earlier run registered must not scrub this one's.
        redactor = logconfig.Redactor()
        try:
            with mock.patch.object(logconfig, "redactor", redactor):
                result = CliRunner().invoke(cli.main, args, env=env)
        finally:
            structlog.reset_defaults()  # the run pointed its logs at the runner's stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"bulkstop raised instead of exiting: {result.exception!r}")
        self.code = result.exit_code
        self.stdout, self.stderr = result.stdout, result.stderr
        self._finish()

    def launch(self, host: SimulatorHost) -> None:
        """Start the case as a process; :meth:`wait` ends it."""
        args = self._prepare(host)
        env = {k: v for k, v in os.environ.items() if k not in outside_variables()}
        env.update(self.spec.credentials)
        # Streams go to files: runs side by side must not block on full pipes.
        streams = self.workdir / "streams"
        with (streams / "stdout").open("wb") as stdout, (streams / "stderr").open("wb") as stderr:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "bulkstop", *args],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=env,
                cwd=self.workdir / "out",
            )

    def wait(self) -> None:
        assert self._process is not None
        try:
            self.code = self._process.wait(timeout=RUN_TIMEOUT)
        finally:
            self.kill()
        streams = self.workdir / "streams"
        self.stdout = (streams / "stdout").read_text(encoding="utf-8", errors="replace")
        self.stderr = (streams / "stderr").read_text(encoding="utf-8", errors="replace")
        self._finish()

    def _finish(self) -> None:
        assert self._simulator is not None
        self.stats = self._simulator.stats()
        self._simulator.close()

    def kill(self) -> None:
        """End the subprocess if it still runs (a hang, or a failure elsewhere)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def outcomes(self) -> Counter[str]:
        with self.report.open(encoding="utf-8", newline="") as report:
            return Counter(row["outcome"] for row in csv.DictReader(report))

    def written(self) -> dict[str, str]:
        """Every file the run wrote (report, ``.inflight`` sidecar, ...), by name."""
        return {
            path.name: path.read_text(encoding="utf-8", errors="replace")
            for path in sorted((self.workdir / "out").rglob("*"))
            if path.is_file()
        }

    def everything(self) -> str:
        """stdout, stderr and every file written: all that a secret could leak into."""
        return "\n".join([self.stdout, self.stderr, *self.written().values()])

    def log_events(self) -> list[dict[str, Any]]:
        assert self.spec.log_format == "json"
        return [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]


class CliRuns:
    """The module's cases, each made the first time a test asks for it.

    Asking for a process case starts every process case not made yet, side by side (starting
    the CLI is a second of CPU-bound imports; the runs overlap on the cores), and waits for
    them all.
    """

    def __init__(self, host: SimulatorHost, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._host = host
        self._factory = tmp_path_factory
        self._done: dict[str, CliRun] = {}

    def __getitem__(self, name: str) -> CliRun:
        if name not in self._done:
            if CASES[name].process:
                self._run_processes()
            else:
                run = CliRun(CASES[name], self._factory.mktemp(name))
                run.run_here(self._host)
                self._done[name] = run
        return self._done[name]

    def _run_processes(self) -> None:
        runs = {
            name: CliRun(spec, self._factory.mktemp(name))
            for name, spec in CASES.items()
            if spec.process and name not in self._done
        }
        try:
            for run in runs.values():
                run.launch(self._host)
            for run in runs.values():
                run.wait()
        finally:
            for run in runs.values():
                run.kill()
        self._done.update(runs)


@pytest.fixture(scope="module")
def cli_runs(
    simulator_host: SimulatorHost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CliRuns]:
    yield CliRuns(simulator_host, tmp_path_factory)
    structlog.reset_defaults()


def leaked_secrets(text: str) -> list[str]:
    """Every piece of a secret (``PIECE`` characters or more) and IAM-issued token in ``text``."""
    pieces = {
        secret[start : start + PIECE]
        for secret in SECRETS
        for start in range(len(secret) - PIECE + 1)
    }
    return sorted(piece for piece in pieces if piece in text) + ISSUED_TOKEN.findall(text)


# --- the five ways, each a full run with debug logs in both formats (JSON: a real process) ----


@dataclass(frozen=True)
class Way:
    """One way of giving credentials: what the simulator accepts and what bulkstop is given."""

    mode: str  # as logged by auth.source
    source: str  # a piece of auth.source's description
    simulator: Mapping[str, Any]
    credentials: Mapping[str, str]
    args: tuple[str, ...] = ()


WAYS = {
    "token-env": Way("token", "token from CODEARTS_TOKEN", TOKEN_SIMULATOR, TOKEN_ENV),
    # The variable holds a token the simulator refuses: the run passes only if the file wins.
    "token-file": Way(
        "token",
        "(CODEARTS_TOKEN ignored)",
        TOKEN_SIMULATOR,
        {"CODEARTS_TOKEN": DECOY_TOKEN},
        TOKEN_FILE_ARGS,
    ),
    "iam-password": Way(
        "iam-password", f"IAM password for user {IAM_USER}", IAM_SIMULATOR, IAM_ENV, IAM_ARGS
    ),
    "aksk": Way(
        "aksk",
        "AK/SK from HUAWEICLOUD_SDK_AK",
        AKSK_SIMULATOR,
        {**AKSK_ENV, "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT_ID},
    ),
    "aksk-temporary": Way(
        "aksk",
        "temporary AK/SK from HUAWEICLOUD_SDK_AK",
        AKSK_SIMULATOR,
        {**AKSK_ENV, "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN},
        ("--project-id", PROJECT_ID),
    ),
}
WAY_TARGETS = 60
WAY_RUNS = {
    (way, log_format): case(
        f"{way}-{log_format}",
        simulator=spec.simulator,
        credentials=spec.credentials,
        args=spec.args,
        targets=WAY_TARGETS,
        log_level="debug",
        log_format=log_format,
        process=log_format == "json",
    )
    for way, spec in WAYS.items()
    for log_format in ("console", "json")
}


@pytest.mark.parametrize("name", WAY_RUNS.values())
def test_each_way_stops_every_target(cli_runs: CliRuns, name: str) -> None:
    run = cli_runs[name]

    assert run.code == 0, run.stderr
    assert run.outcomes() == {"stopped": WAY_TARGETS}
    assert run.stats["effective_stops"] == WAY_TARGETS
    assert run.stats["auth_failures"] == 0


@pytest.mark.parametrize("way", WAYS)
def test_each_way_logs_its_credential_source(cli_runs: CliRuns, way: str) -> None:
    run = cli_runs[WAY_RUNS[way, "json"]]

    chosen = [event for event in run.log_events() if event["event"] == "auth.source"]

    assert len(chosen) == 1, run.stderr
    assert chosen[0]["mode"] == WAYS[way].mode
    assert WAYS[way].source in chosen[0]["source"]


@pytest.mark.parametrize(("way", "expected"), [("aksk", 0), ("aksk-temporary", WAY_TARGETS)])
def test_only_temporary_keys_send_a_security_token(
    cli_runs: CliRuns, way: str, expected: int
) -> None:
    assert cli_runs[WAY_RUNS[way, "json"]].stats["security_token_requests"] == expected


@pytest.mark.parametrize("name", WAY_RUNS.values())
def test_no_secret_in_output_report_or_sidecar(cli_runs: CliRuns, name: str) -> None:
    run = cli_runs[name]
    # Teeth: debug lines were written, and the report is among the files scanned.
    assert "debug" in run.stderr
    assert run.report.name in run.written()

    assert leaked_secrets(run.everything()) == []


@pytest.mark.anyio
@pytest.mark.parametrize("way", WAYS)
async def test_no_secret_in_reprs_of_ready_credentials(
    simulator_host: SimulatorHost, tmp_path: Path, way: str
) -> None:
    spec = WAYS[way]
    simulator = start_simulator(simulator_host, spec.simulator)
    (tmp_path / "token").write_text(TOKEN, encoding="utf-8")
    args = [arg.format(url=simulator.url, inputs=tmp_path) for arg in spec.args]
    flags = dict(zip(args[::2], args[1::2], strict=True))
    token_file = flags.get("--token-file")
    async with aiohttp.ClientSession() as session:
        resolved = resolve_auth(
            CredentialOptions(
                token_file=None if token_file is None else Path(token_file),
                project_id=flags.get("--project-id"),
                project_name=flags.get("--project-name"),
                iam_endpoint=flags.get("--iam-endpoint"),
            ),
            spec.credentials,
            session=session,
            clock=MonotonicClock(),
        )
        await resolved.auth.prepare()
        request = OutgoingRequest(method="POST", url=URL(simulator.url) / "v3/jobs/stop")
        await resolved.auth.sign(request)
    shown = "\n".join([repr(resolved), str(resolved.auth), resolved.source])

    # The request is where the IAM-issued token can be read: it goes on the wire.
    sent = request.headers.get("X-Auth-Token")
    assert sent is None or sent not in shown
    assert leaked_secrets(shown) == []


@pytest.mark.anyio
async def test_scans_recognise_a_token_the_simulator_issues(
    simulator_host: SimulatorHost,
) -> None:
    # The CLI runs cannot be told the tokens IAM issued them, so the scans look for their shape.
    simulator = start_simulator(simulator_host, IAM_SIMULATOR)
    async with aiohttp.ClientSession() as session:
        auth = IamPasswordAuth(
            session,
            simulator.url,
            IAM_USER,
            IAM_PASSWORD,
            IAM_DOMAIN,
            project_name=IAM_PROJECT,
            clock=MonotonicClock(),
        )
        request = OutgoingRequest(method="POST", url=URL(simulator.url) / "v3/jobs/stop")
        await auth.sign(request)

    assert ISSUED_TOKEN.fullmatch(request.headers["X-Auth-Token"])


# --- tokens expiring mid-run ------------------------------------------------------------------

EXPIRY_TARGETS, TOKEN_TTL = 150, 40
IAM_EXPIRY = case(
    "iam-token-expiring",
    simulator={**IAM_SIMULATOR, "token_ttl_requests": TOKEN_TTL},
    credentials=IAM_ENV,
    args=IAM_ARGS,
    targets=EXPIRY_TARGETS,
)
FIXED_TOKEN_EXPIRY = case(
    "fixed-token-expiring",
    simulator={**TOKEN_SIMULATOR, "token_ttl_requests": TOKEN_TTL},
    credentials=TOKEN_ENV,
    targets=EXPIRY_TARGETS,
)
FIXED_TOKEN_EXPIRY_NO_BREAKER = case(
    "fixed-token-expiring-no-breaker",
    simulator={**TOKEN_SIMULATOR, "token_ttl_requests": TOKEN_TTL},
    credentials=TOKEN_ENV,
    args=("--auth-breaker", "0"),
    targets=EXPIRY_TARGETS,
)


def test_iam_token_expiring_mid_run_stops_every_target(cli_runs: CliRuns) -> None:
    run = cli_runs[IAM_EXPIRY]

    assert run.code == 0, run.stderr
    assert run.outcomes() == {"stopped": EXPIRY_TARGETS}
    assert run.stats["effective_stops"] == EXPIRY_TARGETS


def test_iam_token_is_fetched_once_per_expiry_not_once_per_worker(
    cli_runs: CliRuns,
) -> None:
    run = cli_runs[IAM_EXPIRY]
    # Each token serves exactly TOKEN_TTL successful stops and every target is stopped once,
    # so the run outlives (targets - 1) // ttl tokens: one login, then one fetch per expiry,
    # however many of the eight workers saw the expired token at once.
    expiries = (EXPIRY_TARGETS - 1) // TOKEN_TTL

    assert run.stats["iam_token_requests"] == 1 + expiries


def test_fixed_token_expiring_mid_run_trips_the_auth_breaker(cli_runs: CliRuns) -> None:
    run = cli_runs[FIXED_TOKEN_EXPIRY]
    outcomes = run.outcomes()

    assert run.code == 3, run.stderr
    assert "ABORTED (credentials)" in run.stderr
    assert outcomes["stopped"] == TOKEN_TTL
    assert outcomes["aborted"] > 0
    assert set(outcomes) <= {"stopped", "unauthorized", "aborted"}
    assert 0 < run.stats["stop_requests"] - TOKEN_TTL <= BREAKER + CONCURRENCY


def test_fixed_token_expiring_mid_run_leaves_the_rest_unauthorized(
    cli_runs: CliRuns,
) -> None:
    run = cli_runs[FIXED_TOKEN_EXPIRY_NO_BREAKER]

    assert run.code == 1, run.stderr
    assert run.outcomes() == {"stopped": TOKEN_TTL, "unauthorized": EXPIRY_TARGETS - TOKEN_TTL}
    # A fixed token cannot be refreshed: each later target is tried once, not again.
    assert run.stats["stop_requests"] == EXPIRY_TARGETS


# --- credentials the service refuses ------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        case(
            "wrong-token",
            simulator=TOKEN_SIMULATOR,
            credentials={"CODEARTS_TOKEN": DECOY_TOKEN},
        ),
        case(
            "wrong-secret-key",
            simulator=AKSK_SIMULATOR,
            credentials={
                **AKSK_ENV,
                "HUAWEICLOUD_SDK_SK": WRONG_SK,
                "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT_ID,
            },
        ),
    ],
)
def test_refused_credentials_trip_the_breaker_and_stop_nothing(
    cli_runs: CliRuns, name: str
) -> None:
    run = cli_runs[name]

    assert run.code == 3, run.stderr
    assert f"{BREAKER} authentication failures in a row" in run.stderr
    assert run.stats["effective_stops"] == 0
    assert run.stats["stop_requests"] <= BREAKER + CONCURRENCY
    assert set(run.outcomes()) <= {"unauthorized", "aborted"}
    assert leaked_secrets(run.everything()) == []


WRONG_IAM_PASSWORD = case(
    "wrong-iam-password",
    simulator=IAM_SIMULATOR,
    credentials={**IAM_ENV, "HUAWEICLOUD_PASSWORD": WRONG_PASSWORD},
    args=IAM_ARGS,
)


def test_wrong_iam_password_is_an_error_before_any_stop(cli_runs: CliRuns) -> None:
    run = cli_runs[WRONG_IAM_PASSWORD]

    assert run.code == 2, run.stderr
    assert f"refused the login of user {IAM_USER!r}" in run.stderr
    assert run.stats["stop_requests"] == 0
    # One login only: retrying a refused password is how users get locked out.
    assert run.stats["iam_token_requests"] == 1
    assert not run.report.exists()
    assert leaked_secrets(run.everything()) == []


# --- credentials missing or given twice ---------------------------------------------------------

EVERY_WAY_SIMULATOR = {**IAM_SIMULATOR, "aksk": (AK, SK)}


@pytest.mark.parametrize(
    ("name", "named"),
    [
        (
            case(
                "token-and-access-key",
                simulator=EVERY_WAY_SIMULATOR,
                credentials={**TOKEN_ENV, **AKSK_ENV},
            ),
            ("more than one way", "CODEARTS_TOKEN", "HUAWEICLOUD_SDK_AK"),
        ),
        (
            case(
                "token-file-and-iam-password",
                simulator=EVERY_WAY_SIMULATOR,
                credentials={"HUAWEICLOUD_PASSWORD": IAM_PASSWORD},
                args=TOKEN_FILE_ARGS,
            ),
            ("more than one way", "--token-file", "HUAWEICLOUD_PASSWORD"),
        ),
        (
            case(
                "only-iam-username",
                simulator=EVERY_WAY_SIMULATOR,
                credentials={"HUAWEICLOUD_USERNAME": IAM_USER},
                args=IAM_ARGS,
            ),
            ("HUAWEICLOUD_PASSWORD", "HUAWEICLOUD_DOMAIN"),
        ),
        (
            case(
                "access-key-without-project",
                simulator=EVERY_WAY_SIMULATOR,
                credentials=AKSK_ENV,
            ),
            ("project id", "HUAWEICLOUD_SDK_PROJECT_ID", "--project-id"),
        ),
        (
            case("no-credentials", simulator=EVERY_WAY_SIMULATOR, credentials={}),
            ("no credentials", "CODEARTS_TOKEN", "HUAWEICLOUD_USERNAME", "HUAWEICLOUD_SDK_AK"),
        ),
    ],
)
def test_missing_or_contradictory_credentials_are_a_usage_error(
    cli_runs: CliRuns, name: str, named: tuple[str, ...]
) -> None:
    run = cli_runs[name]

    assert run.code == 2, run.stderr
    assert all(word in run.stderr for word in named), run.stderr
    assert run.stats["requests_total"] == 0
    assert not run.report.exists()
    assert leaked_secrets(run.everything()) == []


# --- transport ----------------------------------------------------------------------------------

# 192.0.2.1 is TEST-NET-1: nothing answers there, so only a refusal ends the run at once.
PLAIN_HTTP_REMOTE = case(
    "plain-http-remote",
    simulator=TOKEN_SIMULATOR,
    credentials=TOKEN_ENV,
    endpoint="http://192.0.2.1:8080",
)


def test_plain_http_to_a_remote_host_is_refused_before_connecting(
    cli_runs: CliRuns,
) -> None:
    run = cli_runs[PLAIN_HTTP_REMOTE]

    assert run.code == 2, run.stderr
    assert "--insecure-http" in run.stderr
    assert not run.report.exists()
    assert leaked_secrets(run.everything()) == []


CA_BUNDLE_NOT_PEM = case(
    "ca-bundle-not-pem",
    simulator=TOKEN_SIMULATOR,
    credentials=TOKEN_ENV,
    args=("--ca-bundle", "{inputs}/corporate-ca.pem"),
    inputs={"corporate-ca.pem": b"this is not a certificate\n"},
)


def test_ca_bundle_that_is_not_pem_is_a_usage_error(cli_runs: CliRuns) -> None:
    run = cli_runs[CA_BUNDLE_NOT_PEM]

    assert run.code == 2, run.stderr
    assert "--ca-bundle" in run.stderr
    assert "cannot load certificates" in run.stderr
    assert run.stats["requests_total"] == 0
