from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import e2eguard  # found through the path above

if TYPE_CHECKING:
    from simhost import SimulatorHost


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(e2eguard, "bulkstop-e2eguard")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def simulator_host() -> Iterator[SimulatorHost]:
    """One background event loop for every test's simulators (see ``tests/simhost.py``)."""
    from simhost import SimulatorHost

    host = SimulatorHost()
    yield host
    host.close()
