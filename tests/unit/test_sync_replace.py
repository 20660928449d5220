"""When may an apply replace the whole entry in one PutItem instead of the general update?"""

from __future__ import annotations

from typing import Any

import pytest

from engine.sync import UNREAD, _replaceable

NEW = {"state": "live", "s3_last_modified": 2_000}


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        (UNREAD, None),  # not read: only the general conditional update can decide
        (None, 0),  # read and absent: put only if still absent
        ({"version": 3, "s3_last_modified": 1_000}, 3),  # plainly older: put if still v3
        ({"version": 3, "s3_last_modified": 2_000}, None),  # same position: S3 re-check path
        ({"version": 3, "s3_last_modified": 3_000}, None),  # newer: the update refuses it
        ({"version": 3, "s3_last_modified": 1_000, "p_tx": "t"}, None),  # an intent
        ({"p_tx": "t", "p_version": 1}, None),  # an intent on a new entry, nothing committed
    ],
)
def test_replaceable(seen: Any, expected: int | None) -> None:
    assert _replaceable(seen, NEW) == expected
