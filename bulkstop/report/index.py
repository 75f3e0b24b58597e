"""A report's records in 29 bytes or so each: what a resume of millions of targets keeps.

A resume needs, per target the report knows: whether it is settled (carried over, not sent),
whether an earlier run may have stopped it (maybe applied), and for a carried one what to hand
out in its place and where its full record is. :class:`ReportIndex` holds exactly that, in
parallel arrays with one *slot* per record of the report, in file order, followed by one slot
per target that only an in-flight marker names:

=========  ========  ======================================================================
array      type      per slot
=========  ========  ======================================================================
hi, lo     Q, I      the 96-bit digest of the record's key (:func:`~.keys.key_digest`)
offsets    I or Q    byte offset of the record's line (a marker's: of its sidecar line)
lines      I         the record's ``line``: the input row it stands for
runs       H or q    the run that wrote it (a marker's run)
outcomes   B         its outcome, an index into :class:`~bulkstop.models.Outcome`
flags      B         what else is known of it: the ``FLAG`` bits below
nexts      i         the next slot in the same hash bucket (-1: none)
=========  ========  ======================================================================

plus one ``heads`` entry (i) per hash bucket, a quarter as many buckets as the report has
lines: 28 bytes a slot and one or two a bucket. The arrays are sized from a count of the
report's lines before it is read, so they are not grown (and copied) as it is.

A lookup hashes the key's digest into its bucket and walks a chain of about two slots. Only
the latest record of a target is on a chain: reading a later one supersedes it (and flags it
SUPERSEDED), and so does a record that this run writes (:meth:`ReportIndex.supersede`), so that
compaction copies exactly the surviving lines, in file order, parsing none of them but those
whose input row moved (:meth:`ReportIndex.hand_out`).

Digest collisions
    Two different keys with the same 96-bit digest would share a slot: a target could be
    carried over in the place of another, and one of two records could be dropped. The digest
    is BLAKE2b's, so for keys that nobody chose to collide a given pair shares it with a chance
    of 2**-96: across a report of ``n`` targets and an input of ``m`` rows the chance that any
    pair does is below ``n·m / 2**96``, about 10**-15 for ten million of each. That is what
    "impossible in practice" means here; 64 bits would have left it at about 10**-5. Where a
    record is read back anyway (a carried target whose input row moved), its key is compared
    too, and a mismatch sends the target instead (``CarriedRecords.get``).

Hand-written: a ``dict`` of keys costs some 200 bytes a target, and the standard library has no
compact hash map; ``array`` keeps each field in a flat C buffer.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from bulkstop.errors import InputError
from bulkstop.models import Outcome, Result, TargetKey
from bulkstop.report.files import open_own
from bulkstop.report.keys import key_digest, record_key
from bulkstop.report.markers import Marker, MarkerReader
from bulkstop.report.paths import ReportFormat, inflight_path, report_format
from bulkstop.report.reading import ReportReader

__all__ = [
    "HANDED_OUT",
    "IN_FLIGHT",
    "MAY_APPLY",
    "MOVED",
    "NO_RECORD",
    "OWN_FLAG",
    "SEEN",
    "SUPERSEDED",
    "ReportIndex",
]


#: FLAG: the record leaves open that a stop was carried out (``may_apply`` of :meth:`build`)
MAY_APPLY: Final = 1
#: FLAG: the record's own ``maybe_applied`` column is true
OWN_FLAG: Final = 2
#: FLAG: an in-flight marker of a later run than the record (or of no record) names the key
IN_FLIGHT: Final = 4
#: FLAG: only in-flight markers name the key: the slot has no record
NO_RECORD: Final = 8
#: FLAG: a later record replaced this one (off its chain; compaction drops it)
SUPERSEDED: Final = 16
#: FLAG: while the input is checked, the input holds the key (:meth:`ReportIndex.mark_seen`);
#: during the run, a row of the input named it (:meth:`ReportIndex.sight`)
SEEN: Final = 32
#: FLAG: handed out as a carried record in the place of the target (:meth:`ReportIndex.hand_out`)
HANDED_OUT: Final = 64
#: FLAG: handed out at another line than its own: compaction writes it with that line
MOVED: Final = 128

_OUTCOMES: Final = tuple(Outcome)
_CODES: Final = {outcome: code for code, outcome in enumerate(_OUTCOMES)}
_NO_OUTCOME: Final = 255
#: A line that does not fit the array (a hand-made report): treated as moved when handed out.
_NO_LINE: Final = 0xFFFFFFFF
_LOW: Final = 0xFFFFFFFF
_COUNT_CHUNK: Final = 1 << 20


def _count_lines(path: Path, what: str) -> int:
    """How many lines ``path`` has (a last one without ``\\n`` counts): the slots it may need.

    Opened as every file of a report is (:func:`~.files.open_own`): never through a link.
    """
    count = 0
    try:
        with os.fdopen(open_own(path, os.O_RDONLY, what), "rb") as stream:
            while chunk := stream.read(_COUNT_CHUNK):
                count += chunk.count(b"\n")
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    return count + 1


def _zeros(typecode: str, count: int) -> array[int]:
    return array(typecode, [0]) * count  # repeated in C: no temporary list or bytes


class ReportIndex:
    """The records of one report, keyed by target, in a few dozen bytes each; see the module.

    Build it with :meth:`build`. Slots are ``int`` handles valid for the index's life.

    Attributes:
        path, format: the report.
        reader: the reader that read it, which tells where its content ends.
        size: the report's size when it was read.
        sidecar_end: with markers read, where the sidecar's good content ends.
        last_run: the highest run number in the report (and its sidecar, if read).
        targets: how many distinct targets the report (and sidecar) names.
    """

    __slots__ = (
        "_flags",
        "_heads",
        "_hi",
        "_last_key",
        "_last_slot",
        "_lines",
        "_lo",
        "_mask",
        "_may_apply",
        "_nexts",
        "_offsets",
        "_outcomes",
        "_runs",
        "_size",
        "format",
        "last_run",
        "path",
        "reader",
        "sidecar_end",
        "size",
        "targets",
    )

    path: Path
    format: ReportFormat
    reader: ReportReader
    size: int
    sidecar_end: int | None
    last_run: int
    targets: int

    def __init__(self, path: Path, capacity: int, *, more: int = 0) -> None:
        """An empty index with room for ``capacity`` slots, and buckets for ``more`` beyond
        them (the arrays grow for those); use :meth:`build`."""
        self.path = path
        self.format = report_format(path)
        self.reader = ReportReader(path, self.format)
        self.size = 0
        self.sidecar_end = None
        self.last_run = 0
        self.targets = 0
        capacity = max(capacity, 1)
        self._size = 0
        self._hi = _zeros("Q", capacity)
        self._lo = _zeros("I", capacity)
        self._offsets = _zeros("I", capacity)
        self._lines = _zeros("I", capacity)
        self._runs = _zeros("H", capacity)
        self._outcomes = _zeros("B", capacity)
        self._flags = _zeros("B", capacity)
        self._nexts = _zeros("i", capacity)
        buckets = 1 << max((capacity + more) // 4, 1).bit_length()
        self._mask = buckets - 1
        self._heads = array("i", [-1]) * buckets
        self._last_key: TargetKey | None = None
        self._last_slot = -1
        self._may_apply: Callable[[Result], bool] | None = None

    @classmethod
    def build(
        cls,
        path: Path,
        *,
        markers: bool = True,
        may_apply: Callable[[Result], bool] | None = None,
    ) -> ReportIndex:
        """Read the report at ``path`` (and, with ``markers``, its sidecar) into an index.

        ``may_apply`` judges each record for the MAY_APPLY flag (none without it). Raises like
        :func:`~bulkstop.report.load_report` on a bad report or sidecar.
        """
        # Slots for every line of the report; buckets for the sidecar's lines too, which are
        # few but for a run killed at its end, whose markers all lack a record.
        sidecar = MarkerReader(inflight_path(path))
        more = _count_lines(sidecar.path, "the in-flight sidecar") if markers else 0
        index = cls(path, _count_lines(path, "the report"), more=more)
        index._may_apply = may_apply
        try:
            index.size = path.stat().st_size
        except OSError as exc:
            raise InputError(f"cannot read the report {path}: {exc.strerror or exc}") from exc
        last_run = 0
        for record in index.reader:
            last_run = max(last_run, record.run)
            key = record_key(record)
            if key is not None:
                flags = MAY_APPLY if may_apply is not None and may_apply(record) else 0
                index._add_record(key, record, index.reader.span[0], flags)
        if markers:
            for marker in sidecar:
                last_run = max(last_run, marker.run)
                index._add_marker(marker)
            index.sidecar_end = sidecar.end
        index.last_run = last_run
        return index

    def reread(self) -> None:
        """Read the report again, as :meth:`build` did (after it was rewritten)."""
        fresh = ReportIndex.build(
            self.path, markers=self.sidecar_end is not None, may_apply=self._may_apply
        )
        for name in ReportIndex.__slots__:
            setattr(self, name, getattr(fresh, name))

    # -- building ---------------------------------------------------------------------------

    def _add_record(self, key: TargetKey, record: Result, offset: int, flags: int) -> None:
        digest = key_digest(key)
        hi, lo = digest >> 32, digest & _LOW
        previous = self._find(hi, lo)
        if previous >= 0:
            self.supersede(previous)
        else:
            self.targets += 1
        if record.maybe_applied:
            flags |= OWN_FLAG
        line = record.line if 0 <= record.line < _NO_LINE else _NO_LINE
        self._append(hi, lo, offset, line, record.run, _CODES[record.outcome], flags)

    def _add_marker(self, marker: Marker) -> None:
        digest = key_digest(marker.key)
        hi, lo = digest >> 32, digest & _LOW
        slot = self._find(hi, lo)
        if slot < 0:
            self.targets += 1
            flags = NO_RECORD | IN_FLIGHT
            self._append(hi, lo, marker.offset, _NO_LINE, marker.run, _NO_OUTCOME, flags)
        elif self._runs[slot] < marker.run:  # no record from the marker's run or a later one
            self._flags[slot] |= IN_FLIGHT
            if self._flags[slot] & NO_RECORD:
                self._store_run(slot, marker.run)

    def _append(
        self, hi: int, lo: int, offset: int, line: int, run: int, outcome: int, flags: int
    ) -> None:
        slot = self._size
        if slot == len(self._hi):  # more than the count promised (markers): grow by half
            more = max(slot // 2, 1)
            for column in (
                self._hi,
                self._lo,
                self._offsets,
                self._lines,
                self._runs,
                self._outcomes,
                self._flags,
                self._nexts,
            ):
                column.extend(_zeros(column.typecode, more))
        self._size = slot + 1
        self._hi[slot] = hi
        self._lo[slot] = lo
        try:
            self._offsets[slot] = offset
        except OverflowError:  # a report past 4 GiB
            self._offsets = array("Q", self._offsets)
            self._offsets[slot] = offset
        self._lines[slot] = line
        self._store_run(slot, run)
        self._outcomes[slot] = outcome
        self._flags[slot] = flags
        bucket = hi & self._mask
        self._nexts[slot] = self._heads[bucket]
        self._heads[bucket] = slot
        self._last_key, self._last_slot = None, -1

    def _store_run(self, slot: int, run: int) -> None:
        try:
            self._runs[slot] = run
        except OverflowError:  # a run number beyond 65535, or a hand-made negative one
            self._runs = array("q", self._runs)
            self._runs[slot] = max(min(run, 2**63 - 1), -(2**63))

    # -- lookups ------------------------------------------------------------------------------

    def _find(self, hi: int, lo: int) -> int:
        his, los, nexts = self._hi, self._lo, self._nexts
        slot = self._heads[hi & self._mask]
        while slot >= 0:
            if his[slot] == hi and los[slot] == lo:
                return slot
            slot = nexts[slot]
        return -1

    def find(self, key: TargetKey) -> int:
        """The slot of ``key``'s latest record (or in-flight marker), or -1."""
        if key is self._last_key:  # the engine asks twice about the target it reads
            return self._last_slot
        digest = key_digest(key)
        slot = self._find(digest >> 32, digest & _LOW)
        self._last_key, self._last_slot = key, slot
        return slot

    def flags(self, slot: int) -> int:
        """The ``FLAG`` bits of ``slot``."""
        return self._flags[slot]

    def outcome(self, slot: int) -> Outcome | None:
        """The outcome of the record at ``slot``; ``None`` for an in-flight marker."""
        code = self._outcomes[slot]
        return None if code == _NO_OUTCOME else _OUTCOMES[code]

    def line(self, slot: int) -> int | None:
        """The line of the record at ``slot`` (``None``: none that fits, or a marker)."""
        line = self._lines[slot]
        return None if line == _NO_LINE else line

    def run(self, slot: int) -> int:
        """The run of the record (or latest marker) at ``slot``."""
        return self._runs[slot]

    def key_at(self, slot: int) -> TargetKey:
        """The key of ``slot``, read back from its line in the report or the sidecar."""
        if self._flags[slot] & NO_RECORD:
            sidecar = MarkerReader(inflight_path(self.path))
            for marker in sidecar:
                if marker.offset == self._offsets[slot]:
                    return marker.key
            raise InputError(f"{sidecar.path}: the marker at byte {self._offsets[slot]} is gone")
        key = record_key(self.record_at(slot))
        assert key is not None  # only records of targets have slots
        return key

    def record_at(self, slot: int) -> Result:
        """The full record at ``slot``, read back from the report."""
        offset = self._offsets[slot]
        try:
            with self.path.open("rb") as stream:
                stream.seek(offset)
                raw = stream.readline()
        except OSError as exc:
            raise InputError(f"cannot read the report {self.path}: {exc.strerror or exc}") from exc
        return self.reader.parse_record(raw, offset)

    # -- what a resume learns -----------------------------------------------------------------

    def mark_seen(self, key: TargetKey) -> None:
        """Note that the input holds ``key`` (see :meth:`strangers`)."""
        slot = self.find(key)
        if slot >= 0:
            self._flags[slot] |= SEEN

    def strangers(self) -> tuple[int, int]:
        """How many targets the report names that :meth:`mark_seen` was not told about, and
        the slot of the first of them in file order (-1 when there is none)."""
        # One pass in C: each flag byte becomes 1 for a live slot not seen, else 0.
        table = bytes(int(not flags & (SUPERSEDED | SEEN)) for flags in range(256))
        unseen = self._flags.tobytes()[: self._size].translate(table)
        return unseen.count(1), unseen.find(1)

    def clear_seen(self) -> None:
        """Forget every :meth:`mark_seen`, so that the run's rows can be :meth:`sight` ed."""
        table = bytes(flags & ~SEEN for flags in range(256))
        self._flags[: self._size] = array("B", self._flags.tobytes()[: self._size].translate(table))

    def sight(self, key: TargetKey) -> bool | None:
        """Note that a row of the run names ``key``: ``True`` the first time, ``False`` after.

        ``None`` when the report does not know the key. So a resume dedupes the targets its
        report knows in the index's flags, and only new targets cost the engine's dedupe
        anything.
        """
        slot = self.find(key)
        if slot < 0:
            return None
        flags = self._flags[slot]
        if flags & SEEN:
            return False
        self._flags[slot] = flags | SEEN
        return True

    def hand_out(self, slot: int, line: int) -> None:
        """Note that ``slot``'s record was handed out as carried, for the row at ``line``."""
        flags = self._flags[slot] | HANDED_OUT
        if self._lines[slot] != line:
            flags |= MOVED
            self._lines[slot] = line if 0 <= line < _NO_LINE else _NO_LINE
        self._flags[slot] = flags

    def supersede(self, slot: int) -> None:
        """Take ``slot`` off its chain: a later record of its key replaces it."""
        hi = self._hi[slot]
        bucket = hi & self._mask
        nexts = self._nexts
        current, previous = self._heads[bucket], -1
        while current >= 0 and current != slot:
            current, previous = nexts[current], current
        if current < 0:
            return  # superseded already
        if previous < 0:
            self._heads[bucket] = nexts[slot]
        else:
            nexts[previous] = nexts[slot]
        self._flags[slot] |= SUPERSEDED
        self._last_key, self._last_slot = None, -1

    def survivors(self) -> Iterator[tuple[int, int | None]]:
        """The records a compaction keeps, in file order: ``(offset, line)``, where ``line``
        is the line to write the record with instead of its own, or ``None``."""
        flags, offsets, lines = self._flags, self._offsets, self._lines
        for slot in range(self._size):
            bits = flags[slot]
            if bits & (SUPERSEDED | NO_RECORD):
                continue
            yield offsets[slot], (lines[slot] if bits & MOVED else None)

    @property
    def nbytes(self) -> int:
        """The bytes the index's arrays hold."""
        columns = (
            self._hi,
            self._lo,
            self._offsets,
            self._lines,
            self._runs,
            self._outcomes,
            self._flags,
            self._nexts,
            self._heads,
        )
        return sum(len(column) * column.itemsize for column in columns)

    def __len__(self) -> int:
        """Slots in use (records of the report, and targets only markers name)."""
        return self._size

    def __repr__(self) -> str:
        return (
            f"<ReportIndex {str(self.path)!r} {self.targets} targets in {self._size} slots, "
            f"last run {self.last_run}>"
        )
