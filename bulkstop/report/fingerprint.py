"""The input's fingerprint: is every target a report knows in the input a resume is given?"""

from __future__ import annotations

import hashlib
import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from pathlib import Path

from bulkstop.errors import ReportMismatchError
from bulkstop.models import TargetKey
from bulkstop.report.loading import LoadedReport

__all__ = ["KeyFingerprint", "check_report_matches"]

#: Keys sorted per chunk while fingerprinting, to bound the temporary list of Python ints.
_FINGERPRINT_CHUNK = 1 << 20


def _digest(key: TargetKey) -> int:
    text = f"{key.job_id}:{key.build_no}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


class KeyFingerprint:
    """The set of an input's target keys in about 8 bytes per key.

    Holds a sorted array of 64-bit blake2b digests of each key; membership is a
    binary search. A false "yes" needs a 64-bit collision, so it is ignored. Build it with
    :meth:`from_keys` from a streaming pass over the input.
    """

    __slots__ = ("_digests",)

    def __init__(self, digests: array[int]) -> None:
        """Wrap already sorted digests; use :meth:`from_keys`."""
        self._digests = digests

    @classmethod
    def from_keys(cls, keys: Iterable[TargetKey]) -> KeyFingerprint:
        """Fingerprint target keys, e.g. ``Target.key`` of each valid row."""
        # Sorted in chunks, then merged: the list that sorted() builds stays small.
        runs: list[array[int]] = []
        chunk: array[int] = array("Q")
        for key in keys:
            chunk.append(_digest(key))
            if len(chunk) >= _FINGERPRINT_CHUNK:
                runs.append(array("Q", sorted(chunk)))
                chunk = array("Q")
        runs.append(array("Q", sorted(chunk)))
        if len(runs) == 1:
            return cls(runs[0])
        merged = array("Q", heapq.merge(*runs))
        return cls(merged)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, TargetKey):
            return False
        digest = _digest(key)
        index = bisect_left(self._digests, digest)
        return index < len(self._digests) and self._digests[index] == digest

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"KeyFingerprint({len(self._digests)} keys)"


def check_report_matches(
    loaded: LoadedReport, fingerprint: KeyFingerprint, report_path: Path, input_name: str
) -> None:
    """Raise :class:`ReportMismatchError` unless every target the report knows is in the input.

    The report's keyed records and in-flight markers count; an empty report matches any input.
    The input may hold more targets than the report (a run that ended early). ``report_path``
    and ``input_name`` are the names the one-line message shows.
    """
    known = loaded.latest.keys() | loaded.in_flight
    strangers = [key for key in known if key not in fingerprint]
    if strangers:
        job_id, build_no = min(strangers)
        raise ReportMismatchError(
            f"{report_path} is not a report of {input_name}: {len(strangers)} of its "
            f"{len(known)} targets are not in the input (e.g. {job_id}:{build_no}); "
            "use a new --report path for this input"
        )
