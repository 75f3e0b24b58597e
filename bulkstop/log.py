"""The library's loggers: structlog's once the application configured it, else stdlib logging.

An application that configures structlog (the bulkstop command line does, in
:mod:`bulkstop.logconfig`) gets every event through its own processors. One that has not would
get structlog's defaults, which print every event, debug ones included, to stdout — not what a
library may do to its host. Until structlog is configured, events go to the stdlib logger of
the same name (``bulkstop.engine``, ...), where the application's ``logging`` setup decides;
with none, Python shows warnings and errors on stderr and drops the rest. Such an event is
one line, ``event='stop.failed' build_no=20 job_id='…'`` (the event first, then the values by
name, each as its ``repr``), and costs nothing below the logger's level.

The choice is made at each event, not at import, so configuring structlog late still counts.
The library never imports structlog itself: an application that configured it has imported
it, so while it is not imported nobody has configured it. That keeps the import of structlog
(and of rich, which structlog loads when it is installed) out of a program that does not use
them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["LibraryLogger", "get_logger"]


class LibraryLogger:
    """A named logger with structlog's calling convention: ``log.info("event", key=value)``."""

    __slots__ = ("_stdlib", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._stdlib = logging.getLogger(name)

    def debug(self, event: str, **values: Any) -> None:
        self._log(logging.DEBUG, "debug", event, values)

    def info(self, event: str, **values: Any) -> None:
        self._log(logging.INFO, "info", event, values)

    def warning(self, event: str, **values: Any) -> None:
        self._log(logging.WARNING, "warning", event, values)

    def error(self, event: str, **values: Any) -> None:
        self._log(logging.ERROR, "error", event, values)

    def is_enabled_for(self, level: int) -> bool:
        """Whether an event at ``level`` (a :mod:`logging` level) would be emitted."""
        configured = _configured_structlog()
        if configured is None:
            return self._stdlib.isEnabledFor(level)
        bound = configured.get_logger(self.name).bind()
        check = getattr(bound, "is_enabled_for", None) or getattr(bound, "isEnabledFor", None)
        return bool(check(level)) if check is not None else True

    def _log(self, level: int, method: str, event: str, values: dict[str, Any]) -> None:
        configured = _configured_structlog()
        if configured is not None:
            getattr(configured.get_logger(self.name), method)(event, **values)
        elif self._stdlib.isEnabledFor(level):  # before any formatting
            self._stdlib.log(level, _key_values(event, values))

    def __repr__(self) -> str:
        return f"LibraryLogger({self.name!r})"


def _configured_structlog() -> Any:
    """The structlog module when the application has configured it, else ``None``."""
    structlog = sys.modules.get("structlog")
    if structlog is None or not structlog.is_configured():
        return None
    return structlog


def _key_values(event: str, values: dict[str, Any]) -> str:
    """``event='…' a=1 b='x'``: the line structlog's ``KeyValueRenderer(key_order=["event"],
    sort_keys=True)`` writes, without importing structlog for it."""
    return " ".join(
        [f"event={event!r}", *(f"{key}={value!r}" for key, value in sorted(values.items()))]
    )


def get_logger(name: str) -> LibraryLogger:
    return LibraryLogger(name)
