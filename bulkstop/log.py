"""The library's loggers: structlog's once the application configured it, else stdlib logging.

An application that configures structlog (the bulkstop command line does, in
:mod:`bulkstop.logconfig`) gets every event through its own processors. One that has not would
get structlog's defaults, which print every event, debug ones included, to stdout — not what a
library may do to its host. Until structlog is configured, events go to the stdlib logger of
the same name (``bulkstop.engine``, ...), where the application's ``logging`` setup decides;
with none, Python shows warnings and errors on stderr and drops the rest.

The choice is made at each event, not at import, so configuring structlog late still counts.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

__all__ = ["LibraryLogger", "get_logger"]

_STDLIB_PROCESSORS: list[Any] = [
    structlog.stdlib.filter_by_level,  # before any formatting: a dropped event costs nothing
    structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
]


class LibraryLogger:
    """A named logger with structlog's calling convention: ``log.info("event", key=value)``."""

    __slots__ = ("_fallback", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._fallback: Any = None

    def _target(self) -> Any:
        if structlog.is_configured():
            return structlog.get_logger(self.name)
        if self._fallback is None:
            self._fallback = structlog.wrap_logger(
                logging.getLogger(self.name),
                processors=_STDLIB_PROCESSORS,
                wrapper_class=structlog.stdlib.BoundLogger,
            )
        return self._fallback

    def debug(self, event: str, **values: Any) -> None:
        self._target().debug(event, **values)

    def info(self, event: str, **values: Any) -> None:
        self._target().info(event, **values)

    def warning(self, event: str, **values: Any) -> None:
        self._target().warning(event, **values)

    def error(self, event: str, **values: Any) -> None:
        self._target().error(event, **values)

    def exception(self, event: str, **values: Any) -> None:
        self._target().exception(event, **values)

    def is_enabled_for(self, level: int) -> bool:
        """Whether an event at ``level`` (a :mod:`logging` level) would be emitted."""
        if not structlog.is_configured():
            return logging.getLogger(self.name).isEnabledFor(level)
        bound = structlog.get_logger(self.name).bind()
        check = getattr(bound, "is_enabled_for", None) or getattr(bound, "isEnabledFor", None)
        return bool(check(level)) if check is not None else True

    def __repr__(self) -> str:
        return f"LibraryLogger({self.name!r})"


def get_logger(name: str) -> LibraryLogger:
    return LibraryLogger(name)
