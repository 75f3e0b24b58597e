"""Writing a report as the run goes: the journal of records and in-flight markers.

What a SIGKILL can cost
    An in-flight marker reaches the OS before :meth:`ReportWriter.attempting` (or
    :meth:`~ReportWriter.attempting_many`) returns, so before the stop it announces can be
    sent. The engine announces targets in batches, the one about to be sent with up to 15
    queued behind it: a process killed meanwhile can also leave markers of targets that were
    never sent, and ``--resume`` sends those as ones that may have been stopped already (a
    "not stopped" answer ends them ``uncertain``). Records are handed to the OS in small batches:
    within :data:`FLUSH_INTERVAL` (5 ms) of being written, or once :data:`FLUSH_EVERY` (64)
    wait, whichever comes first (and at once when no event loop runs). A process killed
    meanwhile loses the records of its last few milliseconds, never a marker. A target whose
    record was lost has its marker, so ``--resume`` sends it again as one that may have been
    stopped already: a "not stopped" answer then ends it ``uncertain``, which is the truth of
    it, rather than ``not_stopped``. The delay is bounded by the event loop: a loop blocked
    for longer delays the flush as long, and the next record written flushes them all.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Final

from bulkstop.errors import UsageError
from bulkstop.log import get_logger
from bulkstop.models import REPORT_FIELDS, Result
from bulkstop.report.encoding import LineEncoder
from bulkstop.report.files import (
    check_report_path,
    fsync_dir,
    open_own,
    refuse_unsafe,
    remove_stale_temps,
)
from bulkstop.report.keys import record_key
from bulkstop.report.lock import ReportLock
from bulkstop.report.markers import MarkerReader, marker_lines
from bulkstop.report.paths import ReportFormat, inflight_path, report_format

if TYPE_CHECKING:
    from bulkstop.report.carried import CarriedRecords

# What only a resumed report needs (its index, its compaction) is imported where it is used:
# a new report's run never loads it.

__all__ = ["ReportWriter"]

log = get_logger(__name__)

#: ``call_later(delay, callback)``: runs ``callback`` about ``delay`` seconds later.
CallLater = Callable[[float, Callable[[], None]], object]
#: At most this many records wait in memory for the OS, by default...
FLUSH_EVERY: Final = 64
#: ...and for at most this many seconds (5 ms).
FLUSH_INTERVAL: Final = 0.005
#: Both files are fsynced once this many lines were written since the last fsync, or else
#: once a second: a run at 10,000 stops a second writes about 20,000 lines (records and
#: markers), so the second is what usually decides. An fsync here takes about half a
#: millisecond with the event loop waiting, so one per 1,000 lines cost 1 % of a fast run.
FSYNC_EVERY: Final = 20_000


class ReportWriter:
    """Appends report records and in-flight markers as a run goes, crash-safe; see the module.

    Each :meth:`write` appends one line. The lines reach the OS in batches, within
    ``flush_interval`` seconds of the first of them (a timer on the running event loop, or
    ``call_later``; on ``now``, checked at each write) or once ``flush_every`` wait, and at
    once when no event loop runs; each :meth:`attempting` marker reaches it at once (see the
    module for what a SIGKILL can cost). Both files are fsynced when ``fsync_every`` lines
    (records and markers) have been written since the last fsync, or when a line is written
    ``fsync_interval`` seconds or more after the last fsync (on ``now``), and at
    :meth:`flush`, :meth:`close` and :meth:`finalize`. A quiet writer is not fsynced until its
    next line; the OS writes its data back meanwhile.

    Writing is synchronous, called from the event loop, and that is deliberate: a batch of
    records is a small append that lands in the page cache in microseconds, and the one slow
    call, fsync, runs at most about once a second. A worker thread per record would cost more
    than the write itself and would need a lock to keep lines whole and in order.

    The writer holds the report's :class:`ReportLock` while it is open: ``lock`` is one the
    caller acquired (and releases) itself, to hold it from before the report was read;
    without one the writer acquires its own and releases it when it closes or finalizes.
    Before writing anything it removes the temporary files an interrupted compaction left
    (:func:`~bulkstop.report.files.remove_stale_temps`). Every file it creates is 0600, and
    it opens none through a symbolic link: a report path or sidecar that is a link raises
    :class:`UsageError`.

    ``append=False`` starts a report: a missing or empty file, or any file with
    ``overwrite=True``, which is replaced by a new file; an existing non-empty one raises
    :class:`UsageError`. A stale sidecar is removed. ``append=True`` continues one (a
    resume): a torn last line is cut away first so the next record starts on a line of its
    own, a JSON report's closing ``]`` is reopened, a CSV report with other columns (another
    bulkstop version) is first rewritten with this version's, and :meth:`finalize` compacts.
    The file is read once to find where its good content ends (not again when ``carried``
    comes from the resume that read it, see :func:`~bulkstop.report.open_resume`); it raises
    like :func:`load_report` on a bad file.

    :meth:`write` stamps this writer's ``run`` on every record, except the records a resume
    carries over (``carried``, handed out by the engine in place of a target it does not send):
    the report holds those already, and :meth:`write` leaves them there; :meth:`finalize`
    keeps them in place, and writes one that the input moved to another line with that line
    (and its own run).

    An ``OSError`` while writing (a full disk) propagates unchanged, from the call that
    flushed, or when the timer flushed, from the writer's next call; what is on disk remains
    a readable journal. Records are encoded when they are flushed, a batch at a time: a record
    that cannot be encoded (a value of a foreign type whose ``str()`` raises) is left out and
    its error propagates the same way, after the others of its batch were written. Opening
    maps ``OSError`` to :class:`UsageError`.

    As a context manager: a clean exit finalizes, an exception only closes (the report stays
    a journal that ``--resume`` can continue, and the sidecar is kept). Calling
    :meth:`finalize` inside the block is fine: the exit then has nothing left to do.
    """

    __slots__ = (
        "_appended_from",
        "_call_later",
        "_closed",
        "_compact_needed",
        "_encoder",
        "_failure",
        "_file",
        "_finalized",
        "_flush_every",
        "_flush_interval",
        "_fsync_every",
        "_fsync_interval",
        "_index",
        "_last_sync",
        "_now",
        "_own_lock",
        "_pending_since",
        "_report_dirty",
        "_sidecar",
        "_sidecar_dirty",
        "_timer_set",
        "_unsynced",
        "_unwritten",
        "_written",
        "format",
        "path",
        "run",
    )

    #: the report file
    path: Path
    format: ReportFormat
    #: the run number stamped on this writer's records
    run: int

    def __init__(
        self,
        path: Path,
        *,
        run: int = 1,
        append: bool = False,
        overwrite: bool = False,
        lock: ReportLock | None = None,
        carried: CarriedRecords | None = None,
        fsync_interval: float = 1.0,
        fsync_every: int = FSYNC_EVERY,
        flush_interval: float = FLUSH_INTERVAL,
        flush_every: int = FLUSH_EVERY,
        now: Callable[[], float] = time.monotonic,
        call_later: CallLater | None = None,
    ) -> None:
        if run < 1:
            raise ValueError(f"run must be ≥ 1, got {run}")
        if fsync_every < 1 or fsync_interval < 0:
            raise ValueError("fsync_every must be ≥ 1 and fsync_interval ≥ 0")
        if flush_every < 1 or flush_interval < 0:
            raise ValueError("flush_every must be ≥ 1 and flush_interval ≥ 0")
        if lock is not None and (not lock.held or lock.report != path):
            raise ValueError(f"{lock!r} is not a held lock of {path}")
        self.path = path
        self.format = report_format(path)
        self.run = run
        self._fsync_interval = fsync_interval
        self._fsync_every = fsync_every
        self._flush_interval = flush_interval
        self._flush_every = flush_every
        self._call_later = call_later
        #: what a failed write could not hand to the OS, first in line for the next one
        self._unwritten = b""
        self._pending_since = 0.0
        self._timer_set = False
        self._failure: Exception | None = None
        self._now = now
        self._sidecar_dirty = False
        self._report_dirty = False
        self._unsynced = 0
        self._written = 0
        self._closed = False
        self._finalized = False
        self._compact_needed = False
        self._index = None if carried is None else carried.index
        self._appended_from = 0
        self._own_lock = ReportLock.acquire(path) if lock is None else None
        try:
            check_report_path(path)
            remove_stale_temps(path)
            if append:
                self._file, self._encoder = self._open_append()
            else:
                self._file, self._encoder = self._open_new(overwrite=overwrite)
            self._sidecar = self._open_sidecar()
        except OSError as exc:
            self._release_lock()
            raise UsageError(f"cannot write the report {path}: {exc.strerror or exc}") from exc
        except BaseException:
            self._release_lock()
            raise
        self._last_sync = now()
        log.info(
            "report.opened",
            path=str(path),
            format=self.format,
            run=run,
            append=append,
            compact_at_finalize=self._compact_needed,
        )

    def _open_new(self, *, overwrite: bool) -> tuple[BinaryIO, LineEncoder]:
        path = self.path
        exists = os.path.lexists(path)
        if not overwrite and exists and os.lstat(path).st_size > 0:
            raise UsageError(
                f"the report {path} already exists; continue it with --resume, "
                "or choose another --report path"
            )
        inflight_path(path).unlink(missing_ok=True)  # a stale one would tell of another run
        if exists:
            # A new file, not the old one truncated: it is created 0600 whatever the old
            # one's mode, and another name (hard link) of the old file keeps its content.
            path.unlink()
        encoder = LineEncoder(self.format)
        fd = open_own(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, "the report")
        stream = os.fdopen(fd, "wb", buffering=0)
        _write_all(stream, encoder.header())
        self._report_dirty = True
        fsync_dir(path.parent)
        return stream, encoder

    def _open_append(self) -> tuple[BinaryIO, LineEncoder]:
        path = self.path
        if not path.exists() or path.stat().st_size == 0:
            return self._start_empty()
        from bulkstop.report.compaction import rewrite
        from bulkstop.report.index import ReportIndex
        from bulkstop.report.reading import ReportReader

        index = self._index
        if index is None:  # read the report to find where its good content ends
            index = self._index = ReportIndex.build(path, markers=False)
        elif path.stat().st_size != index.size:
            raise UsageError(
                f"the report {path} changed after it was read for the resume; start again"
            )
        if self.format == "csv" and index.reader.columns not in (None, REPORT_FIELDS):
            encoder = LineEncoder(self.format)
            old = ReportReader(path, self.format)
            records = rewrite(path, self.format, (encoder.bare(record) for record in old))
            log.info("report.columns_upgraded", path=str(path), records=records)
            index.reread()  # the records moved in the file
        reader = index.reader
        cut = reader.closed_at if reader.closed_at is not None else reader.end
        self._repair_sidecar(index.sidecar_end)
        fd = open_own(path, os.O_WRONLY | os.O_APPEND, "the report")
        stream = os.fdopen(fd, "ab", buffering=0)
        try:
            size = os.fstat(stream.fileno()).st_size
            if cut < size:
                os.ftruncate(stream.fileno(), cut)
                log.info("report.tail_cut", path=str(path), offset=cut, bytes=size - cut)
            encoder = LineEncoder(self.format, has_records=reader.records > 0)
            if self.format == "csv":
                header_missing = reader.columns is None
            else:
                header_missing = self.format == "json" and not reader.opened
            if header_missing:  # nothing but a torn header: start over
                _write_all(stream, encoder.header())
                self._report_dirty = True
            self._appended_from = os.fstat(stream.fileno()).st_size  # O_APPEND: not tell()
        except BaseException:
            stream.close()
            raise
        self._compact_needed = reader.records > 0
        return stream, encoder

    def _start_empty(self) -> tuple[BinaryIO, LineEncoder]:
        """A missing or empty report being continued: keep its sidecar, write the header."""
        created = not self.path.exists()
        self._repair_sidecar(None)
        encoder = LineEncoder(self.format)
        fd = open_own(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, "the report")
        stream = os.fdopen(fd, "ab", buffering=0)
        _write_all(stream, encoder.header())
        self._report_dirty = True
        if created:
            fsync_dir(self.path.parent)
        return stream, encoder

    def _repair_sidecar(self, end: int | None) -> None:
        """Cut a torn last marker off the sidecar of a report being continued; ``end`` is
        where its good content ends, if known."""
        sidecar = inflight_path(self.path)
        refuse_unsafe(sidecar, "the in-flight sidecar")  # markers from a link are not ours
        if end is None:
            markers = MarkerReader(sidecar)
            for _ in markers:
                pass
            end = markers.end
        try:
            fd = open_own(sidecar, os.O_WRONLY, "the in-flight sidecar")
        except FileNotFoundError:
            return
        try:
            if os.fstat(fd).st_size > end:
                os.ftruncate(fd, end)
        finally:
            os.close(fd)

    def _open_sidecar(self) -> BinaryIO:
        """Open the sidecar for markers now, so that no file is opened once stops are sent."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            fd = open_own(inflight_path(self.path), flags, "the in-flight sidecar")
            return os.fdopen(fd, "ab", buffering=0)
        except BaseException:
            self._file.close()
            raise

    # -- the engine's calls -------------------------------------------------------------------

    def attempting(self, line: int, job_id: str, build_no: int) -> None:
        """Note, before its first attempt, that a target's stop is about to be sent.

        The marker reaches the OS before this returns, so before the stop can be sent.
        """
        self.attempting_many(((line, job_id, build_no),))

    def attempting_many(self, targets: Sequence[tuple[int, str, int]]) -> None:
        """Note, before the first of them is sent, that the ``(line, job_id, build_no)``
        targets' first attempts come next: :meth:`attempting` for each, in one write.

        The engine announces a target with those queued behind it (see
        :class:`~bulkstop.engine.RunObserver`), so that a run pays one system call for up to
        :data:`~bulkstop.engine.ANNOUNCE_AHEAD` markers.
        """
        if self._closed or self._failure is not None:  # _check_open, for each batch
            self._check_open()
        run = self.run
        _write_all(self._sidecar, marker_lines(run, targets))
        self._sidecar_dirty = True
        # count the lines; fsync when the count or the interval says so (see the class)
        self._unsynced += len(targets)
        if (
            self._unsynced >= self._fsync_every
            or self._now() - self._last_sync >= self._fsync_interval
        ):
            self._sync()

    def write(self, result: Result) -> None:
        """Append ``result`` (stamped with this writer's run); see the class for when it
        reaches the OS.

        A record of the resume's ``carried`` records, handed out in the place of a target
        that was not sent, is in the report already: it stays there (see :meth:`finalize`).
        """
        index = self._index
        if index is not None:
            from bulkstop.report.index import HANDED_OUT  # a resume's: loaded by now

            key = record_key(result)
            slot = -1 if key is None else index.find(key)
            if slot >= 0:
                if result.run != self.run and index.flags(slot) & HANDED_OUT:
                    self._check_open()
                    return
                index.supersede(slot)  # this run's record is the target's latest
        self._append(result, self.run)

    def amend(self, result: Result) -> None:
        """Append a later word on a target the report holds (a verification's verdict): the
        record as it stands, with its own run, superseding the target's earlier record.

        Crash-safe as :meth:`write`: every loader takes a target's latest record.
        """
        index = self._index
        if index is not None:
            key = record_key(result)
            slot = -1 if key is None else index.find(key)
            if slot >= 0:
                index.supersede(slot)
        self._append(result, result.run)

    def _append(self, result: Result, run: int) -> None:
        if self._closed or self._failure is not None:  # _check_open, for each line
            self._check_open()
        encoder = self._encoder
        encoder.add(result, run=run)
        self._report_dirty = True
        self._written += 1
        pending = encoder.pending
        now = self._now()  # one read for the flush and the fsync checks
        if pending >= self._flush_every:
            self._flush_pending()
        elif pending == 1:
            self._pending_since = now
            if not self._flush_later():
                self._flush_pending()
        elif now - self._pending_since >= self._flush_interval:
            self._flush_pending()
        # count the line; fsync when the count or the interval says so (see the class)
        self._unsynced += 1
        if self._unsynced >= self._fsync_every or now - self._last_sync >= self._fsync_interval:
            self._sync()

    def _flush_later(self) -> bool:
        """Have the records written so far flushed within ``flush_interval``; ``False``
        when nothing can do that later (no event loop runs), so that they go now."""
        if self._flush_interval == 0:
            return False
        if self._timer_set:  # a flush is due within the interval anyway
            return True
        call_later = self._call_later
        if call_later is None:
            try:
                call_later = asyncio.get_running_loop().call_later
            except RuntimeError:  # called outside an event loop
                return False
        call_later(self._flush_interval, self._on_timer)
        self._timer_set = True
        return True

    def _on_timer(self) -> None:
        self._timer_set = False
        if self._closed:
            return
        try:
            self._flush_pending()
        except Exception as exc:  # noqa: BLE001 - no caller here: the writer's next call raises it
            self._failure = exc

    def _flush_pending(self) -> None:
        """Hand the records waiting in memory to the OS; then raise the error of one that
        could not be encoded, if any (see :meth:`LineEncoder.take`)."""
        encoder = self._encoder
        if encoder.pending:
            self._unwritten += encoder.take()
        while self._unwritten:  # what a failed call did not write stays for the next one
            self._unwritten = self._unwritten[_written(self._file, self._unwritten) :]
        failure = encoder.failure
        if failure is not None:
            encoder.failure = None
            raise failure

    def flush(self) -> None:
        """Flush and fsync both files now."""
        self._check_open()
        self._sync()

    def close(self) -> None:
        """Fsync and close, leaving the report a journal (no ``]``, no compaction, sidecar
        kept): what a crash leaves, minus the torn line. Releases the writer's own lock.
        Idempotent."""
        try:
            self._close_files()
        finally:
            self._release_lock()

    def finalize(self) -> Path:
        """End the run's report: close it, compact it to one record per row, drop the sidecar.

        Call at the end of every run that reached its end, normal, interrupted or aborted,
        once every input row has a record from this run or a carried one. A first run
        only closes (its records are one per row already); a resumed run rewrites the report
        atomically (see :func:`~bulkstop.report.compaction.compact`). The writer's own lock is
        released after that. Returns the report's path. Calling it again does nothing;
        calling it after :meth:`close` raises ``ValueError``.
        """
        if self._finalized:
            return self.path
        self._check_open()
        try:
            if self.format == "json":
                self._flush_pending()
                self._unwritten = self._encoder.footer()
                self._report_dirty = True
            # The sidecar is removed below: an fsync of it first would buy nothing. Once the
            # report's records are on disk, its markers tell nothing a resume needs.
            self._sidecar_dirty = False
            self._close_files()
            if self._compact_needed and self._index is not None:
                from bulkstop.report.compaction import compact

                before = self._index.reader.records + self._written
                after = compact(self.path, self.format, self._index, self._appended_from)
                log.info(
                    "report.compacted", path=str(self.path), records_before=before, records=after
                )
            self._finalized = True
            inflight_path(self.path).unlink(missing_ok=True)
        finally:
            self._release_lock()
        log.info("report.finalized", path=str(self.path), run=self.run, written=self._written)
        return self.path

    # -- internals ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"the report writer for {self.path} is closed")
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _close_files(self) -> None:
        if self._closed:
            return
        try:
            self._sync()
        finally:
            self._closed = True
            try:
                self._file.close()
            finally:
                self._sidecar.close()

    def _release_lock(self) -> None:
        if self._own_lock is not None:
            self._own_lock.release()

    def _sync(self) -> None:
        self._flush_pending()
        if self._report_dirty:
            os.fsync(self._file.fileno())
            self._report_dirty = False
        if self._sidecar_dirty:
            os.fsync(self._sidecar.fileno())
            self._sidecar_dirty = False
        self._unsynced = 0
        self._last_sync = self._now()

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finalize()
        else:
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<ReportWriter {str(self.path)!r} run={self.run} written={self._written} "
            f"waiting={self._encoder.pending} unsynced={self._unsynced} {state}>"
        )


def _written(stream: BinaryIO, data: bytes | memoryview) -> int:
    """Write ``data`` to an unbuffered file in one system call; how many bytes it took (a
    full disk, a signal can make that fewer)."""
    count = stream.write(data)
    if count is None:  # only a non-blocking pipe says "not now"; a report's files are files
        raise BlockingIOError(errno.EAGAIN, "cannot be written now", stream.name)
    return count


def _write_all(stream: BinaryIO, data: bytes) -> None:
    count = _written(stream, data)
    if count == len(data):  # the common case: one call took it all, no view to slice
        return
    view = memoryview(data)[count:]
    while view:
        view = view[_written(stream, view) :]
