"""Dedupe: has a run met this target before? About 19 bytes a target, whatever the keys.

A run sends each ``(job_id, build_no)`` once and reports later rows naming it ``duplicate``,
so it must remember every target it has met. :class:`SeenTargets` keeps, per target, 88 bits
of a keyed digest of it and nothing else::

    seen = SeenTargets()
    seen.add(TargetKey("f9d6c8466d614a9788e9a0acf6c15f46", 20))   # True: the first sighting
    seen.add(TargetKey("f9d6c8466d614a9788e9a0acf6c15f46", 20))   # False: met before

The digest is made of two of the interpreter's own hashes, which are keyed: SipHash-1-3 of a
string under the secret key CPython draws for each process. The first 64 bits are
``hash(key)``: the key's tuple hash, which mixes the SipHash of the job id with the build
number by a bijection, so two builds of one job never agree in them, and two keys of distinct
jobs agree with probability ``2**-64``. The other 24 bits come from the SipHash of the job id
behind a salt drawn for each :class:`SeenTargets`, XORed with the build number: a hash of
another string, so independent of the first. Both are a few C calls (about 0.15 µs a target,
against 0.6 µs for BLAKE2b through hashlib, the digest the report's index uses, which has to be
the same in every process; this set lives in one). The salt keeps those 24 bits unknown to an
input's author even where ``PYTHONHASHSEED`` fixes the interpreter's key.

The layout: 256 open-addressed tables (linear probing), one per value of 8 of those 24 bits,
each two parallel arrays — the first 64 bits in an ``array('Q')`` (0 marks a free slot, so a
digest whose 64 bits are 0 is stored as 1) and the last 16 in an ``array('H')``: 10 bytes a
slot. A table doubles when it is three quarters full. The tables' first sizes are spread
evenly over an octave (16 to 31 slots), so they never double in step: at any size about half
of the slots are taken on average, about 19 bytes a target, with no peak at a doubling, and a
doubling copies one table, 1/256 of the whole.

A false "met before" would report a real target ``duplicate`` and leave its build running.
It happens only when two distinct targets agree in all 88 bits kept, so for ``n`` distinct
targets its probability is at most ``n² / 2**89`` (doubled for the 0-as-1 rule, ``n² /
2**88``): below 4e-13 for 10 million targets, below 1e-10 up to 140 million, far below the
chance that a disk or memory corrupts the report of such a run. Keeping 32 bits above the
first 64 instead of 16 would cost 12 bytes a slot instead of 10, and the memory bound is the
tighter one here.

Hand-written because no well-kept library offers a compact hash set of integers this wide for
CPython: PyPI's ``pyroaring`` (Roaring bitmaps, maintained) holds 32- or 64-bit integers and
compresses dense ranges, while digests are wide and spread; ``preshed`` (maintained) and
``cykhash`` (last released in 2023) are hash tables of 64-bit keys, too narrow for 80 bits
without a second table beside them. A Python ``set`` of 128-bit integers costs about 78
bytes a target; the earlier bitmap of build numbers per job cost ~520 bytes a target when
every target named a job of its own.
"""

from __future__ import annotations

import secrets
from array import array
from typing import Final

from bulkstop.models import TargetKey

__all__ = ["SeenTargets"]

_SEGMENT_BITS: Final = 8
_SEGMENTS: Final = 1 << _SEGMENT_BITS
_FIRST_CAPACITY: Final = 16
_MAX_LOAD: Final = 0.75
_LOW_MASK: Final = (1 << 64) - 1
_HIGH_MASK: Final = (1 << 16) - 1
#: 16 bits wide on every platform CPython supports
_HIGH_TYPE: Final = "H"


def _zeros(typecode: str, slots: int) -> array[int]:
    return array(typecode, bytes(array(typecode).itemsize * slots))


class SeenTargets:
    """The set of targets a run has met, kept as 88-bit digests in about 19 bytes a target.

    See the module docstring for the layout and the bound on false "met before" answers.

    Attributes:
        targets: distinct targets added so far.
        slots: slots of all tables together (each 10 bytes).
    """

    __slots__ = ("_counts", "_highs", "_limits", "_lows", "_salt", "slots", "targets")

    def __init__(self) -> None:
        self._lows: list[array[int]] = []
        self._highs: list[array[int]] = []
        self._limits: list[int] = []
        self._counts = [0] * _SEGMENTS
        self.targets = 0
        self.slots = 0
        self._salt = secrets.token_hex(8)  # see the module: the last 24 bits' own key
        for segment in range(_SEGMENTS):
            # Sizes spread over an octave: the tables fill alike, so equal sizes would all
            # double at once, and a just-doubled set would cost twice what it holds.
            capacity = round(_FIRST_CAPACITY * 2 ** (segment / _SEGMENTS))
            self._lows.append(_zeros("Q", capacity))
            self._highs.append(_zeros(_HIGH_TYPE, capacity))
            self._limits.append(int(capacity * _MAX_LOAD))
            self.slots += capacity

    def add(self, key: TargetKey) -> bool:
        """Remember ``key``; ``True`` when it was not met before (its first sighting)."""
        low = hash(key) & _LOW_MASK or 1  # the 64 bits of the module's digest
        other = hash(self._salt + key[0]) ^ key[1]  # and 24 more: 16 kept, 8 choose the table
        high = other & _HIGH_MASK
        segment = (other >> 16) & (_SEGMENTS - 1)
        lows = self._lows[segment]
        highs = self._highs[segment]
        capacity = len(lows)
        slot = (low * capacity) >> 64  # the low bits, scaled to the table: any size will do
        while stored := lows[slot]:
            if stored == low and highs[slot] == high:
                return False
            slot += 1
            if slot == capacity:
                slot = 0
        lows[slot] = low
        highs[slot] = high
        self.targets += 1
        count = self._counts[segment] + 1
        self._counts[segment] = count
        if count > self._limits[segment]:
            self._grow(segment)
        return True

    def _grow(self, segment: int) -> None:
        old_lows, old_highs = self._lows[segment], self._highs[segment]
        capacity = 2 * len(old_lows)
        lows = _zeros("Q", capacity)
        highs = _zeros(_HIGH_TYPE, capacity)
        for low, high in zip(old_lows, old_highs, strict=True):
            if low:
                slot = (low * capacity) >> 64
                while lows[slot]:
                    slot += 1
                    if slot == capacity:
                        slot = 0
                lows[slot] = low
                highs[slot] = high
        self._lows[segment] = lows
        self._highs[segment] = highs
        self._limits[segment] = int(capacity * _MAX_LOAD)
        self.slots += capacity - len(old_lows)

    @property
    def nbytes(self) -> int:
        """Bytes the tables' slots take (the arrays' contents, not their small headers)."""
        return self.slots * (8 + array(_HIGH_TYPE).itemsize)

    def __repr__(self) -> str:
        per = self.nbytes / self.targets if self.targets else 0.0
        return (
            f"SeenTargets(targets={self.targets}, slots={self.slots}, bytes_per_target={per:.1f})"
        )
