"""engine/pagetoken.py: signed page tokens round-trip; anything else is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine import pagetoken
from engine.cli.output import exit_code
from engine.exceptions import InvalidPageTokenError
from engine.pagetoken import Cursor

from ._hyp import FAST

SECRET = b"unit-test-secret"
FP = pagetoken.fingerprint(["announcement", "change"], "acme", None)
CURSOR = Cursor(
    "2024-05-01T10:00:00.000000Z#CHG-1",
    "change",
    "2024-02-01T00:00:00.000000Z",
    "2024-05-02T00:00:00.000000Z",
)
TOKEN = pagetoken.encode(CURSOR, FP, SECRET)
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The MAC is 16 bytes = 22 base64 characters; the last one holds 2 bits of data and 4 unused
# bits. This character differs from the token's last one only in those unused bits.
_LAST = B64_ALPHABET.index(TOKEN[-1])
SAME_BITS_LAST = B64_ALPHABET[(_LAST // 16) * 16 + (_LAST + 1) % 16]


def refused(token: str, fp: str = FP, secret: bytes = SECRET) -> InvalidPageTokenError:
    with pytest.raises(InvalidPageTokenError) as info:
        pagetoken.decode(token, fp, secret)
    assert exit_code(info.value) == 2
    return info.value


def test_round_trip() -> None:
    assert pagetoken.decode(TOKEN, FP, SECRET) == CURSOR


def test_token_is_url_safe_and_opaque() -> None:
    assert set(TOKEN) <= set(B64_ALPHABET + ".")
    assert "CHG-1" not in TOKEN


@FAST
@given(
    st.builds(Cursor, st.text(), st.text(), st.text(), st.text()),
    st.text(max_size=32),
    st.binary(min_size=1, max_size=64),
)
def test_round_trip_any_cursor(cursor: Cursor, fp: str, secret: bytes) -> None:
    token = pagetoken.encode(cursor, fp, secret)
    assert pagetoken.decode(token, fp, secret) == cursor


def test_fingerprint_is_stable_and_depends_on_every_filter() -> None:
    base = pagetoken.fingerprint(["change"], "acme", "open")
    assert base == pagetoken.fingerprint(["change"], "acme", "open")
    others = {
        pagetoken.fingerprint(["announcement"], "acme", "open"),
        pagetoken.fingerprint(["change"], "globex", "open"),
        pagetoken.fingerprint(["change"], "acme", "closed"),
        pagetoken.fingerprint(["change"], "acme", None),
        pagetoken.fingerprint(["change"], None, "open"),
    }
    assert base not in others
    assert len(others) == 5


@FAST
@given(
    st.integers(min_value=0, max_value=len(TOKEN) - 1),
    st.sampled_from(B64_ALPHABET + ".=+/ !é"),
)
@example(len(TOKEN) - 1, SAME_BITS_LAST)
def test_flipping_any_character_is_refused(position: int, replacement: str) -> None:
    """Fails today (BUG, low severity): the MAC's last base64 character carries 4 unused bits
    and urlsafe_b64decode ignores them, so some one-character changes are still accepted."""
    original = TOKEN[position]
    if replacement == original:
        replacement = "A" if original != "A" else "B"
    corrupted = TOKEN[:position] + replacement + TOKEN[position + 1 :]
    refused(corrupted)


@pytest.mark.parametrize("cut", [1, 2, 5, 10, 22, 23, 30])
def test_truncated_tokens_are_refused(cut: int) -> None:
    refused(TOKEN[:-cut])
    refused(TOKEN[cut:])


def test_every_prefix_is_refused() -> None:
    for end in range(len(TOKEN)):
        refused(TOKEN[:end])


def test_token_signed_with_another_secret_is_refused() -> None:
    foreign = pagetoken.encode(CURSOR, FP, b"someone-else")
    assert "corrupted or not issued" in str(refused(foreign))


def test_token_of_another_query_is_refused() -> None:
    other_fp = pagetoken.fingerprint(["change"], "globex", None)
    token = pagetoken.encode(CURSOR, other_fp, SECRET)
    assert "other filters" in str(refused(token))


def test_token_of_an_unknown_version_is_refused() -> None:
    payload = json.dumps(
        {"v": 2, "f": FP, "c": ["a", "change", "s", "u"]}, separators=(",", ":")
    ).encode()
    mac = hmac.new(SECRET, payload, hashlib.sha256).digest()[:16]

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    assert "version" in str(refused(f"{b64(payload)}.{b64(mac)}"))


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        ".",
        "..",
        "abc",
        "a.b.c",
        TOKEN + "." + TOKEN,
        "é.é",
        "!!!.???",
        "\x00.\x00",
        "null",
        "{}",
        "x" * 5000,
        TOKEN.replace(".", ""),
        TOKEN.split(".")[0],
    ],
)
def test_garbage_is_refused(garbage: str) -> None:
    refused(garbage)


@FAST
@given(st.text(max_size=200))
def test_random_text_is_refused(text: str) -> None:
    refused(text)
