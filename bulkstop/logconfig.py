"""structlog configuration for the command line (the library itself never configures logging).

Logs go to stderr — stdout stays free for machine-readable output — as coloured console lines
or as one JSON object per line (``--log-format json``, for cron and log shippers). A redaction
processor replaces every registered secret value wherever it appears in an event, as a last
line of defence behind :class:`bulkstop.auth.Secret`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, TextIO

__all__ = ["LEVELS", "Redactor", "configure_logging", "redactor"]

LEVELS = ("debug", "info", "warning", "error")


class Redactor:
    """Replaces known secret values in every string of an event dict, and in a message
    (:meth:`scrub`); a structlog processor. The command line keeps one, :data:`redactor`."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._sources: list[Callable[[], Iterable[str]]] = []

    def register(self, values: Iterable[str]) -> None:
        self._secrets.update(v for v in values if v and len(v) >= 4)

    def watch(self, source: Callable[[], Iterable[str]]) -> None:
        """Also redact whatever ``source()`` returns at each event (e.g. a refreshed token)."""
        self._sources.append(source)

    def _current(self) -> set[str]:
        if not self._sources:
            return self._secrets
        current = set(self._secrets)
        for source in self._sources:
            current.update(v for v in source() if v and len(v) >= 4)
        return current

    def scrub(self, text: str) -> str:
        for secret in self._current():
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        secrets = self._current()
        if not secrets:
            return event_dict
        for key, value in event_dict.items():
            if isinstance(value, int | float | bool | type(None)):
                continue
            text = value if isinstance(value, str) else str(value)
            if any(secret in text for secret in secrets):
                for secret in secrets:
                    text = text.replace(secret, "***")
                event_dict[key] = text
        return event_dict


#: The process's redactor: every secret registered or watched here is scrubbed from logs and
#: from the command line's messages.
redactor = Redactor()


def configure_logging(
    level: str = "info", fmt: str = "console", stream: TextIO | None = None
) -> None:
    """Configure structlog for the CLI: level filter, timestamps, redaction, renderer."""
    # Imported here: the command line's options (LEVELS) and its redactor need neither.
    import logging

    import structlog

    out = stream if stream is not None else sys.stderr
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
