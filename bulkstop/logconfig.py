"""structlog configuration for the command line (the library itself never configures logging).

Logs go to stderr — stdout stays free for machine-readable output — as coloured console lines
or as one JSON object per line (``--log-format json``, for cron and log shippers). A redaction
processor replaces every registered secret value wherever it appears in an event, as a last
line of defence behind :class:`bulkstop.auth.Secret`.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from types import ModuleType
from typing import Any, TextIO, cast

__all__ = [
    "GROUPED",
    "LEVELS",
    "Digest",
    "Redactor",
    "configure_logging",
    "flush_digest",
    "redactor",
]

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


#: The per-row events a console at the default level groups into a :class:`Digest`; at
#: ``--log-level debug`` (and in JSON logs, for machines) each is its own line.
#: An invalid input row stays a line of its own: it names the line of the input to fix.
GROUPED = frozenset({"stop.retry_scheduled", "stop.failed", "pacing.rate_cut"})


class Digest:
    """Repeated per-row events, counted and said as one line at most every ``interval`` s.

    A structlog processor: an event of :data:`GROUPED` is counted and dropped, and when the
    last digest is ``interval`` seconds old (or there was none) the event is replaced by the
    digest of everything counted since — ``retries 12 (timeout 8, HTTP 503 4) · throttled 30
    · failed 2 (not_found 2)``. :meth:`flush` says what is counted and not said yet (the
    command calls it as results come, and once at the end). The per-row detail stays in the
    report and at debug level.

    Attributes:
        interval: least seconds between two digests.
        clock: seconds on a monotonic scale (injected in tests).
        retries: retries scheduled since the last digest, by the answer that caused them.
        throttled: throttled answers retried since the last digest.
        failed: targets that ended neither stopped nor not stopped, by outcome.
        rate: the pacer's rate after its latest cut, if one was cut.
        said: the clock's time of the last digest (``None``: none yet).
    """

    __slots__ = (
        "clock",
        "failed",
        "interval",
        "rate",
        "retries",
        "said",
        "throttled",
    )

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] | None = None) -> None:
        import time

        self.interval = interval
        self.clock = clock if clock is not None else time.monotonic
        self.retries: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.throttled = 0
        self.rate: float | None = None
        self.said: float | None = None

    def note(self, event_dict: MutableMapping[str, Any]) -> None:
        """Count one grouped event."""
        event = event_dict.get("event")
        if event == "stop.retry_scheduled":
            if event_dict.get("throttled"):
                self.throttled += 1
            else:
                self.retries[str(event_dict.get("reason") or "other")] += 1
        elif event == "stop.failed":
            self.failed[str(event_dict.get("outcome") or "failed")] += 1
        elif event == "pacing.rate_cut":
            self.rate = float(event_dict.get("rate") or 0.0)

    @property
    def pending(self) -> bool:
        """Whether something was counted and not said yet."""
        return bool(self.retries or self.failed or self.throttled) or (self.rate is not None)

    def due(self) -> bool:
        """Whether a digest may be said now."""
        return self.said is None or self.clock() - self.said >= self.interval

    def take(self) -> tuple[str, str]:
        """The digest of what is pending as ``(level, text)``, and start counting anew."""
        parts = []
        if self.retries:
            parts.append(f"retries {self.retries.total()} ({_breakdown(self.retries)})")
        if self.throttled:
            parts.append(f"throttled {self.throttled}")
        if self.rate is not None:
            parts.append(f"rate cut to {self.rate:g}/s")
        if self.failed:
            parts.append(f"failed {self.failed.total()} ({_breakdown(self.failed)})")
        level = "warning" if self.failed else "info"
        self.retries.clear()
        self.failed.clear()
        self.throttled = 0
        self.rate = None
        self.said = self.clock()
        return level, " · ".join(parts)

    def flush(self, *, force: bool = False) -> None:
        """Say what is pending, when a digest is due (or ``force``)."""
        if not self.pending or not (force or self.due()):
            return
        level, text = self.take()
        logger = _structlog().get_logger("bulkstop.digest")
        getattr(logger, level)(text)

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if event_dict.get("event") not in GROUPED:
            return event_dict
        self.note(event_dict)
        if not self.due():
            raise _structlog().DropEvent
        level, text = self.take()
        return {
            "event": text,
            "level": level,
            **{key: event_dict[key] for key in ("timestamp",) if key in event_dict},
        }

    def __repr__(self) -> str:
        return (
            f"Digest(interval={self.interval:g}, retries={self.retries.total()},"
            f" throttled={self.throttled}, failed={self.failed.total()}, said={self.said})"
        )


def _breakdown(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.most_common())


#: The digest of the console as configured (``None``: each event is its own line).
_digest: Digest | None = None


def flush_digest(*, force: bool = False) -> None:
    """Say the console's pending digest when one is due (or ``force``); see :class:`Digest`."""
    if _digest is not None:
        _digest.flush(force=force)


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
    level: str = "info",
    fmt: str = "console",
    stream: TextIO | None = None,
    *,
    digest: Digest | None = None,
) -> None:
    """Configure structlog for the CLI: level filter, timestamps, redaction, renderer; and
    route other libraries' warnings and errors through it (see :class:`_StdlibToStructlog`).

    On the console above debug level, the per-row events of :data:`GROUPED` are said as a
    :class:`Digest` (``digest``, or a new one a second at most); JSON logs keep every event.
    """
    import logging

    global _digest
    _digest = None
    if fmt != "json" and level != "debug":
        _digest = digest if digest is not None else Digest()

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
            *([] if _digest is None else [_digest]),
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_warnings()


def _stdlib_to_structlog(record: Any) -> None:
    """Other libraries' warnings and errors (aiohttp's, asyncio's, Python's ``warnings``),
    as events of the configured structlog — one JSON object under ``--log-format json`` —
    instead of the plain text of Python's last-resort handler. Silent while structlog is
    not configured."""
    structlog = sys.modules.get("structlog")
    if structlog is None or not structlog.is_configured():
        return
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a record whose arguments do not fit its format
        message = str(record.msg)
    values: dict[str, Any] = {"logger": record.name}
    if record.exc_info:
        values["exc_info"] = record.exc_info
    method = "warning" if record.levelno < 40 else "error"  # the handler's level is WARNING
    getattr(structlog.get_logger(record.name), method)(message, **values)


#: The root logger's handler that :func:`_stdlib_to_structlog` is, once configured.
_stdlib_handler: Any = None


def _route_stdlib_warnings() -> None:
    import logging

    global _stdlib_handler
    if _stdlib_handler is None:

        class Forward(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                _stdlib_to_structlog(record)

        _stdlib_handler = Forward(logging.WARNING)
    root = logging.getLogger()
    if _stdlib_handler not in root.handlers:
        root.addHandler(_stdlib_handler)
    logging.captureWarnings(True)
