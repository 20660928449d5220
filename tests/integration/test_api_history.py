"""GET /v1/{type}/{id}/history end to end: writes through the HTTP API with an API key, the
consumer records them from the stream, the history names the key by its fingerprint only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.app import Engine
from engine.serve.apikeys import ApiKeys
from engine.settings import StreamSettings
from engine.streams.consumer import LocalConsumer
from tests.integration.test_api_routes import KEY, OTHER_KEY, doc, running_api


def scan(engine: Engine, table: str) -> list[dict[str, Any]]:
    return engine.clients.dynamodb.scan(TableName=table)["Items"]


def test_history_route_records_the_api_key_fingerprint_never_the_key(
    engine: Engine, tmp_path: Path
) -> None:
    with running_api(engine) as api:
        with api.client(KEY) as c:
            assert c.put("/v1/change/CHG-1", json=doc(status="draft")).status_code == 200
        with api.client(OTHER_KEY) as c:
            assert c.put("/v1/change/CHG-1", json=doc(status="approved")).status_code == 200
            assert c.delete("/v1/change/CHG-1").status_code == 200
        conf = StreamSettings(analytics_dir=str(tmp_path / "rows"), lease_ttl_s=3)
        LocalConsumer(engine.settings, conf, engine.clients).run(drain=True)
        with api.client(KEY) as c:
            response = c.get("/v1/change/CHG-1/history")
            limited = c.get("/v1/change/CHG-1/history", params={"limit": 1})
            missing = c.get("/v1/change/CHG-NONE/history")
            bad = c.get("/v1/change/CHG-1/history", params={"limit": 0})
        with api.client(None) as c:
            anonymous = c.get("/v1/change/CHG-1/history")
    assert response.status_code == 200, response.text
    body = response.json()
    keys = ApiKeys.of([KEY, OTHER_KEY])
    first, other = f"apikey:{keys.identify(KEY)}", f"apikey:{keys.identify(OTHER_KEY)}"
    assert [(e["version"], e["change"], e.get("actor")) for e in body["items"]] == [
        (3, "delete", other),
        (2, "update", other),
        (1, "create", first),
    ]
    assert (
        body["items"][1]["status_from"] == "draft" and body["items"][1]["status_to"] == "approved"
    )
    assert [e["version"] for e in limited.json()["items"]] == [3]
    assert missing.status_code == 404 and bad.status_code == 422
    assert anonymous.status_code == 401
    stored = str(scan(engine, engine.settings.history_table)) + str(
        scan(engine, engine.settings.table)
    )
    for secret in (KEY, OTHER_KEY):
        assert secret not in response.text and secret not in stored
