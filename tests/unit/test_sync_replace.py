"""When may an apply replace the whole entry in one PutItem instead of the general update?"""

from __future__ import annotations

from typing import Any

import pytest

from engine.store.item import CacheItem
from engine.sync import UNREAD, _replaceable

NEW_POSITION = 2_000  # the S3 position of the image being written


def item(**attrs: Any) -> CacheItem:
    return CacheItem.from_item({"pk": "change#CHG-1", **attrs})


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        (UNREAD, None),  # not read: only the general conditional update can decide
        (None, 0),  # read and absent: put only if still absent
        (item(version=3, s3_last_modified=1_000), 3),  # plainly older: put if still v3
        (item(version=3, s3_last_modified=2_000), None),  # same position: S3 re-check path
        (item(version=3, s3_last_modified=3_000), None),  # newer: the update refuses it
        (item(version=3, s3_last_modified=1_000, p_tx="t"), None),  # an intent
        (item(p_tx="t", p_version=1), None),  # an intent on a new entry, nothing committed
    ],
)
def test_replaceable(seen: Any, expected: int | None) -> None:
    assert _replaceable(seen, NEW_POSITION) == expected
