"""Start-up: what is imported is what is used.

Each test starts a fresh interpreter (this one has long imported everything), does one thing
there and reads back which modules that loaded. A property of the imports, not a timing: the
timings are ``python3 benchmarks/bench.py startup``'s.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from fresh import run_fresh
from simhost import SimulatorHost

from bulkstop.simulator import SimulatorConfig

pytestmark = pytest.mark.e2e  # a fresh interpreter is a subprocess

#: Modules that cost a start-up most; each test says which of them it may load.
HEAVY = ("aiohttp", "anyio", "click", "pydantic", "rich", "structlog", "yarl")


def loaded_after(code: str, *, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = textwrap.dedent(code) + (
        "\nimport json as _json, sys as _sys\n"
        "_sys.__stdout__.write('\\nMODULES ' + _json.dumps(sorted(_sys.modules)) + '\\n')\n"
    )
    done = run_fresh(probe, env=env)
    assert done.returncode == 0, done.stderr
    marker = done.stdout.rindex("\nMODULES ")
    return set(json.loads(done.stdout[marker + len("\nMODULES ") :]))


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_import_bulkstop_imports_nothing_heavy() -> None:
    loaded = loaded_after("import bulkstop\nbulkstop.__version__")

    assert top_level(loaded) & set(HEAVY) == set()
    assert {name for name in loaded if name.startswith("bulkstop")} == {"bulkstop"}


def test_a_public_name_imports_its_own_module_only() -> None:
    loaded = loaded_after("import bulkstop\nbulkstop.ExitCode")

    assert {name for name in loaded if name.startswith("bulkstop")} == {
        "bulkstop",
        "bulkstop.errors",
    }


JOB = "f9d6c8466d614a9788e9a0acf6c15f46"

#: A run of the engine against a client that answers at once, writing a new report.
FRESH_REPORT = f"""
import asyncio, pathlib, sys
from bulkstop.engine import Stopper
from bulkstop.models import Reply, ReplyKind
from bulkstop.pacing import Pacer
from bulkstop.report import ReportWriter

class Instant:
    async def stop(self, target):
        return Reply(kind=ReplyKind.STOPPED, http_status=200)

    async def refresh_credentials(self, generation):
        return False

async def main():
    with ReportWriter(pathlib.Path(sys.argv[1]), overwrite=True) as writer:
        stopper = Stopper(Instant(), pacer=Pacer(rate=1000), observer=writer)
        async with stopper.run([("{JOB}", 20)]) as results:
            async for result in results:
                writer.write(result)

asyncio.run(main())
"""


def loaded_by_script(code: str, *args: str) -> set[str]:
    """:func:`loaded_after` for a script given arguments."""
    return loaded_after(f"import sys\nsys.argv[1:] = {list(args)!r}\n" + textwrap.dedent(code))


def test_a_run_that_writes_a_new_report_loads_neither_pydantic_nor_structlog(
    tmp_path: Path,
) -> None:
    loaded = top_level(loaded_by_script(FRESH_REPORT, str(tmp_path / "r.csv")))

    # structlog (and rich, which it loads) only once an application configures logging
    assert loaded & {"pydantic", "structlog", "rich"} == set()


def test_reading_a_report_back_loads_pydantic(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    loaded_by_script(FRESH_REPORT, str(report))

    loaded = loaded_by_script(
        "import pathlib, sys\nfrom bulkstop.report import load_report\n"
        "assert len(load_report(pathlib.Path(sys.argv[1])).records) == 1\n",
        str(report),
    )

    assert "pydantic" in top_level(loaded)


@pytest.mark.parametrize(
    ("credential", "signing"),
    [("TokenAuth('a-token')", False), ("AkSkAuth('AKEXAMPLE0000000000', 'SK' * 20, 'p')", True)],
    ids=["token", "aksk"],
)
def test_the_signing_code_is_loaded_for_an_access_key_only(credential: str, signing: bool) -> None:
    loaded = loaded_after(
        f"""
        import asyncio
        from yarl import URL
        from bulkstop.auth import AkSkAuth, TokenAuth
        from bulkstop.models import OutgoingRequest

        request = OutgoingRequest(method="POST", url=URL("https://example.invalid/v3/jobs/stop"))
        asyncio.run({credential}.sign(request))
        """
    )

    assert ("bulkstop.signing" in loaded) is signing


def test_the_command_lines_logging_options_load_no_structlog() -> None:
    loaded = loaded_after(
        "from bulkstop.logconfig import LEVELS, redactor\nredactor.scrub('text')\n"
    )

    assert top_level(loaded) & {"structlog", "rich"} == set()


def run_command_line(*args: str) -> str:
    """Code that runs ``bulkstop ARGS`` as the script does, keeping the process alive after."""
    return (
        "from bulkstop.cli import main\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
    )


@pytest.mark.parametrize("args", [["--help"], ["--version"]], ids=["help", "version"])
def test_help_and_version_load_click_alone(args: list[str]) -> None:
    loaded = loaded_after(run_command_line(*args))

    assert top_level(loaded) & set(HEAVY) == {"click"}
    # the group lists its commands without importing them
    assert {name for name in loaded if name.startswith("bulkstop")} == {"bulkstop", "bulkstop.cli"}


def test_completing_a_command_name_imports_no_command() -> None:
    code = (
        "from bulkstop.cli import main\n"
        "try:\n"
        "    main([], prog_name='bulkstop')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
    )
    env = {"_BULKSTOP_COMPLETE": "zsh_complete", "COMP_WORDS": "bulkstop ", "COMP_CWORD": "1"}
    loaded = loaded_after(code, env=env)

    assert top_level(loaded) & set(HEAVY) == {"click"}
    assert {name for name in loaded if name.startswith("bulkstop")} == {"bulkstop", "bulkstop.cli"}


@pytest.mark.parametrize("command", ["run", "discover", "verify"])
def test_a_command_help_loads_no_library(command: str) -> None:
    loaded = loaded_after(run_command_line(command, "--help"))

    assert top_level(loaded) & set(HEAVY) == {"click"}
    assert not {"bulkstop.job", "bulkstop.discover", "bulkstop.verify"} & loaded


#: What a run with a token, writing a new report, never needs: another credential's code, the
#: read APIs, discovery, verification, the simulator, what reads a report back or resumes one
#: (and pydantic), and rich (stderr is not a terminal); nor the code of options not given: a
#: dry run's (``--dry-run``), a subset's (``--only-outcome``), verifying's (``--verify``).
NOT_IN_A_TOKEN_RUN = (
    "bulkstop.cli.verdicts",
    "bulkstop.discover",
    "bulkstop.dryrun",
    "bulkstop.iam",
    "bulkstop.reader",
    "bulkstop.reads",
    "bulkstop.report.compaction",
    "bulkstop.report.index",
    "bulkstop.report.resume",
    "bulkstop.signing",
    "bulkstop.simulator",
    "bulkstop.subset",
    "bulkstop.verify",
    "bulkstop.verifying",
    "pydantic",
    "rich",
)


def test_a_run_with_a_token_loads_only_what_it_uses(
    tmp_path: Path, simulator_host: SimulatorHost
) -> None:
    simulator = simulator_host.start(SimulatorConfig(token="lazy-token-1", finished_ratio=0.0))
    source = tmp_path / "in.csv"
    source.write_text(f"job_id,build_no\n{JOB},20\n", encoding="utf-8")
    args = ["run", str(source), "--endpoint", simulator.url, "--report", str(tmp_path / "r.csv")]

    loaded = loaded_after(run_command_line(*args), env={"CODEARTS_TOKEN": "lazy-token-1"})

    assert simulator.stats()["effective_stops"] == 1
    assert {
        name for name in NOT_IN_A_TOKEN_RUN if name in loaded or name in top_level(loaded)
    } == set()
    simulator.close()
