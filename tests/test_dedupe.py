"""The dedupe set: each target is new once, whatever the shape of the keys, in little memory."""

from __future__ import annotations

import tracemalloc

import pytest

from bulkstop.dedupe import SeenTargets
from bulkstop.models import BUILD_NO_MAX, TargetKey

JOB = "f9d6c8466d614a9788e9a0acf6c15f46"


def distinct_jobs(n: int, start: int = 0) -> list[TargetKey]:
    """``n`` targets, each of a job of its own, with build numbers spread as real ones are."""
    return [TargetKey(f"{i:032x}", 1 + (i * 7919) % 5000) for i in range(start, start + n)]


def test_a_target_is_new_once_then_met_before() -> None:
    seen = SeenTargets()
    assert seen.add(TargetKey(JOB, 20)) is True
    assert seen.add(TargetKey(JOB, 20)) is False
    assert seen.add(TargetKey(JOB, 21)) is True  # another build of the job
    assert seen.add(TargetKey(JOB.replace("f", "e"), 20)) is True  # the build of another job
    assert seen.targets == 3


@pytest.mark.parametrize(
    "keys",
    [
        distinct_jobs(30_000),
        [TargetKey(JOB, b) for b in range(1, 30_001)],  # one job, dense build numbers
        [TargetKey(JOB, b) for b in range(BUILD_NO_MAX - 30_000, BUILD_NO_MAX)],  # huge ones
        [TargetKey(f"{j:032x}", b) for j in range(100) for b in range(1, 301)],  # a grid
    ],
    ids=["distinct-jobs", "one-job", "huge-build-numbers", "jobs-by-builds"],
)
def test_every_target_is_new_once_through_many_doublings(keys: list[TargetKey]) -> None:
    seen = SeenTargets()
    assert all(seen.add(key) for key in keys)
    assert not any(seen.add(key) for key in keys)
    assert seen.targets == len(keys)


def test_the_slots_per_target_stay_within_24_bytes_at_every_size() -> None:
    """No size costs more: the tables never double all at once (10-byte slots, about half
    of them taken on average)."""
    seen = SeenTargets()
    base = seen.nbytes  # the empty tables
    worst = 0.0
    for number, key in enumerate(distinct_jobs(100_000), start=1):
        seen.add(key)
        if number % 1000 == 0:
            worst = max(worst, (seen.nbytes - base) / number)
    assert worst <= 24


def test_the_memory_a_target_costs_is_at_most_32_bytes() -> None:
    first, more = distinct_jobs(5_000), distinct_jobs(25_000, start=5_000)
    seen = SeenTargets()
    tracemalloc.start()
    try:
        for key in first:
            seen.add(key)
        before = tracemalloc.get_traced_memory()[0]
        for key in more:
            seen.add(key)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (after - before) / len(more) <= 32
    assert (peak - before) / len(more) <= 32  # and no doubling makes a peak above it


def test_the_repr_shows_the_live_state() -> None:
    seen = SeenTargets()
    for key in distinct_jobs(3):
        seen.add(key)
    slots = seen.slots
    assert repr(seen) == (
        f"SeenTargets(targets=3, slots={slots}, bytes_per_target={slots * 10 / 3:.1f})"
    )


class _SameHash(str):
    """A job id whose own hash is the same for every value: its keys' 64-bit parts agree."""

    __slots__ = ()

    def __hash__(self) -> int:
        return 42


def test_keys_agreeing_in_the_first_64_bits_are_told_apart_by_the_other_24() -> None:
    seen = SeenTargets()
    # Job ids whose own hash is one value, so that their keys' 64-bit parts agree; kept only
    # where the other 24 bits (the salted hash of the job id, XOR the build number) differ,
    # which the 88-bit bound counts as the rare case, so the test does not depend on luck.
    last_bits: dict[int, _SameHash] = {}
    for i in range(2_000):
        job = _SameHash(f"{i:032x}")
        last_bits.setdefault((hash(seen._salt + job) ^ 7) & 0xFFFFFF, job)
    keys = [TargetKey(job, 7) for job in last_bits.values()]
    assert len(keys) > 1_800
    assert len({hash(key) for key in keys}) == 1  # every key lands on the same 64 bits
    assert all(seen.add(key) for key in keys)  # the other 24 bits tell them apart...
    assert not any(seen.add(TargetKey(_SameHash(str(key[0])), 7)) for key in keys)  # ...and match
    assert seen.targets == len(keys)


def test_each_set_keys_its_last_bits_with_a_salt_of_its_own() -> None:
    """An input's author cannot aim at those 24 bits, even with the interpreter's hash key."""
    assert SeenTargets()._salt != SeenTargets()._salt
