"""Start-up: what is imported is what is used.

Each test starts a fresh interpreter (this one has long imported everything), does one thing
there and reads back which modules that loaded. A property of the imports, not a timing: the
timings are ``python3 benchmarks/bench.py startup``'s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.e2e  # a fresh interpreter is a subprocess

PROCESS_TIMEOUT = 60.0
#: Modules that cost a start-up most; each test says which of them it may load.
HEAVY = ("aiohttp", "anyio", "click", "pydantic", "rich", "structlog", "yarl")


def loaded_after(code: str, *, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = textwrap.dedent(code) + (
        "\nimport json as _json, sys as _sys\n"
        "_sys.__stdout__.write('\\nMODULES ' + _json.dumps(sorted(_sys.modules)) + '\\n')\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CODEARTS_")}
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        env=environment,
        check=False,
    )
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
