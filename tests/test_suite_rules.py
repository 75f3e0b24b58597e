"""Rules the suite keeps about itself: the e2e marker is honest, tests stay on loopback, and no
test reaches into aiohttp.

The first two are enforced while tests run (``tests/e2eguard.py``); these tests run a small
suite through pytest itself to see the guard judge it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TESTS = Path(__file__).parent
GUARDED = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
import e2eguard

def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end to end")
    config.pluginmanager.register(e2eguard, "bulkstop-e2eguard")
"""
SPAWN = """
import subprocess, sys

def spawn():
    subprocess.run([sys.executable, "-c", ""], check=True, timeout=30)
"""
#: The modules of aiohttp its documentation describes; everything else is its inside.
AIOHTTP_PUBLIC = frozenset({"aiohttp", "aiohttp.abc", "aiohttp.test_utils", "aiohttp.web"})


#: The inner runs load no plugin but the guard: none of ours (each costs its import) and none the
#: machine happens to have installed (pytest-benchmark, say, runs git and file at start-up, which
#: the guard rightly counts against the outer test).
INNER = ("-p", "no:cacheprovider")


class Guarded:
    """A directory of tests that pytest runs under the guard, in this process."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self._pytester = pytester
        pytester.makeconftest(GUARDED)

    def makepyfile(self, source: str) -> None:
        self._pytester.makepyfile(source)

    def runpytest(self) -> pytest.RunResult:
        return self._pytester.runpytest_inprocess(*INNER)


@pytest.fixture
def guarded(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Guarded:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return Guarded(pytester)


def test_a_test_that_starts_a_subprocess_without_the_e2e_marker_fails(
    guarded: Guarded,
) -> None:
    guarded.makepyfile(SPAWN + "\ndef test_unmarked():\n    spawn()\n")

    result = guarded.runpytest()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_unmarked: started a subprocess without the e2e marker*"])


def test_a_test_marked_e2e_may_start_a_subprocess(guarded: Guarded) -> None:
    guarded.makepyfile(
        "import pytest\n" + SPAWN + "\n@pytest.mark.e2e\ndef test_marked():\n    spawn()\n"
    )

    guarded.runpytest().assert_outcomes(passed=1)


def test_a_fixture_that_starts_a_subprocess_counts_against_its_test(
    guarded: Guarded,
) -> None:
    guarded.makepyfile(
        "import pytest\n"
        + SPAWN
        + "\n@pytest.fixture\ndef spawned():\n    spawn()\n"
        + "\ndef test_unmarked(spawned):\n    pass\n"
    )

    guarded.runpytest().assert_outcomes(errors=1)


@pytest.mark.parametrize("event", ["socket.connect", "socket.bind"])
@pytest.mark.parametrize("marker", ["", "@pytest.mark.e2e\n"], ids=["unmarked", "e2e"])
def test_a_test_that_uses_an_address_beyond_loopback_fails(
    guarded: Guarded, event: str, marker: str
) -> None:
    # The audit event alone, as socket.connect/bind raise it just before they act: no packet
    # leaves the machine to show that none may.
    guarded.makepyfile(
        "import socket, sys, pytest\n"
        f"{marker}def test_outward():\n"
        "    with socket.socket() as sock:\n"
        f"        sys.audit({event!r}, sock, ('192.0.2.1', 443))\n"
    )

    result = guarded.runpytest()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*('192.0.2.1', 443), which is not loopback*"])


def test_an_unmarked_test_may_listen_and_connect_on_loopback(guarded: Guarded) -> None:
    guarded.makepyfile(
        "import socket\n"
        "def test_loopback():\n"
        "    with socket.create_server(('127.0.0.1', 0)) as server:\n"
        "        with socket.create_connection(server.getsockname(), timeout=5):\n"
        "            pass\n"
    )

    guarded.runpytest().assert_outcomes(passed=1)


def _aiohttp_imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return [name for name in found if name.split(".")[0] == "aiohttp"]


def test_no_test_imports_a_private_aiohttp_module() -> None:
    private = {
        f"{path.name}: {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in _aiohttp_imports(path)
        if name not in AIOHTTP_PUBLIC
    }

    assert private == set()
