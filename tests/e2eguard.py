"""Keeps the ``e2e`` marker honest and the suite on loopback (a pytest plugin, via conftest).

The fast lane (``pytest -m "not e2e"``) stays fast only if every slow test is marked, and the
slow part of a test is almost always a process: a fresh interpreter takes a second to import
bulkstop. So a test that starts a subprocess without the ``e2e`` marker fails, naming what it
started. And no test, marked or not, may connect to or listen on an address other than
loopback: everything a test talks to runs on this machine.

Both are seen through Python's audit events (:func:`sys.addaudithook`: ``subprocess.Popen``,
``os.posix_spawn``, ``os.fork``, ``os.system``, ``os.exec``; ``socket.connect``,
``socket.bind``), which every way of starting a process or opening a socket raises, in any
thread. An event counts against the test whose setup, call or teardown is running. The hook is
installed once per process and cannot be removed; outside a test it does nothing.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Generator
from typing import Any

import pytest

__all__ = ["pytest_runtest_call", "pytest_runtest_setup", "pytest_runtest_teardown"]

_SPAWNS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.fork", "os.system", "os.exec"})
_SOCKETS = frozenset({"socket.connect", "socket.bind"})


class _Watch:
    """What one test phase did that it may not do."""

    __slots__ = ("e2e", "item", "problems")

    def __init__(self, item: pytest.Item) -> None:
        self.item = item
        self.e2e = item.get_closest_marker("e2e") is not None
        self.problems: list[str] = []


#: The test phases running now, innermost last (a test may run pytest inside itself).
_watching: list[_Watch] = []


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _what(event: str, args: tuple[Any, ...]) -> str:
    """What was started: its argument list (never its environment, which may hold a secret)."""
    if event in ("subprocess.Popen", "os.posix_spawn", "os.exec") and len(args) > 1:
        return repr(args[1])
    if event == "os.system" and args:
        return repr(args[0])
    return event


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _watching or (event not in _SPAWNS and event not in _SOCKETS):
        return
    watch = _watching[-1]
    if event in _SPAWNS:
        if not watch.e2e:
            watch.problems.append(
                f"started a subprocess without the e2e marker: {_what(event, args)}"
            )
        return
    address = args[1] if len(args) > 1 else None
    # Unix sockets are named by a path; IP sockets by a (host, port, ...) tuple.
    if isinstance(address, tuple) and address and not _is_loopback(address[0]):
        verb = "connected to" if event == "socket.connect" else "listened on"
        watch.problems.append(f"{verb} {address!r}, which is not loopback")


sys.addaudithook(_audit)


def _watched(item: pytest.Item) -> Generator[None, object, object]:
    watch = _Watch(item)
    _watching.append(watch)
    try:
        result = yield
    finally:
        _watching.remove(watch)
    if watch.problems:
        problems = dict.fromkeys(watch.problems)  # one Popen can raise two spawn events
        pytest.fail(f"{item.nodeid}: " + "; ".join(problems), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _watched(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _watched(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _watched(item))
