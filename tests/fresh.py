"""A fresh interpreter for a test: run a piece of Python code in a process of its own.

For what only a new process shows (which modules an import loads, what happens at exit); the
CODEARTS_ variables of the test's own environment are left out, so that no credential of the
developer's leaks into the case.
"""

from __future__ import annotations

import os
import subprocess
import sys

PROCESS_TIMEOUT = 60.0


def run_fresh(code: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with this interpreter in a new process; its output as text."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CODEARTS_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        env=environment,
        check=False,
    )
