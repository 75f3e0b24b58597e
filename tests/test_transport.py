"""The shared edge rules as pure functions: how server text becomes one safe line."""

from __future__ import annotations

import pytest

from bulkstop.transport import CUT_MARK, Body, server_text


def test_overlapping_secrets_are_scrubbed_longest_first() -> None:
    # the shorter one first would leave "efgh" of the longer one in view
    assert server_text("x abcdefgh x", 100, ["abcd", "abcdefgh"]) == "x *** x"


def test_secrets_too_short_to_tell_from_text_are_left_alone() -> None:
    assert server_text("a cab on the bay", 100, ["ab", ""]) == "a cab on the bay"


@pytest.mark.parametrize("limit", [len(CUT_MARK) + 1, 20, 64])
def test_a_cut_text_is_exactly_the_limit_long_and_ends_in_the_mark(limit: int) -> None:
    text = server_text("y" * 1000, limit)

    assert len(text) == limit
    assert text.endswith(CUT_MARK)


def test_text_within_the_limit_is_kept_whole() -> None:
    assert server_text("  CB.00060211  ", 64) == "CB.00060211"


def test_a_body_repr_shows_its_size_not_its_bytes() -> None:
    assert repr(Body(b"echo tok-SENTINEL-7f3a9c1e5b")) == "Body(<28 bytes>, problem='')"
