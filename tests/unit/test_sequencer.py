"""engine/events/sequencer.py: S3 `sequencer` values, normalized so that string order is S3's.

S3's rule (notification-content-structure docs): for events of one key, right-pad the shorter
sequencer with zeros, then compare as strings. Hex case varies between sources (notification
captures are upper-case, the EventBridge docs example is lower-case), so compare case-folded.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine.events.sequencer import WIDTH, newer, normalize_sequencer

from ._hyp import FAST

hex_strings = st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=WIDTH)


def s3_order(a: str, b: str) -> int:
    """S3's documented comparison: right-pad the shorter with '0', compare (case-folded)."""
    width = max(len(a), len(b))
    pa, pb = a.upper().ljust(width, "0"), b.upper().ljust(width, "0")
    return (pa > pb) - (pa < pb)


def order(a: str, b: str) -> int:
    return (a > b) - (a < b)


# -- normalize_sequencer --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0055AED6DCD90281E5", "0055AED6DCD90281E5" + "0" * (WIDTH - 18)),  # s3-put.json
        ("617f0837b476e463", "617F0837B476E463" + "0" * (WIDTH - 16)),  # EventBridge, lower
        ("0C0F6F405D6ED209E1", "0C0F6F405D6ED209E1" + "0" * (WIDTH - 18)),  # s3-delete.json
        ("a", "A" + "0" * (WIDTH - 1)),
        ("F" * WIDTH, "F" * WIDTH),
    ],
)
def test_normalize_pads_to_fixed_width_and_upper_cases(raw: str, expected: str) -> None:
    normalized = normalize_sequencer(raw)
    assert normalized == expected
    assert normalized is not None and len(normalized) == WIDTH


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "0055AED6DCD90281EG",  # G is not hex
        "0x55AE",
        " 0055AED6",
        "0055AED6 ",
        "0055-AED6",
        "F" * (WIDTH + 1),  # longer than any width we can pad to
        55,
        b"0055AED6",
        ["0055AED6"],
    ],
)
def test_normalize_rejects_what_is_not_a_hex_sequencer(raw: object) -> None:
    assert normalize_sequencer(raw) is None


def test_case_of_the_source_does_not_matter() -> None:
    assert normalize_sequencer("617f0837b476e463") == normalize_sequencer("617F0837B476E463")


@FAST
@given(hex_strings)
def test_normalize_is_idempotent_and_fixed_width(raw: str) -> None:
    once = normalize_sequencer(raw)
    assert once is not None
    assert len(once) == WIDTH
    assert once == once.upper()
    assert normalize_sequencer(once) == once


@FAST
@given(hex_strings, hex_strings)
@example("0055AED6DCD90281E5", "0055AED6DCD90281E50")  # equal once padded
@example("0055AED6DCD90281E5", "0055AED6DCD90281E501")  # longer and newer
@example("617f0837b476e463", "617F0837B476E462")  # case differs
@example("A", "9FFFFFFFFFFFFFFF")  # a short value can be the newer one
def test_normalized_order_is_s3_order(a: str, b: str) -> None:
    na, nb = normalize_sequencer(a), normalize_sequencer(b)
    assert na is not None and nb is not None
    assert order(na, nb) == s3_order(a, b)


# -- newer ----------------------------------------------------------------------------------------


def test_newer_compares_normalized_values() -> None:
    older = normalize_sequencer("0055AED6DCD90281E5")
    later = normalize_sequencer("0055AED6DCD90281E6")
    assert newer(later, older) is True
    assert newer(older, later) is False
    assert newer(older, older) is False  # the same event twice is not newer


def test_newer_pads_before_comparing() -> None:
    # Plain string comparison would call the 19-char value newer; padded, they are equal.
    short, long = (
        normalize_sequencer("0055AED6DCD90281E5"),
        normalize_sequencer("0055AED6DCD90281E50"),
    )
    assert newer(long, short) is False
    assert newer(short, long) is False
    # And a shorter value that is greater digit by digit is the newer one.
    assert newer(normalize_sequencer("1"), normalize_sequencer("0FFFFFFFFFFFFFFFFF")) is True


@pytest.mark.parametrize(("a", "b"), [(None, "A" * WIDTH), ("A" * WIDTH, None), (None, None)])
def test_newer_is_unknown_without_both_sequencers(a: str | None, b: str | None) -> None:
    # moto sends no sequencer: the caller must fall back on other evidence, not guess.
    assert newer(a, b) is None


@FAST
@given(hex_strings, hex_strings)
def test_newer_agrees_with_s3_rule(a: str, b: str) -> None:
    assert newer(normalize_sequencer(a), normalize_sequencer(b)) is (s3_order(a, b) > 0)
