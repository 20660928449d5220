"""Shared hypothesis settings for the unit tests: a fixed seed (derandomize: every run tries
the same examples, so a failure reproduces and a pass is not luck), no example database on
disk, no deadline (these machines are shared and noisy)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FAST = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)


# Characters S3 keys may hold that trip naive code: spaces, `+`, `/`, non-ASCII, the astral
# plane (UTF-16 order differs from UTF-8's), `%`.
ODD_KEY_CHARS = " +/é日ß\u00a0\uffff\U00010000\U0001f600~!%"


def key_text(extra: str = "", max_size: int = 10) -> st.SearchStrategy[str]:
    """Text for the part of an S3 key after its prefix: odd characters, id characters, and
    any other UTF-8 encodable character; `extra` adds characters (e.g. CSV's quote and comma)."""
    return st.text(
        alphabet=st.one_of(
            st.sampled_from(ODD_KEY_CHARS + extra),
            st.sampled_from("abcXYZ019._-"),
            st.characters(exclude_categories=["Cs"], codec="utf-8"),
        ),
        max_size=max_size,
    )
