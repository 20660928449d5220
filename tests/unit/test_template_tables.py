"""One definition of the tables: what `docsync init` passes to CreateTable (engine/infra.py)
and what deploy/template.yaml declares must agree, so an index added to one and not the other
fails here rather than in production (a reader querying an index the stack never built)."""

from __future__ import annotations

from typing import Any

import pytest
from moto import mock_aws

from engine.aws import AwsClients
from engine.infra import Infrastructure
from engine.settings import load_settings
from tests.template import load_template


def created_tables() -> dict[str, dict[str, Any]]:
    """CreateTable parameters of `docsync init`, by table setting name, recorded at the
    botocore seam (moto in-process: a unit test)."""
    calls: dict[str, dict[str, Any]] = {}

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "CreateTable":
            calls[params["TableName"]] = dict(params)

    with mock_aws():
        settings = load_settings(
            None, table="t-cache", leases_table="t-leases", history_table="t-history"
        )
        clients = AwsClients(settings)
        clients.dynamodb.meta.events.register("provide-client-params.dynamodb.*", record)
        Infrastructure(settings, clients).init()
    return {
        "table": calls["t-cache"],
        "leases_table": calls["t-leases"],
        "history_table": calls["t-history"],
    }


def _gsis(indexes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "IndexName": g["IndexName"],
                "KeySchema": list(g["KeySchema"]),
                "Projection": {
                    "ProjectionType": g["Projection"]["ProjectionType"],
                    "NonKeyAttributes": sorted(g["Projection"].get("NonKeyAttributes", [])),
                },
            }
            for g in indexes
        ),
        key=lambda g: str(g["IndexName"]),
    )


def _shape(props: dict[str, Any]) -> dict[str, Any]:
    """The parts that must agree: keys, attribute types, GSIs, billing, stream view."""
    stream = props.get("StreamSpecification") or {}
    return {
        "KeySchema": [dict(k) for k in props["KeySchema"]],
        "AttributeDefinitions": sorted(
            (dict(a) for a in props["AttributeDefinitions"]), key=lambda a: a["AttributeName"]
        ),
        "GlobalSecondaryIndexes": _gsis(props.get("GlobalSecondaryIndexes", [])),
        "BillingMode": props["BillingMode"],
        "StreamViewType": stream.get("StreamViewType"),
    }


@pytest.fixture(scope="module")
def init_tables() -> dict[str, dict[str, Any]]:
    return created_tables()


@pytest.mark.parametrize(
    ("logical", "setting"),
    [("CacheTable", "table"), ("LeasesTable", "leases_table"), ("HistoryTable", "history_table")],
)
def test_template_table_matches_what_init_creates(
    init_tables: dict[str, dict[str, Any]], logical: str, setting: str
) -> None:
    props = load_template()["Resources"][logical]["Properties"]
    assert _shape(props) == _shape(init_tables[setting])


def test_cache_table_extras_init_sets_apart_are_in_the_template() -> None:
    """TTL is a separate call in init (UpdateTimeToLive on expires_at), and the stream is on."""
    props = load_template()["Resources"]["CacheTable"]["Properties"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    history = load_template()["Resources"]["HistoryTable"]["Properties"]
    assert history["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    for name in ("CacheTable", "LeasesTable", "HistoryTable"):
        table = load_template()["Resources"][name]
        assert table["Properties"]["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True
        }
        assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True}
        assert table["Properties"]["DeletionProtectionEnabled"] is True
        assert table["DeletionPolicy"] == "Retain"


def test_the_comparison_sees_a_drifted_index(init_tables: dict[str, dict[str, Any]]) -> None:
    """The check can fail: one projected attribute less, and the shapes differ."""
    props = load_template()["Resources"]["CacheTable"]["Properties"]
    drifted = {
        **props,
        "GlobalSecondaryIndexes": [dict(g) for g in props["GlobalSecondaryIndexes"]],
    }
    key_index = next(g for g in drifted["GlobalSecondaryIndexes"] if g["IndexName"] == "key-index")
    key_index["Projection"] = {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": list(key_index["Projection"]["NonKeyAttributes"])[1:],
    }
    assert _shape(drifted) != _shape(init_tables["table"])
