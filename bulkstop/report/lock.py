"""One process at a time writes a report: :class:`ReportLock`."""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final

from bulkstop.errors import UsageError
from bulkstop.log import get_logger
from bulkstop.report.encoding import format_time
from bulkstop.report.files import check_report_path, open_own, same_file
from bulkstop.report.paths import lock_path

if sys.platform != "win32":
    import fcntl

__all__ = ["ReportLock"]

log = get_logger(__name__)

#: How often acquiring a lock starts over when the lock file was replaced meanwhile.
_LOCK_TRIES: Final = 10


def _holder(fd: int) -> str:
    """Who holds a lock, from what the holder wrote into the lock file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0))
        pid, host, since = info["pid"], info["host"], info["since"]
    except (OSError, ValueError, TypeError, KeyError):  # being written, or not ours
        return "another process"
    return f"process {pid} on {host} (since {since})"


class ReportLock:
    """An exclusive lock on a report: one bulkstop process writes a report at a time.

    An advisory ``flock`` on the sidecar ``<report>.lock`` (:func:`lock_path`), not on the
    report, because compaction replaces the report by a rename and a lock on the old file
    would not hold for the new one. The OS drops the lock when its process ends, however it
    ends, so the lock file a killed run leaves behind blocks nobody: the next run locks it
    again. The holder writes its pid, host and start time into the file, and a process that
    finds the report locked raises :class:`UsageError` naming them. :meth:`release` removes
    the file while it still holds the lock; :meth:`acquire` checks, once it holds the lock,
    that the path still names the file it locked, and starts over if a releasing holder had
    just removed it, so two processes never both believe they hold the lock.

    Hand-written rather than taken from ``filelock``: its flock-based lock records no holder,
    so a refused run could not say which process has the report, and a dependency would
    bring thousands of lines for the few here. POSIX only; elsewhere nothing is locked.

    Attributes:
        report: the report this lock guards.
        path: the lock file, ``<report>.lock``.
    """

    __slots__ = ("_fd", "_held", "path", "report")

    report: Path
    path: Path

    def __init__(self, report: Path, fd: int | None) -> None:
        """Wrap a lock file descriptor already locked (``None`` where nothing can be
        locked); use :meth:`acquire`."""
        self.report = report
        self.path = lock_path(report)
        self._fd = fd
        self._held = True

    @classmethod
    def acquire(cls, report: Path) -> ReportLock:
        """Lock ``report``, or raise :class:`UsageError` at once if another process has it.

        Also a :class:`UsageError`: a report path bulkstop cannot safely write (a symbolic
        link, a directory, a missing directory) and a lock file it cannot create or lock.
        """
        check_report_path(report)
        path = lock_path(report)
        if sys.platform == "win32":
            return cls(report, None)
        for _ in range(_LOCK_TRIES):
            try:
                fd = open_own(path, os.O_RDWR | os.O_CREAT, "the lock file")
            except OSError as exc:
                raise UsageError(
                    f"cannot create the lock file {path}: {exc.strerror or exc}"
                ) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                contended = exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)
                holder = _holder(fd) if contended else ""
                os.close(fd)
                if holder:
                    raise UsageError(
                        f"the report {report} is in use by {holder}; bulkstop lets one run "
                        "at a time write a report: wait for that run to end, or choose "
                        "another --report path"
                    ) from None
                raise UsageError(
                    f"cannot lock the report {report} ({path}: {exc.strerror or exc}); "
                    "choose a --report path on a local file system"
                ) from exc
            if same_file(fd, path):
                lock = cls(report, fd)
                lock._describe_holder()
                log.debug("report.locked", path=str(path))
                return lock
            os.close(fd)  # its holder removed it as we locked it: lock the new one
        raise UsageError(f"cannot lock the report {report}: {path} keeps being replaced")

    @property
    def held(self) -> bool:
        """Whether this lock was acquired and not released yet."""
        return self._held

    def _describe_holder(self) -> None:
        assert self._fd is not None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": format_time(datetime.now(UTC)),
        }
        data = json.dumps(info, separators=(",", ":")).encode() + b"\n"
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError:  # the lock holds without it; a refused run then names no process
            pass

    def release(self) -> None:
        """Remove the lock file and unlock. Idempotent."""
        self._held = False
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if same_file(fd, self.path):
                self.path.unlink(missing_ok=True)
        except OSError:  # a lock file left behind blocks nobody once unlocked
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> ReportLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "held" if self.held else "released"
        return f"<ReportLock {str(self.path)!r} {state}>"
