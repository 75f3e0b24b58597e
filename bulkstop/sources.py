"""The input readers: CSV, JSON and JSONL targets from a file or stdin, as :class:`InputRow`.

Open an input with :func:`open_source`; it runs every whole-file check and raises
:class:`~bulkstop.errors.InputError` before returning, so a run that cannot read its input has
sent nothing. Iterating the returned :class:`TargetSource` yields one :class:`InputRow` per row,
valid or not; nothing is silently dropped except blank lines. Deduplication is not done here.

Formats
    ``csv``    a header row, then one target per record (RFC 4180 quoting). Column names are
               matched case-insensitively after dropping ``_``, ``-`` and spaces: the job id
               column is ``job_id``/``jobid``/``job-id``/``job``/``task_id``/``taskid``; the build
               column is ``build_no``/``buildno``/``build-no``/``build_number``/``buildnumber``/
               ``build``/``number``. Other columns are ignored. A record whose fields are all
               empty (``,``) is an invalid row, not skipped.
    ``jsonl``  one JSON object per line (``.ndjson`` too); blank lines are skipped. The same
               key aliases apply. A line that is not JSON, or not an object, is an invalid row.
    ``json``   an array of objects, or an object whose ``targets`` member is that array.

Line numbers are 1-based physical lines of the file: the line a CSV record or JSONL object
starts on, and for JSON the line where each array element starts. Byte positions in messages
are 0-based offsets into the file (as ``xxd``/``od`` show them).

Encoding is UTF-8, with or without a BOM; line endings are LF or CRLF (a bare CR, old Mac
style, is reported, not guessed at). For a regular file a constant-memory pre-pass checks that
the whole file decodes, has no NUL byte and no line longer than :data:`MAX_LINE_BYTES`, so such
a file fails before any row is read; stdin redirected from a regular file is checked the same
way. When that pass also finds no ``"``, no CR and no line near csv's field limit, the CSV is
read by :mod:`csv` itself (every record is then one line); any other is followed line by
line. A pipe cannot be read twice: there, an undecodable or over-long line becomes an invalid
row and reading goes on. CSV and JSONL are streamed (memory does not grow with the file); JSON
is parsed whole, because the standard library cannot stream it.

``for row in source`` reads in the calling thread. ``async for row in source`` reads on a
thread of its own (:class:`ReadAhead`), handing each row to the event loop as soon as it is
read; on a pipe that read can be interrupted (:meth:`ReadAhead.stop_waiting`), so that a run
stopped early never waits for a writer that may not write again.

A CSV record that cannot be read as it stands is one invalid row naming its line and field, and
the records after it are read exactly as the CSV says: one with a field longer than
``csv.field_size_limit()`` bytes (128 KiB unless the application changed it), with a line
longer than :data:`MAX_LINE_BYTES` (pipes), with a bare CR, or spanning several lines (inside
quotes) for more than :data:`MAX_LINE_BYTES` in all. Such a record is read to its end without
being held, however far a quote left open carries it.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import io
import itertools
import json
import os
import re
import selectors
import stat
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar, cast, get_args

from bulkstop.errors import InputError
from bulkstop.log import get_logger
from bulkstop.models import InputRow

if TYPE_CHECKING:
    from _csv import Reader as _CsvReader

__all__ = [
    "MAX_LINE_BYTES",
    "InlineRows",
    "InputFormat",
    "ReadAhead",
    "TargetSource",
    "detect_format",
    "open_source",
]

log = get_logger(__name__)

T = TypeVar("T")

InputFormat = Literal["csv", "json", "jsonl"]

#: Longest accepted line of a CSV or JSONL input: the bytes before its ``\n`` (a CRLF line's
#: ``\r`` counts), and longest CSV record over several lines. The cap is what keeps memory flat
#: on a file that has no line breaks at all (or whose one quoted record never ends).
MAX_LINE_BYTES: Final = 1024 * 1024

STDIN_NAME: Final = "<stdin>"

_CHUNK_BYTES: Final = 1024 * 1024
#: Bytes :func:`_precheck` reads at a time. Each chunk is held twice while it is checked (the
#: bytes and what they decode to), so a run's peak memory holds this twice; 64 KiB costs a
#: read call per ~1,600 rows, and a 1 MiB chunk was the largest part of what a run of 100,000
#: rows held beyond one of 10,000.
_CHECK_BYTES: Final = 64 * 1024
#: Bytes asked of a pipe per read: what a Linux pipe holds.
_PIPE_BUFFER: Final = 64 * 1024
#: Rows read ahead of the event loop before the reading thread waits for it to catch up.
_READ_AHEAD: Final = 1024
#: Rows :class:`InlineRows` hands out between two turns of the event loop.
_INLINE_BATCH: Final = 256
#: How long :meth:`TargetSource.close` waits for its reading thread to notice it should stop.
_STOP_JOIN_SECONDS: Final = 1.0
_BOM: Final = codecs.BOM_UTF8
_FORMATS: Final[tuple[str, ...]] = get_args(InputFormat)
_FORMAT_NAMES: Final = {"csv": "csv", "json": "json", "jsonl": "jsonl", "ndjson": "jsonl"}
_EXTENSIONS: Final = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}

_JOB: Final = "job_id"
_BUILD: Final = "build_no"
#: Normalised column/key name -> field. Normalising lowercases and drops ``_``, ``-`` and spaces.
_ALIASES: Final = {
    "jobid": _JOB,
    "job": _JOB,
    "taskid": _JOB,
    "buildno": _BUILD,
    "buildnumber": _BUILD,
    "build": _BUILD,
    "number": _BUILD,
}
_ALIAS_HELP: Final = {
    _JOB: "job_id (or jobid, job-id, job, task_id, taskid)",
    _BUILD: "build_no (or buildno, build-no, build_number, buildnumber, build, number)",
}
_SEPARATORS: Final = re.compile(r"[_\-\s]+")
_JSON_WS: Final = re.compile(r"[ \t\n\r]*")


def _normalise(name: str) -> str:
    return _SEPARATORS.sub("", name.strip().lower())


def _display(path: str) -> str:
    """The name as shown in messages, escaped if it would break the one-line promise."""
    return path if path.isprintable() else repr(path)[1:-1]


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def detect_format(path: str, override: str | None) -> InputFormat:
    """Pick the input format: ``override`` when given, else the file extension.

    ``override`` is case-insensitive and accepts ``ndjson`` for ``jsonl``. Extensions ``.csv``,
    ``.json``, ``.jsonl`` and ``.ndjson`` are recognised (any case). ``"-"`` (stdin) has no
    extension, so it needs ``override``. Raises :class:`InputError` otherwise.
    """
    if override is not None:
        chosen = _FORMAT_NAMES.get(override.strip().lower())
        if chosen is None:
            raise InputError(
                f"unknown input format {override!r} (expected one of: {', '.join(_FORMATS)})"
            )
        return cast(InputFormat, chosen)
    if path == "-":
        raise InputError(f"{STDIN_NAME}: reading stdin needs --input-format (csv, json or jsonl)")
    by_extension = _EXTENSIONS.get(os.path.splitext(path)[1].lower())
    if by_extension is None:
        raise InputError(
            f"{_display(path)}: cannot tell the format from the file name "
            "(expected .csv, .json, .jsonl or .ndjson); use --input-format csv, json or jsonl"
        )
    return cast(InputFormat, by_extension)


class TargetSource:
    """An opened input. Construct with :func:`open_source`; iterate for :class:`InputRow`.

    ``for row in source`` reads in the calling thread. ``async for row in source`` reads an
    input that may wait (a pipe, a terminal, a stream that is not a regular file) on a thread
    of its own (a :class:`ReadAhead`), so that waiting for input never blocks the event loop
    and each row is handed over as soon as it is read; it reads an input that never waits (a
    regular file, or JSON, which is read whole when opened) on the event loop itself
    (:class:`InlineRows`, which says why). Use one or the other.

    Single pass: iterating again continues where the previous iteration stopped. Use it as a
    context manager, or call :meth:`close`, to close the file; a caller-provided stdin stream is
    left open. A read failure in the middle of the file raises :class:`InputError`.
    """

    __slots__ = ("_ahead", "_closed", "_owned", "_pipe", "_rows", "format", "name", "waits")

    #: the file name as given, or ``"<stdin>"``
    name: str
    format: InputFormat
    #: whether a read may wait for input (a pipe's, a terminal's); ``False`` for a regular
    #: file, and for JSON, whose rows are in memory once it is open
    waits: bool

    def __init__(
        self,
        name: str,
        format: InputFormat,
        rows: Iterator[InputRow],
        owned: IO[bytes] | None,
        pipe: _PipeReader | None = None,
        *,
        waits: bool = True,
    ) -> None:
        self.name = name
        self.format = format
        self._rows = rows
        self._owned = owned
        self._pipe = pipe
        self.waits = waits
        self._ahead: ReadAhead[InputRow] | None = None
        self._closed = False

    def __iter__(self) -> Iterator[InputRow]:
        return self

    def __next__(self) -> InputRow:
        if self._closed:
            raise StopIteration
        try:
            return next(self._rows)
        except OSError as exc:
            raise InputError(f"{self.name}: read failed: {exc.strerror or exc}") from exc

    def __aiter__(self) -> ReadAhead[InputRow] | InlineRows[InputRow]:
        if not self.waits:
            return InlineRows(self)
        if self._ahead is None:
            interrupt = None if self._pipe is None else self._pipe.interrupt
            self._ahead = ReadAhead(self, interrupt=interrupt)
        return self._ahead

    def close(self) -> None:
        """Stop reading and close the file if this source opened it. Idempotent.

        A reading thread is stopped first (at once on a pipe). One that does not stop within a
        second, a read of a caller's stream that cannot be interrupted, is left to end with the
        process, and the stream stays open for it.
        """
        if self._closed:
            return
        self._closed = True
        ahead = self._ahead
        if ahead is not None:
            ahead.stop()
            if not ahead.join(_STOP_JOIN_SECONDS):
                log.warning("sources.reader_left_running", source=self.name)
                return
        close_rows = getattr(self._rows, "close", None)
        if close_rows is not None:
            close_rows()
        if self._pipe is not None:
            self._pipe.close()
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> TargetSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<TargetSource {self.name!r} format={self.format} {state}>"


def open_source(
    path: str, fmt: str | None = None, *, stdin: IO[bytes] | None = None
) -> TargetSource:
    """Open ``path`` (``"-"`` for stdin) and run every whole-file check; rows are read lazily.

    ``fmt`` overrides the format taken from the extension and is required for stdin.
    ``stdin`` is the byte stream that ``"-"`` reads (default ``sys.stdin.buffer``); it is not
    closed. When it is a pipe (or a named pipe is opened), its file descriptor is read directly,
    so that a read waiting for the writer can be interrupted: whatever was already read into
    ``stdin``'s own buffer is not seen. Raises :class:`InputError` with a one-line message
    naming the file (and line when known) for: a missing path, a directory, no permission, an
    empty file, a CSV header without the two columns or with one of them twice, bytes that are
    not UTF-8, a NUL byte, an over-long line (regular files), JSON that does not parse, and a
    JSON top level that is not an array of targets.
    """
    fmt_ = detect_format(path, fmt)
    if path == "-":
        name = STDIN_NAME
        stream: IO[bytes] = stdin if stdin is not None else sys.stdin.buffer
        owned: IO[bytes] | None = None
    else:
        name = _display(path)
        stream = owned = _open_file(name, path)
    pipe: _PipeReader | None = None
    try:
        regular = _is_regular_file(stream)
        if fmt_ == "json":
            rows = _open_json(name, _read_all(name, stream))
        else:
            if not regular and (pipe := _PipeReader.open(stream)) is not None:
                stream = io.BufferedReader(pipe, buffer_size=_PIPE_BUFFER)
            if fmt_ == "csv":
                rows = _open_csv(name, stream, precheck=regular)
            else:
                rows = _open_jsonl(name, stream, precheck=regular)
    except OSError as exc:
        _close_all(pipe, owned)
        raise InputError(f"{name}: read failed: {exc.strerror or exc}") from exc
    except BaseException:
        _close_all(pipe, owned)
        raise
    log.debug("sources.opened", source=name, format=fmt_, regular_file=regular)
    return TargetSource(name, fmt_, rows, owned, pipe, waits=not regular and fmt_ != "json")


def _close_all(*streams: IO[bytes] | _PipeReader | None) -> None:
    for stream in streams:
        if stream is not None:
            stream.close()


def _is_regular_file(stream: IO[bytes]) -> bool:
    """Whether ``stream`` can be read twice: a regular file on disk, not a pipe or a buffer."""
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode) and stream.seekable()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return False


def _open_file(name: str, path: str) -> IO[bytes]:
    try:
        # Not a `with`: the TargetSource returned by open_source owns and closes it.
        return open(path, "rb")
    except FileNotFoundError as exc:
        raise InputError(f"{name}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{name}: is a directory, not a file") from exc
    except PermissionError as exc:
        raise InputError(f"{name}: permission denied") from exc
    except OSError as exc:
        raise InputError(f"{name}: cannot open: {exc.strerror or exc}") from exc


# --- reading without blocking the event loop -------------------------------------------------


class _Interrupted(Exception):
    """A read of a pipe was interrupted (:meth:`_PipeReader.interrupt`): the input ends here."""


class _PipeReader(io.RawIOBase):
    """The raw reads of a pipe (or terminal) that another thread can interrupt at once.

    Hand-written because nothing else can stop a thread blocked reading a pipe whose writer
    never writes again; and such a thread, blocked in ``sys.stdin.buffer`` when the interpreter
    exits, is a fatal error. Each read waits in a selector together with a wake-up pipe of its
    own; after :meth:`interrupt`, every read raises :class:`_Interrupted`. Bytes already
    buffered above it are still read.
    """

    def __init__(self, fd: int, selector: selectors.BaseSelector) -> None:
        super().__init__()
        self._fd = fd
        self._selector = selector
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        selector.register(self._wake_read, selectors.EVENT_READ)
        self.interrupted = False

    @classmethod
    def open(cls, stream: IO[bytes]) -> _PipeReader | None:
        """A reader of ``stream``'s file descriptor, or ``None`` where a selector cannot wait."""
        if os.name != "posix":  # select() waits on sockets only there
            return None
        try:
            fd = stream.fileno()
            mode = os.fstat(fd).st_mode
        except (OSError, ValueError):  # no file descriptor (a buffer): nothing to wait for
            return None
        if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)):
            return None
        selector = selectors.DefaultSelector()
        try:
            selector.register(fd, selectors.EVENT_READ)
        except (OSError, ValueError):  # e.g. /dev/null, which epoll refuses
            selector.close()
            return None
        return cls(fd, selector)

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def readinto(self, buffer: Any) -> int:
        while not self.interrupted:
            ready = self._selector.select()
            if self.interrupted:
                break
            if any(key.fd == self._fd for key, _ in ready):
                with contextlib.suppress(BlockingIOError):  # a non-blocking pipe, woken early
                    return os.readv(self._fd, [buffer])
        raise _Interrupted

    def interrupt(self) -> None:
        """Make the read under way, and every later one, raise :class:`_Interrupted`."""
        self.interrupted = True
        with contextlib.suppress(OSError):  # full (already woken) or closed
            os.write(self._wake_write, b"\0")

    def close(self) -> None:
        """Close the wake-up pipe; the file descriptor belongs to the stream it came from."""
        if not self.closed:
            self._selector.close()
            os.close(self._wake_read)
            os.close(self._wake_write)
        super().close()

    def __repr__(self) -> str:
        return f"<_PipeReader fd={self._fd} interrupted={self.interrupted}>"


def _set_result(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # a cancelled wait is done already
        waiter.set_result(None)


class InlineRows(Generic[T]):
    """An iterable that never waits for input (a regular file), read on the event loop.

    ``async for item in InlineRows(rows)`` takes each item in the event loop's own thread and
    lets other tasks run after every :data:`_INLINE_BATCH` items (a consumer that waits for
    each item, the engine's queue, gives way sooner).

    Why not a thread, as :class:`ReadAhead` reads a pipe: parsing a row holds the GIL, and
    every request in flight gives the GIL up for each of its system calls (send, receive, the
    journal's writes) and must take it back from a thread busy parsing, which keeps it up to
    the interpreter's switch interval (5 ms). Measured in the overhead benchmark, a file read
    on a thread cut a run's throughput by a tenth to a half, at the same CPU per request. A
    regular file's reads come from the page cache, or a disk, in microseconds to milliseconds
    each, of 1 MiB at most: the event loop waits that long at worst, where a pipe can wait for
    ever.
    """

    __slots__ = ("_error", "_rows", "_taken")

    def __init__(self, rows: Iterable[T]) -> None:
        self._rows = iter(rows)
        self._taken = 0
        self._error: Exception | None = None  # met by batch(), raised by its next call

    def __aiter__(self) -> InlineRows[T]:
        return self

    async def __anext__(self) -> T:
        self._taken += 1
        if self._taken % _INLINE_BATCH == 0:
            await asyncio.sleep(0)  # let the rest of the loop run
        try:
            return next(self._rows)
        except StopIteration:
            raise StopAsyncIteration from None

    async def batch(self) -> list[T]:
        """The next :data:`_INLINE_BATCH` items at most, in order; an empty list at the end.
        Other tasks run before each batch but the first. An exception of the iterable is
        raised by the call after the one that returns the items before it."""
        error = self._error
        if error is not None:
            self._error = None
            raise error
        if self._taken:
            await asyncio.sleep(0)  # let the rest of the loop run
        taken: list[T] = []
        append = taken.append
        try:
            for item in itertools.islice(self._rows, _INLINE_BATCH):
                append(item)
        except Exception as exc:
            if not taken:
                raise
            self._error = exc
        self._taken += len(taken)
        return taken

    def __repr__(self) -> str:
        return f"<InlineRows taken={self._taken}>"


class ReadAhead(Generic[T]):
    """An iterable read on a thread of its own and handed to the event loop as items arrive.

    ``async for item in ReadAhead(rows)``: the thread (started at the first ``__anext__``)
    appends each item to a queue the moment it is read, so a slow pipe's first row is at once
    available, while a fast file costs no thread hop per row: the event loop takes queued items
    without waiting and is woken only when it waits for one. At :data:`_READ_AHEAD` items
    queued, the thread waits until half of them are taken. An exception of the iterable is
    raised by ``__anext__`` once the items before it are taken.

    Hand-written rather than a thread per batch (``anyio.to_thread``): a batch is handed over
    only when full, so the first rows of a slow pipe waited for the rest, and a thread hop per
    row would cost more than reading the row.

    Args:
        rows: what to read; iterated in the thread only.
        interrupt: stops a read that waits for input (a pipe's); without it, a read under way
            always runs to its end.

    Attributes:
        done: the iterable is exhausted, failed or was stopped; what is queued still comes out.
        queued: items read and not yet taken.
        parked: the thread waits for the event loop to take some of the queued items.
    """

    __slots__ = (
        "_error",
        "_interrupt",
        "_items",
        "_lock",
        "_loop",
        "_parked",
        "_rows",
        "_space",
        "_stopped",
        "_thread",
        "_waiter",
        "done",
    )

    def __init__(self, rows: Iterable[T], *, interrupt: Callable[[], None] | None = None) -> None:
        self._rows = rows
        self._interrupt = interrupt
        self._items: deque[T] = deque()
        self._lock = threading.Lock()  # guards _waiter, which both threads change
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._space = threading.Event()
        self._parked = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.done = False

    @property
    def queued(self) -> int:
        return len(self._items)

    @property
    def parked(self) -> bool:
        return self._parked

    def __aiter__(self) -> ReadAhead[T]:
        return self

    async def __anext__(self) -> T:
        items = self._items
        while True:
            if items:
                item = items.popleft()
                if self._parked and len(items) <= _READ_AHEAD // 2:
                    self._space.set()
                return item
            if self.done:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            await self._wait()

    async def batch(self) -> list[T]:
        """Every item queued, in order, waiting for the first when there is none; an empty
        list once the reading is done and every item was taken, or the iterable's exception
        then (as ``__anext__`` raises it). What ``async for`` gives one by one, without a step
        of the iteration per item."""
        items = self._items
        while not items:
            if self.done:
                if items:  # the last items, queued just before the reading was done
                    break
                if self._error is not None:
                    raise self._error
                return []
            await self._wait()
        # the thread only appends: the items counted now are there to take
        taken = [items.popleft() for _ in range(len(items))]
        if self._parked:
            self._space.set()
        return taken

    async def _wait(self) -> None:
        """Wait until an item is queued or the reading is done."""
        loop = asyncio.get_running_loop()
        if self._thread is None:
            if self._stopped:  # stopped before it started
                self.done = True
                return
            self._loop = loop
            self._thread = threading.Thread(target=self._read, name="bulkstop-input", daemon=True)
            self._thread.start()
        waiter = loop.create_future()
        with self._lock:
            self._waiter = waiter
        try:
            if not self._items and not self.done:  # checked after publishing the waiter
                await waiter
        finally:
            with self._lock:
                if self._waiter is waiter:
                    self._waiter = None

    def _read(self) -> None:
        """The thread: queue every item; wake the event loop only when it waits."""
        items = self._items
        try:
            for item in self._rows:
                items.append(item)
                if self._waiter is not None:
                    self._wake()
                if len(items) >= _READ_AHEAD:
                    self._park()
                if self._stopped:
                    break
        except _Interrupted:
            pass
        except Exception as exc:  # noqa: BLE001 - any: raised in the event loop instead
            self._error = exc
        finally:
            self.done = True
            self._wake()

    def _park(self) -> None:
        self._space.clear()
        self._parked = True
        if len(self._items) >= _READ_AHEAD and not self._stopped:  # checked after publishing
            self._space.wait()
        self._parked = False

    def _wake(self) -> None:
        with self._lock:
            waiter, self._waiter = self._waiter, None
        if waiter is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits now
                self._loop.call_soon_threadsafe(_set_result, waiter)

    def stop_waiting(self) -> None:
        """Read no more of an input that may make a read wait (a pipe): end with what was read.

        The items already read, and those already in a buffer, still come out. An iterable
        without an ``interrupt`` (a file, a list, a generator) is read on to its end.
        """
        if self._interrupt is not None:
            self._interrupt()

    def stop(self) -> None:
        """Read no further: the thread ends after the item it is reading (a pipe's at once)."""
        self._stopped = True
        self._space.set()
        self.stop_waiting()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end; whether it has (or never ran)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __repr__(self) -> str:
        state = "done" if self.done else "stopped" if self._stopped else "reading"
        return f"<ReadAhead {state} queued={len(self._items)} parked={self._parked}>"


# --- encoding checks ---------------------------------------------------------------------------


class _TextCheck:
    """Constant-memory check, chunk by chunk, that bytes are text bulkstop can read.

    Finds the first of: a byte sequence that is not UTF-8, a NUL byte, and (when ``max_line`` is
    set) a line longer than ``max_line`` bytes. :meth:`feed` returns ``(line, problem)``.
    """

    __slots__ = ("_decoder", "_line", "_line_len", "_max_line", "_offset")

    def __init__(self, max_line: int | None) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._max_line = max_line
        self._offset = 0  # bytes fed before the current chunk
        self._line = 1  # line number at _offset
        self._line_len = 0  # bytes of the current line before _offset

    def feed(self, chunk: bytes, final: bool = False) -> tuple[int, str] | None:
        pending = len(self._decoder.getstate()[0])
        problem: tuple[int, str] | None = None
        nul = chunk.find(b"\0")
        try:
            self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            at = exc.start - pending  # may be < 0: the bad sequence began in the previous chunk
            if nul == -1 or at < nul:
                line = self._line + (chunk.count(b"\n", 0, at) if at > 0 else 0)
                problem = (line, f"not valid UTF-8 at byte {self._offset + at}")
        if problem is None and nul != -1:
            line = self._line + chunk.count(b"\n", 0, nul)
            problem = (line, f"contains a NUL byte at byte {self._offset + nul} (not a text file)")
        if problem is None and self._max_line is not None:
            problem = self._long_line(chunk)
        self._offset += len(chunk)
        self._line += chunk.count(b"\n")
        return problem

    def _long_line(self, chunk: bytes) -> tuple[int, str] | None:
        # Line lengths by searching for line breaks, not by splitting: a split makes one bytes
        # object per line of the chunk, which was the peak of a whole run's memory.
        limit = self._max_line
        assert limit is not None
        last_break = chunk.rfind(b"\n")
        if self._line_len + len(chunk) <= limit:  # no line can be too long: nothing to find
            self._line_len = (
                len(chunk) - last_break - 1 if last_break >= 0 else (self._line_len + len(chunk))
            )
            return None
        start, carried, index = 0, self._line_len, 0
        while True:
            end = chunk.find(b"\n", start)
            length = (len(chunk) if end < 0 else end) - start + carried
            if length > limit:
                return (self._line + index, f"line is longer than {limit} bytes")
            if end < 0:
                self._line_len = length
                return None
            start, carried, index = end + 1, 0, index + 1


class _PlainCsv:
    """Whether a CSV file needs none of :class:`_Lines`' care, judged chunk by chunk.

    It does not when it holds no ``"`` and no CR at all (so every record is one line, and no
    bare CR can end one) and no line of ``limit`` bytes or more (so no field can reach csv's
    field limit): after the pre-pass has also found it UTF-8 without a NUL, nothing a record
    can do needs following, and :mod:`csv` can read the file itself.
    """

    __slots__ = ("_limit", "_line_len", "plain")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._line_len = 0  # bytes of the current line in the chunks fed so far
        self.plain = True

    def feed(self, chunk: bytes) -> None:
        if not self.plain:
            return
        if 34 in chunk or 13 in chunk:  # '"' or CR: a search for one byte each
            self.plain = False
            return
        limit = self._limit
        if self._line_len + len(chunk) < limit:  # no line can reach the limit in this chunk
            last_break = chunk.rfind(b"\n")
            self._line_len = (
                len(chunk) - last_break - 1 if last_break >= 0 else self._line_len + len(chunk)
            )
            return
        start, carried = 0, self._line_len
        while True:
            end = chunk.find(b"\n", start)
            length = (len(chunk) if end < 0 else end + 1) - start + carried
            if length >= limit:
                self.plain = False
                return
            if end < 0:
                self._line_len = length
                return
            start, carried = end + 1, 0


def _precheck(name: str, stream: IO[bytes], plain: _PlainCsv | None = None) -> None:
    """Read a regular file once to fail early on undecodable bytes, then rewind it; ``plain``
    is fed every chunk too."""
    start = stream.tell()
    check = _TextCheck(MAX_LINE_BYTES)
    while chunk := stream.read(_CHECK_BYTES):
        if problem := check.feed(chunk):
            raise InputError(f"{name}:{problem[0]}: {problem[1]}")
        if plain is not None:
            plain.feed(chunk)
    if problem := check.feed(b"", final=True):
        raise InputError(f"{name}:{problem[0]}: {problem[1]}")
    stream.seek(start)


def _read_all(name: str, stream: IO[bytes]) -> str:
    data = stream.read()
    problem = _TextCheck(None).feed(data, final=True)
    if problem is not None:
        raise InputError(f"{name}:{problem[0]}: {problem[1]}")
    return data.removeprefix(_BOM).decode("utf-8")


class _Lines:
    """Physical lines of a byte stream, decoded one at a time; problems are noted, not raised.

    Iterating yields text lines with their line endings (what :mod:`csv` wants). A line that is
    not UTF-8, holds a NUL byte or is longer than :data:`MAX_LINE_BYTES` is still yielded (with
    replacement characters, or empty when too long) so that line numbering stays true, and its
    problem is queued in :attr:`problems` for the reader to turn into an invalid row.

    Given a :class:`_RecordScan` (CSV), the lines also follow the input's quoting, so that they
    know where each record ends. A record :mod:`csv` must not be handed (a field longer than the
    scan's limit, a line longer than :data:`MAX_LINE_BYTES`, a bare CR) is read to its end without
    being held, and :class:`_BadRecord` is raised in place of its next line; reading can go on
    with the next record.
    """

    __slots__ = ("_open", "_record_bytes", "_scan", "_stream", "number", "problems")

    def __init__(self, stream: IO[bytes], scan: _RecordScan | None = None) -> None:
        self._stream = stream
        self._scan = scan
        self._open = False  # the record goes on past the last line read (an open quoted field)
        self._record_bytes = 0  # of the current record, counted while it spans several lines
        self.number = 0  # lines read so far
        self.problems: deque[tuple[int, str]] = deque()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self._stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            raise StopIteration
        self.number += 1
        long = len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n")
        if self.number == 1:
            raw = raw.removeprefix(_BOM)
        if self._scan is not None and (
            self._open
            or long
            or len(raw) > self._scan.limit
            # A line with no quote and no CR but its CRLF ending is a whole record as it is (the
            # common case, kept cheap: an int in bytes is a memchr); a line with either is one
            # when the pattern matches it all.
            or (
                (34 in raw or (13 in raw and (raw.find(13) != len(raw) - 2 or raw[-1] != 10)))
                and _ONE_LINE_RECORD.fullmatch(raw) is None
            )
        ):
            self._follow(raw, long)
        elif long:
            # Skip the rest of the line without holding it.
            while (more := self._stream.readline(_CHUNK_BYTES)) and not more.endswith(b"\n"):
                pass
            self.problems.append((self.number, f"line is longer than {MAX_LINE_BYTES} bytes"))
            return "\n"
        if b"\0" in raw:
            self.problems.append((self.number, "contains a NUL byte (not a text file)"))
            raw = raw.replace(b"\0", b"")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.problems.append((self.number, "not valid UTF-8"))
            return raw.decode("utf-8", "replace")

    def _follow(self, raw: bytes, long: bool) -> None:
        """Follow a CSV line that may not be a whole record; raise :class:`_BadRecord` if bad."""
        scan = self._scan
        assert scan is not None
        if not self._open:
            scan.start(self.number)
            self._record_bytes = 0
        self._record_bytes += len(raw)
        scan.feed(raw, self.number)
        if long:
            scan.note(self.number, f"line is longer than {MAX_LINE_BYTES} bytes")
            self._finish_line()
        elif self._record_bytes > MAX_LINE_BYTES:  # many lines of short fields, held by csv
            scan.note(scan.record_line, f"record is longer than {MAX_LINE_BYTES} bytes")
        self._open = scan.goes_on()
        if scan.problem is not None:
            line, text = scan.problem
            self.skip_record()
            raise _BadRecord(line, text)

    def _finish_line(self) -> None:
        """Read the rest of an over-long physical line through the scan, a chunk at a time."""
        assert self._scan is not None
        while more := self._stream.readline(_CHUNK_BYTES):
            self._scan.feed(more, self.number)
            if more.endswith(b"\n"):
                return

    def skip_record(self) -> None:
        """Read on, without holding anything, to the end of the record the last line began."""
        scan = self._scan
        assert scan is not None
        while self._open:
            raw = self._stream.readline(_CHUNK_BYTES)
            if not raw:
                break
            self.number += 1
            scan.feed(raw, self.number)
            if not raw.endswith(b"\n"):
                self._finish_line()
            self._open = scan.goes_on()
        self._open = False

    def problem_upto(self, start: int, end: int) -> str | None:
        """Pop the problems of lines ≤ ``end``; describe the first, relative to ``start``."""
        first: str | None = None
        while self.problems and self.problems[0][0] <= end:
            line, text = self.problems.popleft()
            if first is None:
                first = text if line == start else f"line {line}: {text}"
        return first


# --- CSV records -------------------------------------------------------------------------------
#
# Hand-written because the csv module cannot do two things: after an error it starts the next
# record on the next physical line, even when that line is the middle of the quoted field that
# failed (the rows after it were then misread or swallowed); and it holds a whole record,
# however many lines it spans. So bulkstop follows the quoting itself, the way csv's default
# ("excel") dialect reads it, only far enough to know where each record ends and how long its
# fields are; csv still splits and unquotes every record it is given.

_QUOTE: Final = ord('"')
_COMMA: Final = ord(",")
_LINE_BREAKS: Final = (ord("\r"), ord("\n"))
# The states of csv's reader (Modules/_csv.c) that matter for where fields and records end.
_AT_FIELD, _UNQUOTED, _QUOTED, _AFTER_QUOTE, _AT_LINE_END = range(5)
_FIELD_END: Final = re.compile(rb"[,\r\n]")
_NOT_LINE_BREAK: Final = re.compile(rb"[^\r\n]")
# A field: quoted and closed on this line (then, as the lenient dialect reads it, anything up to
# the next comma joins it), or unquoted, or empty.
_ONE_FIELD: Final = rb'(?:"(?:[^"]++|"")*+"[^,\r\n]*+|[^",\r\n][^,\r\n]*+|)'
#: A whole record on one line, with no bare CR.
_ONE_LINE_RECORD: Final = re.compile(_ONE_FIELD + rb"(?:," + _ONE_FIELD + rb")*+\r?\n?")
_BARE_CR: Final = "not valid CSV: a bare carriage return (\\r) ends a line; use LF or CRLF endings"


class _BadRecord(Exception):
    """A CSV record that is read past instead of parsed; ``line`` is where its problem is."""

    def __init__(self, line: int, text: str) -> None:
        super().__init__(text)
        self.line = line
        self.text = text


class _RecordScan:
    """Follows one CSV record through its bytes: where its fields and the record itself end.

    Pure: it is fed bytes with their line numbers and reads nothing itself. It notes the first
    problem csv would choke on: a field longer than ``limit`` bytes (a doubled quote counts
    once, the enclosing quotes not at all, so for ASCII this is csv's own count) or a bare CR
    outside quotes.

    Attributes:
        limit: the longest field accepted, in bytes (csv's ``field_size_limit``).
        columns: the header's column names, to name a field in messages.
        record_line: the line the current record starts on.
        problem: ``(line, message)`` of the first problem of the current record, or ``None``.
    """

    __slots__ = (
        "_field",
        "_field_bytes",
        "_field_line",
        "_state",
        "columns",
        "limit",
        "problem",
        "record_line",
    )

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.columns: list[str] = []
        self.start(1)

    def start(self, line: int) -> None:
        """A new record begins on ``line``."""
        self._state = _AT_FIELD
        self._field = 0
        self._field_bytes = 0
        self._field_line = line
        self.record_line = line
        self.problem: tuple[int, str] | None = None

    def goes_on(self) -> bool:
        """At the end of a physical line: whether the record goes on (a quoted field is open)."""
        return self._state == _QUOTED

    def note(self, line: int, text: str) -> None:
        if self.problem is None:
            self.problem = (line, text)

    def feed(self, data: bytes, line: int) -> None:
        """Follow ``data``, the next bytes of physical line ``line``."""
        pos, end, state = 0, len(data), self._state
        while pos < end:
            if state == _QUOTED:
                quote = data.find(b'"', pos)
                if quote < 0:
                    self._grow(end - pos)
                    break
                self._grow(quote - pos)
                pos, state = quote + 1, _AFTER_QUOTE
            elif state == _UNQUOTED:
                match = _FIELD_END.search(data, pos)
                if match is None:
                    self._grow(end - pos)
                    break
                stop = match.start()
                self._grow(stop - pos)
                if data[stop] == _COMMA:
                    self._next_field(line)
                    state = _AT_FIELD
                else:
                    state = _AT_LINE_END
                pos = stop + 1
            elif state == _AT_FIELD:
                if data[pos] == _QUOTE:
                    pos, state = pos + 1, _QUOTED
                else:
                    state = _UNQUOTED
            elif state == _AFTER_QUOTE:
                byte = data[pos]
                if byte == _QUOTE:  # a doubled quote: one quote in the field
                    self._grow(1)
                    pos, state = pos + 1, _QUOTED
                elif byte == _COMMA:
                    self._next_field(line)
                    pos, state = pos + 1, _AT_FIELD
                elif byte in _LINE_BREAKS:
                    pos, state = pos + 1, _AT_LINE_END
                else:  # the lenient dialect: what follows the closing quote joins the field
                    state = _UNQUOTED
            else:  # _AT_LINE_END: only more line breaks may follow on this line
                if _NOT_LINE_BREAK.search(data, pos):
                    self.note(line, _BARE_CR)  # csv gives up on the rest of the line
                break
        self._state = state

    def _grow(self, count: int) -> None:
        self._field_bytes += count
        if self._field_bytes > self.limit and self.problem is None:
            index = self._field
            name = f" ({self.columns[index][:40]!r})" if index < len(self.columns) else ""
            self.problem = (
                self._field_line,
                f"field {index + 1}{name} is longer than {self.limit} bytes",
            )

    def _next_field(self, line: int) -> None:
        self._field += 1
        self._field_bytes = 0
        self._field_line = line

    def __repr__(self) -> str:
        return (
            f"<_RecordScan record_line={self.record_line} field={self._field + 1} "
            f"state={self._state} problem={self.problem!r}>"
        )


# --- building rows -----------------------------------------------------------------------------


def _row(line: int, job_id: Any, build_no: Any) -> InputRow:
    return InputRow.from_values(line, job_id, build_no)


def _row_from_object(line: int, obj: dict[str, Any]) -> InputRow:
    keys: dict[str, str] = {}
    for key in obj:
        field = _ALIASES.get(_normalise(key))
        if field is None:
            continue
        if field in keys:
            return InputRow.invalid(line, f"keys {keys[field]!r} and {key!r} both name {field}")
        keys[field] = key
    job_key, build_key = keys.get(_JOB), keys.get(_BUILD)
    return _row(
        line,
        None if job_key is None else obj[job_key],
        None if build_key is None else obj[build_key],
    )


# --- CSV ---------------------------------------------------------------------------------------


def _header_columns(name: str, line: int, header: list[str]) -> tuple[int, int]:
    found: dict[str, int] = {}
    for index, column in enumerate(header):
        field = _ALIASES.get(_normalise(column))
        if field is None:
            continue
        if field in found:
            raise InputError(
                f"{name}:{line}: columns {header[found[field]]!r} and {column!r} both name "
                f"{field}; keep one"
            )
        found[field] = index
    missing = [field for field in (_JOB, _BUILD) if field not in found]
    if missing:
        shown = ", ".join(repr(c[:40]) for c in header[:10]) + (", ..." if len(header) > 10 else "")
        raise InputError(
            f"{name}:{line}: the header has no {' or '.join(missing)} column (found {shown}); "
            f"expected {' and '.join(_ALIAS_HELP[f] for f in missing)}"
        )
    return found[_JOB], found[_BUILD]


def _open_csv(name: str, stream: IO[bytes], *, precheck: bool) -> Iterator[InputRow]:
    """Read the header now (errors are whole-file errors); return the lazy row iterator."""
    if precheck:
        start = stream.tell()
        plain = _PlainCsv(csv.field_size_limit())
        _precheck(name, stream, plain)
        if plain.plain:
            return _open_plain_csv(name, stream, start)
    scan = _RecordScan(csv.field_size_limit())
    lines = _Lines(stream, scan)
    reader = csv.reader(lines)
    while True:
        start = lines.number + 1
        try:
            header = next(reader)
        except StopIteration:
            raise _no_csv_header(name) from None
        except _BadRecord as bad:
            raise InputError(f"{name}:{start}: {_bad_record(bad, start, lines.number)}") from None
        except csv.Error as exc:
            raise InputError(f"{name}:{start}: not valid CSV: {exc}") from exc
        if problem := lines.problem_upto(start, lines.number):
            raise InputError(f"{name}:{start}: {problem}")
        if header:
            break
    job_col, build_col = _header_columns(name, start, header)
    scan.columns = header
    return _csv_rows(lines, job_col, build_col)


def _no_csv_header(name: str) -> InputError:
    """A CSV input that holds no header row: the same words whichever way it was read."""
    expected = f"a header row with {_JOB} and {_BUILD} columns"
    return InputError(f"{name}: empty file (expected {expected})")


def _open_plain_csv(name: str, stream: IO[bytes], start: int) -> Iterator[InputRow]:
    """:func:`_open_csv` for a regular file :class:`_PlainCsv` passed: csv reads the file.

    Hand-written lines (:class:`_Lines`) cost a Python call per line, a third of what reading
    a row cost, to follow quoting that such a file does not have. The file is read through a
    file object of its own on the same descriptor that never closes it (``closefd=False``):
    ``stream`` stays the source's to close, and the row iterator can be dropped unread.
    """
    raw = open(stream.fileno(), "rb", closefd=False)  # noqa: SIM115 (the row iterator closes it)
    raw.seek(start)
    # utf-8-sig: a BOM before the header is not part of its first column
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        for header in reader:
            if header:
                break
        else:
            raise _no_csv_header(name)
        job_col, build_col = _header_columns(name, reader.line_num, header)
    except csv.Error as exc:  # only if field_size_limit() was lowered since the pre-pass
        text.close()
        raise InputError(f"{name}:{reader.line_num}: not valid CSV: {exc}") from exc
    except BaseException:
        text.close()
        raise
    return _plain_csv_rows(text, reader, job_col, build_col)


def _plain_csv_rows(
    text: io.TextIOWrapper, reader: _CsvReader, job_col: int, build_col: int
) -> Iterator[InputRow]:
    # Every record is one line: its line number is the lines the readers have read.
    base = 0  # lines read by the readers before this one
    from_values = InputRow.from_values  # _row, without its call per row
    try:
        while True:
            try:
                for record in reader:
                    if record:  # csv yields [] for a blank line
                        line = base + reader.line_num
                        job_id = record[job_col] if job_col < len(record) else None
                        build_no = record[build_col] if build_col < len(record) else None
                        yield from_values(line, job_id, build_no)
                return
            except csv.Error as exc:  # only if field_size_limit() was lowered since the file
                base += reader.line_num  # opened; the record was one line, read past
                yield InputRow.invalid(base, f"not valid CSV: {exc}")
                reader = csv.reader(text)
    finally:
        text.close()


def _bad_record(bad: _BadRecord, start: int, end: int) -> str:
    """The message for a record that was read past: its problem, and the lines it took."""
    text = bad.text if bad.line == start else f"line {bad.line}: {bad.text}"
    if end > start:
        text += f" (the record spans lines {start}-{end})"
    return text


def _csv_rows(lines: _Lines, job_col: int, build_col: int) -> Iterator[InputRow]:
    # A new reader after a record that failed: csv's reader keeps nothing between records, and
    # a fresh one cannot carry over any state from the failure.
    reader = csv.reader(lines)
    while True:
        start = lines.number + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except _BadRecord as bad:
            lines.problem_upto(start, lines.number)
            yield InputRow.invalid(start, _bad_record(bad, start, lines.number))
            reader = csv.reader(lines)
            continue
        except csv.Error as exc:  # only if field_size_limit() was lowered since the file opened
            lines.skip_record()
            lines.problem_upto(start, lines.number)
            yield InputRow.invalid(start, f"not valid CSV: {exc}")
            reader = csv.reader(lines)
            continue
        job_id = record[job_col] if job_col < len(record) else None
        build_no = record[build_col] if build_col < len(record) else None
        if problem := lines.problem_upto(start, lines.number):
            yield InputRow.invalid(start, problem, job_id or "", build_no or "")
        elif record:  # csv yields [] for a blank line
            yield _row(start, job_id, build_no)


# --- JSONL -------------------------------------------------------------------------------------


def _open_jsonl(name: str, stream: IO[bytes], *, precheck: bool) -> Iterator[InputRow]:
    """Find the first non-blank line now (an input with none is an error); return the rows."""
    if precheck:
        _precheck(name, stream)
    lines = _Lines(stream)
    for text in lines:
        if text.strip() or lines.problems:
            return _jsonl_rows(lines, lines.number, text)
    raise InputError(f"{name}: empty file (expected one JSON object per line)")


def _jsonl_rows(lines: _Lines, first_line: int, first_text: str) -> Iterator[InputRow]:
    yield _jsonl_row(lines, first_line, first_text)
    for text in lines:
        if text.strip() or lines.problems:
            yield _jsonl_row(lines, lines.number, text)


def _jsonl_row(lines: _Lines, line: int, text: str) -> InputRow:
    if problem := lines.problem_upto(line, line):
        return InputRow.invalid(line, problem)
    try:
        # Without its line ending, so that a column at the end of the line points at it.
        value = json.loads(text.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        return InputRow.invalid(line, f"not valid JSON: {exc.msg} at column {exc.colno}")
    except (ValueError, RecursionError) as exc:
        # ValueError: an integer beyond the int-string limit; RecursionError: absurd nesting.
        return InputRow.invalid(line, f"not valid JSON: {_one_line(exc)}")
    if not isinstance(value, dict):
        return InputRow.invalid(line, f"expected an object, got {_json_kind(value)}")
    return _row_from_object(line, value)


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


# --- JSON --------------------------------------------------------------------------------------

_DECODER: Final = json.JSONDecoder()


def _skip_ws(text: str, pos: int) -> int:
    match = _JSON_WS.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _array_items(text: str, pos: int) -> list[tuple[int, Any]]:
    """Decode the (already validated) array at ``text[pos] == '['`` into (offset, element)."""
    items: list[tuple[int, Any]] = []
    pos = _skip_ws(text, pos + 1)
    if text[pos] == "]":
        return items
    while True:
        value, end = _DECODER.raw_decode(text, pos)
        items.append((pos, value))
        pos = _skip_ws(text, end)
        if text[pos] == "]":
            return items
        pos = _skip_ws(text, pos + 1)  # past the comma


def _targets_offset(text: str, pos: int) -> int:
    """Offset of the ``targets`` value in the (validated) object at ``text[pos] == '{'``.

    The last ``targets`` member wins, as in :func:`json.loads`.
    """
    found = -1
    pos = _skip_ws(text, pos + 1)
    while text[pos] != "}":
        key, end = _DECODER.raw_decode(text, pos)
        pos = _skip_ws(text, _skip_ws(text, end) + 1)  # past the colon
        if key == "targets":
            found = pos
        _, end = _DECODER.raw_decode(text, pos)
        pos = _skip_ws(text, end)
        if text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
    return found


def _open_json(name: str, text: str) -> Iterator[InputRow]:
    """Parse the whole document now (the stdlib cannot stream JSON); return the rows.

    Each element's line is the file line where it starts, found by walking the array with
    :meth:`json.JSONDecoder.raw_decode` after :func:`json.loads` has validated the text.
    """
    if not text.strip():
        raise InputError(f"{name}: empty file (expected a JSON array of targets)")
    expected = 'expected a JSON array of targets or an object with a "targets" array'
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{name}: not valid JSON: {_one_line(exc)}") from exc
    start = _skip_ws(text, 0)
    if isinstance(document, dict):
        if "targets" not in document:
            raise InputError(f'{name}: {expected}, got an object without "targets"')
        if not isinstance(document["targets"], list):
            kind = _json_kind(document["targets"])
            raise InputError(f'{name}: "targets" must be an array, got {kind}')
        start = _targets_offset(text, start)
    elif not isinstance(document, list):
        raise InputError(f"{name}: {expected}, got {_json_kind(document)}")
    return _json_rows(text, _array_items(text, start))


def _json_rows(text: str, items: Iterable[tuple[int, Any]]) -> Iterator[InputRow]:
    line, counted = 1, 0
    for offset, element in items:
        line += text.count("\n", counted, offset)
        counted = offset
        if isinstance(element, dict):
            yield _row_from_object(line, element)
        else:
            yield InputRow.invalid(line, f"expected an object, got {_json_kind(element)}")
