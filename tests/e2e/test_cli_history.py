"""`docsync history` in a subprocess: entries recorded from the stream by the consumer, with
the writer named by `--actor` or DOCSYNC_ACTOR; newest first, JSON when piped, a table with
`--format text`; exit 3 for a document with no history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine import keys
from engine.app import Engine
from engine.settings import StreamSettings
from engine.streams.consumer import LocalConsumer
from tests.e2e.conftest import Cli, write_json


def change(status: str, title: str = "Kernel patching") -> dict[str, Any]:
    return {
        "id": "CHG-H1",
        "object_type": "change",
        "title": title,
        "customer_codes": ["acme", "globex"],
        "status": status,
        "created_at": "2026-01-01T10:00:00Z",
        "modified_at": keys.iso(datetime.now(UTC) - timedelta(hours=1)),
    }


def consume(engine: Engine, tmp_path: Path) -> dict[str, Any]:
    conf = StreamSettings(analytics_dir=str(tmp_path / "rows"), lease_ttl_s=3, idle_wait_s=0.05)
    return LocalConsumer(engine.settings, conf, engine.clients).run(drain=True).as_dict()


def test_history_of_a_document_written_by_named_actors(
    cli: Cli, ready: Engine, tmp_path: Path
) -> None:
    cli("put", "--type", "change", write_json(tmp_path / "a.json", change("draft")),
        "--actor", "alice")  # fmt: skip
    cli("put", "--type", "change", write_json(tmp_path / "b.json", change("approved")),
        env={"DOCSYNC_ACTOR": "bob"})  # fmt: skip
    cli("delete", "--type", "change", "CHG-H1", "--actor", "carol")
    consume(ready, tmp_path)

    shown = cli("history", "--type", "change", "CHG-H1").json()  # piped: JSON
    assert (shown["type"], shown["id"]) == ("change", "CHG-H1")
    entries = shown["items"]
    got = [(e["version"], e["change"], e.get("status_from"), e.get("status_to"), e.get("actor"))
           for e in entries]  # fmt: skip
    assert got == [
        (3, "delete", "approved", None, "carol"),
        (2, "update", "draft", "approved", "bob"),
        (1, "create", None, "draft", "alice"),
    ]
    assert all(e["type"] == "change" and e["id"] == "CHG-H1" for e in entries)
    assert entries[2]["customers"] == ["acme", "globex"] and entries[2]["sync_source"] == "write"
    assert "pk" not in entries[0] and "expires_at" not in entries[0]

    newest = cli("history", "--type", "change", "CHG-H1", "--limit", "1").json()["items"]
    assert [e["version"] for e in newest] == [3]

    wide = {"COLUMNS": "200"}
    text = cli("history", "--type", "change", "CHG-H1", "--format", "text", env=wide).stdout
    assert "draft → approved" in text and "carol" in text and "version" in text

    missing = cli("history", "--type", "change", "CHG-NONE", expect=3)
    assert "no history" in missing.stderr
    cli("history", "--type", "change", "CHG-H1", "--limit", "0", expect=2)
    unversioned = cli("get", "--type", "change", "CHG-H1", "--version", "1", expect=3)
    assert "bucket versioning was off" in unversioned.stderr

    stats = cli("stats", "--analytics-dir", str(tmp_path / "rows")).json()["history"]
    assert stats["changes_per_document"]["change"] == {
        "documents": 1,
        "changes": 3,
        "median": 3,
        "max": 3,
    }
    assert stats["transitions"]["change"]["draft→approved"]["count"] == 1
    assert stats["time_in_status"]["change"]["approved"]["count"] == 1  # ended by the delete


def test_get_version_reads_that_version_back_from_s3(cli: Cli, tmp_path: Path) -> None:
    from engine.infra import Infrastructure
    from tests.e2e.conftest import engine_settings

    versioned = {"DOCSYNC_INIT_VERSIONING": "1"}
    cli("init", env=versioned)
    first, second = change("draft"), change("approved", title="Kernel patching, rescheduled")
    cli("put", "--type", "change", write_json(tmp_path / "a.json", first), env=versioned)
    cli("put", "--type", "change", write_json(tmp_path / "b.json", second), env=versioned)
    settings = engine_settings(cli.endpoint).replace({"init.versioning": True})
    engine = Engine.build(settings)
    Infrastructure(settings, engine.clients).init()  # idempotent: all exists
    consume(engine, tmp_path)

    entries = cli("history", "--type", "change", "CHG-H1").json()["items"]
    assert all(e.get("s3_version_id") for e in entries)
    assert entries[0]["s3_version_id"] != entries[1]["s3_version_id"]
    old = cli("get", "--type", "change", "CHG-H1", "--version", "1").json()
    assert old["status"] == "draft" and old["title"] == "Kernel patching"
    now = cli("get", "--type", "change", "CHG-H1").json()
    assert now["status"] == "approved"
    cli("get", "--type", "change", "CHG-H1", "--version", "9", expect=3)
