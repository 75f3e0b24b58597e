"""structlog configuration for the command line (the library itself never configures logging).

Logs go to stderr — stdout stays free for machine-readable output — as coloured console lines
or as one JSON object per line (``--log-format json``, for cron and log shippers). A redaction
processor replaces every registered secret value wherever it appears in an event, as a last
line of defence behind :class:`bulkstop.auth.Secret`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, MutableMapping
from types import ModuleType
from typing import Any, TextIO, cast

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


def _structlog() -> ModuleType:
    """structlog, imported without rich where nothing has imported rich yet.

    structlog loads rich, when it is installed, for its pretty tracebacks; the lines
    configured here never use them (exceptions are rendered as text before the renderer),
    and importing rich cost a run a tenth of its start-up. ``None`` in ``sys.modules`` makes
    an import fail as if the module were not installed (the import system's documented rule),
    so structlog takes its way without rich; rich can be imported again (for the progress
    display) as soon as structlog is in. Imported here, not at the top: the command line's
    options (:data:`LEVELS`) and its :data:`redactor` need no structlog.
    """
    modules = cast(dict[str, ModuleType | None], sys.modules)
    if "structlog" in modules or "rich" in modules:
        import structlog

        return structlog
    modules["rich"] = None
    try:
        import structlog
    finally:
        if "rich" in modules and modules["rich"] is None:
            del modules["rich"]
    return structlog


class _Stderr:
    """``sys.stderr`` as it is at each write, not as it was when logging was configured.

    While the live progress display is shown, rich replaces ``sys.stderr`` with a proxy that
    prints every line above the display; log lines written here then go through it instead
    of tearing the display.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty()) if isatty is not None else False


def configure_logging(
    level: str = "info", fmt: str = "console", stream: TextIO | None = None
) -> None:
    """Configure structlog for the CLI: level filter, timestamps, redaction, renderer."""
    import logging

    structlog = _structlog()
    out: TextIO | _Stderr = stream if stream is not None else _Stderr()
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        # Exceptions reach the renderer as text (format_exc_info): plain, whether rich is
        # installed or not.
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
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
