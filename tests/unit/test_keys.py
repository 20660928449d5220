"""engine/keys.py: S3 keys, month buckets, sort keys, relative times and the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine import keys
from engine.exceptions import InvalidTimeError

from ._hyp import FAST

ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
PREFIXES = {"change": "changes/", "announcement": "announcements/"}
NOW = datetime(2024, 6, 15, 12, 0, 0, tzinfo=UTC)

valid_ids = st.from_regex(r"[A-Za-z0-9._-]{1,128}", fullmatch=True)
offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
aware_datetimes = st.datetimes(
    min_value=datetime(1000, 2, 1), max_value=datetime(9999, 11, 30), timezones=offsets
)
# A range: a start and how long it lasts (from nothing to a few decades).
spans = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=365 * 30))
starts_utc = st.datetimes(
    min_value=datetime(1000, 2, 1), max_value=datetime(9900, 1, 1), timezones=st.just(UTC)
)
starts_aware = st.datetimes(
    min_value=datetime(1000, 2, 1), max_value=datetime(9900, 1, 1), timezones=offsets
)


# -- S3 keys ----------------------------------------------------------------------------------


@FAST
@given(st.sampled_from(sorted(PREFIXES)), valid_ids)
def test_s3_key_round_trips(type_name: str, doc_id: str) -> None:
    key = keys.s3_key(PREFIXES[type_name], doc_id)
    assert key == f"{PREFIXES[type_name]}{doc_id}.json"
    assert keys.key_to_doc(key, PREFIXES) == (type_name, doc_id)


@pytest.mark.parametrize(
    "key",
    [
        "changes/.json",
        "changes/a",
        "changes/a.JSON",
        "changes/a.json.bak",
        "changes/sub/dir.json",
        "changes/has space.json",
        "other/a.json",
        "_docsync/reports/2024-01-01.json",
        "a.json",
        "",
        "Changes/a.json",
        "changes",
        "announcements/" + "x" * 129 + ".json",
    ],
)
def test_keys_outside_prefixes_or_with_bad_ids_give_none(key: str) -> None:
    assert keys.key_to_doc(key, PREFIXES) is None


def test_key_to_doc_refuses_id_with_trailing_newline() -> None:
    """BUG: keys.py matches ID_PATTERN with re.match, whose `$` also matches before a
    trailing newline, so `changes/abc\\n.json` maps to id 'abc\\n' (documents refuse it)."""
    assert keys.key_to_doc("changes/abc\n.json", PREFIXES) is None


@FAST
@given(
    st.sampled_from(sorted(PREFIXES.values())),
    st.text(ID_CHARS, max_size=40),
    st.characters().filter(lambda c: c not in ID_CHARS),
    st.text(ID_CHARS, max_size=40),
)
@example("changes/", "abc", "\n", "")
def test_key_with_a_bad_character_in_the_id_gives_none(
    prefix: str, head: str, bad: str, tail: str
) -> None:
    assert keys.key_to_doc(keys.s3_key(prefix, head + bad + tail), PREFIXES) is None


def test_key_to_doc_with_custom_nested_prefixes() -> None:
    prefixes = {"change": "docs/", "announcement": "docs/ann/"}
    assert keys.key_to_doc("docs/ann/x.json", prefixes) == ("announcement", "x")
    assert keys.key_to_doc("docs/x.json", prefixes) == ("change", "x")
    assert keys.key_to_doc("docs/a.json.json", prefixes) == ("change", "a.json")


def test_cache_pk() -> None:
    assert keys.cache_pk("change", "a-1") == "change#a-1"


@FAST
@given(st.sampled_from(sorted(PREFIXES.values())), valid_ids)
def test_key_shard_is_a_listing_prefix_of_the_key(prefix: str, doc_id: str) -> None:
    shard = keys.key_shard(prefix, doc_id)
    assert shard == prefix + doc_id[0]
    assert keys.s3_key(prefix, doc_id).startswith(shard)


def test_key_shard_examples() -> None:
    assert keys.key_shard("changes/", "abc") == "changes/a"
    assert keys.key_shard("announcements/", "9") == "announcements/9"


# -- months -----------------------------------------------------------------------------------


def _expected_months(since: datetime, until: datetime) -> list[str]:
    lo, hi = since.astimezone(UTC), until.astimezone(UTC)
    first, last = lo.year * 12 + lo.month - 1, hi.year * 12 + hi.month - 1
    return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(last, first - 1, -1)]


def test_months_desc_across_a_year_boundary() -> None:
    since = datetime(2023, 11, 15, tzinfo=UTC)
    until = datetime(2024, 2, 1, tzinfo=UTC)
    assert list(keys.months_desc(since, until)) == ["2024-02", "2024-01", "2023-12", "2023-11"]


def test_months_desc_single_month_and_empty_range() -> None:
    t = datetime(2024, 5, 31, 23, 59, tzinfo=UTC)
    assert list(keys.months_desc(t, t)) == ["2024-05"]
    assert list(keys.months_desc(t, t - timedelta(days=40))) == []


@FAST
@given(starts_utc, spans)
def test_months_desc_covers_exactly_the_months_utc(since: datetime, span: timedelta) -> None:
    until = since + span
    months = list(keys.months_desc(since, until))
    assert months == _expected_months(since, until)
    assert months[0] == keys.month_bucket(until)
    assert months[-1] == keys.month_bucket(since)
    assert months == sorted(set(months), reverse=True)


def test_months_desc_uses_utc_buckets_for_offset_datetimes() -> None:
    """BUG: months_desc walks since/until in their own offset, but month_bucket (the GSI
    partition) is UTC. since = 2024-03-01T00:30+02:00 is 2024-02-29T22:30Z: a document
    modified at 23:00Z on Feb 29 is in the range and in bucket 2024-02, which is skipped."""
    since = datetime(2024, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    until = datetime(2024, 3, 10, tzinfo=UTC)
    months = list(keys.months_desc(since, until))
    assert keys.month_bucket(datetime(2024, 2, 29, 23, 0, tzinfo=UTC)) in months
    assert months == ["2024-03", "2024-02"]


@FAST
@given(starts_aware, spans, offsets)
@example(datetime(2024, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))), timedelta(days=9), UTC)
def test_months_desc_covers_every_bucket_in_range_any_offset(
    since: datetime, span: timedelta, until_tz: timezone
) -> None:
    until = (since + span).astimezone(until_tz)
    assert list(keys.months_desc(since, until)) == _expected_months(since, until)


# -- sort keys --------------------------------------------------------------------------------


@FAST
@given(aware_datetimes, valid_ids, aware_datetimes, valid_ids)
def test_time_sort_key_orders_like_modified_at_then_id(
    t1: datetime, id1: str, t2: datetime, id2: str
) -> None:
    k1, k2 = keys.time_sort_key(t1, id1), keys.time_sort_key(t2, id2)
    assert (k1 < k2) == ((t1, id1) < (t2, id2))
    assert (k1 == k2) == ((t1, id1) == (t2, id2))


@FAST
@given(aware_datetimes, valid_ids)
def test_time_sort_key_with_equal_instants_in_other_offsets(t: datetime, doc_id: str) -> None:
    assert keys.time_sort_key(t, doc_id) == keys.time_sort_key(t.astimezone(UTC), doc_id)


def test_time_sort_key_same_instant_orders_by_id() -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    assert keys.time_sort_key(t, "a") < keys.time_sort_key(t, "a-b") < keys.time_sort_key(t, "b")
    assert keys.time_sort_key(t, "zzz") < keys.time_sort_key(t + timedelta(microseconds=1), "0")


def test_iso_is_fixed_width_and_round_trips() -> None:
    t = datetime(2024, 2, 29, 23, 59, 59, 7, tzinfo=UTC)
    assert keys.iso(t) == "2024-02-29T23:59:59.000007Z"
    assert keys.parse_iso(keys.iso(t)) == t


def test_iso_of_a_year_before_1000_is_four_digits() -> None:
    """BUG (minor): strftime('%Y') does not zero-pad years < 1000 on glibc, so iso() gives
    '999-…' — not ISO-8601 (parse_iso cannot read it back) and it sorts after '1000-…'."""
    early = datetime(999, 12, 31, tzinfo=UTC)
    assert keys.iso(early).startswith("0999-12-31T")
    assert keys.time_sort_key(early, "a") < keys.time_sort_key(
        datetime(1000, 1, 1, tzinfo=UTC), "a"
    )


# -- parse_time -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-31T00:00:00Z", datetime(2024, 1, 31, tzinfo=UTC)),
        ("2024-01-31T02:00:00+02:00", datetime(2024, 1, 31, tzinfo=UTC)),
        ("2024-01-30T19:00:00-05:00", datetime(2024, 1, 31, tzinfo=UTC)),
        ("2024-01-31T00:00:00.250Z", datetime(2024, 1, 31, 0, 0, 0, 250000, tzinfo=UTC)),
        ("2024-01-31T00:00:00", datetime(2024, 1, 31, tzinfo=UTC)),
        ("2024-01-31", datetime(2024, 1, 31, tzinfo=UTC)),
    ],
)
def test_parse_time_iso(text: str, expected: datetime) -> None:
    got = keys.parse_time(text, now=NOW)
    assert got == expected
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("0d", timedelta(0)),
        (" 7d ", timedelta(days=7)),
        ("1000h", timedelta(hours=1000)),
    ],
)
def test_parse_time_relative(text: str, delta: timedelta) -> None:
    assert keys.parse_time(text, now=NOW) == NOW - delta


def test_parse_time_relative_defaults_to_now() -> None:
    before = datetime.now(UTC)
    got = keys.parse_time("1h")
    after = datetime.now(UTC)
    assert before - timedelta(hours=1) <= got <= after - timedelta(hours=1)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "garbage",
        "90",
        "d",
        "90w",
        "-5d",
        "5 d",
        "1.5h",
        "2024-13-01",
        "2024-01-32",
        "tomorrow",
        "90dd",
        "12H",
    ],
)
def test_parse_time_garbage_is_refused(text: str) -> None:
    with pytest.raises(InvalidTimeError) as info:
        keys.parse_time(text, now=NOW)
    assert info.value.fields == ["time"]


@pytest.mark.parametrize("text", ["9999999d", "1000000000d", "99999999999999h"])
def test_parse_time_overflowing_relative_is_refused(text: str) -> None:
    """BUG: a relative time beyond datetime's range raises a bare OverflowError (CLI exit 1
    with a traceback) instead of InvalidTimeError (exit 2)."""
    with pytest.raises(InvalidTimeError):
        keys.parse_time(text, now=NOW)


# -- the window -------------------------------------------------------------------------------


def test_expires_at_is_last_modified_plus_ttl_in_epoch_seconds() -> None:
    lm = datetime(2024, 1, 1, tzinfo=UTC)
    assert keys.expires_at(lm, 90) == int(datetime(2024, 3, 31, tzinfo=UTC).timestamp())
    assert keys.expires_at(lm, 1) - keys.expires_at(lm, 0) == 86400
    assert keys.expires_at(lm + timedelta(microseconds=999_999), 1) == keys.expires_at(lm, 1)
    assert keys.expires_at(lm.astimezone(timezone(timedelta(hours=-7))), 90) == keys.expires_at(
        lm, 90
    )


def test_window_start() -> None:
    assert keys.window_start(90, NOW) == NOW - timedelta(days=90)
    assert keys.window_start(1, NOW) == datetime(2024, 6, 14, 12, tzinfo=UTC)
    got = keys.window_start(1)
    assert abs(got - (datetime.now(UTC) - timedelta(days=1))) < timedelta(seconds=5)


def test_in_window_edges() -> None:
    start = NOW - timedelta(days=90)
    assert not keys.in_window(start, 90, NOW)  # exactly at the start: out
    assert keys.in_window(start + timedelta(microseconds=1), 90, NOW)
    assert not keys.in_window(start - timedelta(microseconds=1), 90, NOW)
    assert keys.in_window(NOW, 90, NOW)
    assert keys.in_window(NOW + timedelta(days=1), 90, NOW)  # clock skew: still in
    assert keys.in_window(datetime.now(UTC), 1)


@FAST
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets),
    st.integers(min_value=1, max_value=3650),
)
def test_in_window_agrees_with_window_start_and_expiry(lm: datetime, ttl: int) -> None:
    assert keys.in_window(lm, ttl, NOW) == (lm > keys.window_start(ttl, NOW))
    whole = lm.replace(microsecond=0)
    # An entry is in the window exactly while its TTL has not passed.
    assert keys.in_window(whole, ttl, NOW) == (keys.expires_at(whole, ttl) > NOW.timestamp())


def test_month_shards_default_writes_todays_keys_and_a_hash_that_never_moves() -> None:
    assert keys.month_shard("CHG-1", 1) is None
    assert keys.time_partition("change", "2026-03", "CHG-1", 1) == "change#2026-03"
    assert keys.status_partition("change", "draft", "2026-03", "CHG-1", 1) == (
        "change#draft#2026-03"
    )
    assert keys.shard_buckets("change#2026-03", 1) == ["change#2026-03"]
    # CRC-32, not Python's salted hash(): the same shard in every process and release.
    assert keys.month_shard("CHG-1", 4) == 0x83F064C6 % 4
    assert (
        keys.time_partition("change", "2026-03", "CHG-1", 4) == f"change#2026-03#{0x83F064C6 % 4}"
    )
    assert keys.shard_buckets("acme#change#2026-03", 3) == [
        "acme#change#2026-03#0",
        "acme#change#2026-03#1",
        "acme#change#2026-03#2",
    ]
    assert keys.stray_buckets("change", "2026-03", 1) == []
    assert keys.stray_buckets("change", "2026-03", 4) == ["change#2026-03", "change#2026-03#4"]
