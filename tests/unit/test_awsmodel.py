"""The overlay on botocore's DynamoDB model (engine/awsmodel.py): `ConsumedCapacity` taken
as it comes parses to exactly what botocore's own walk of the shape gives, for every form
DynamoDB answers with (TOTAL, INDEXES; one table or a list; indexes of both kinds)."""

from __future__ import annotations

import json
from typing import Any

from botocore import parsers
from botocore.loaders import Loader
from botocore.model import ServiceModel
from hypothesis import given
from hypothesis import strategies as st

from engine.awsmodel import OverlaidLoader
from tests.unit._hyp import FAST

PLAIN = ServiceModel(Loader().load_service_model("dynamodb", "service-2"), "dynamodb")
OVERLAID = ServiceModel(OverlaidLoader().load_service_model("dynamodb", "service-2"), "dynamodb")

units = st.one_of(st.floats(min_value=0, max_value=1e6, allow_nan=False), st.integers(0, 10**6))
capacity = st.fixed_dictionaries(
    {},
    optional={"CapacityUnits": units, "ReadCapacityUnits": units, "WriteCapacityUnits": units},
)
index_names = st.text(alphabet="abcXYZ019._-", min_size=3, max_size=12)
consumed = st.fixed_dictionaries(
    {"TableName": st.text(alphabet="abcXYZ019._-", min_size=3, max_size=20)},
    optional={
        "CapacityUnits": units,
        "ReadCapacityUnits": units,
        "WriteCapacityUnits": units,
        "Table": capacity,
        "GlobalSecondaryIndexes": st.dictionaries(index_names, capacity, max_size=3),
        "LocalSecondaryIndexes": st.dictionaries(index_names, capacity, max_size=3),
    },
)


def parse(model: ServiceModel, operation: str, answer: dict[str, Any]) -> Any:
    response = {"body": json.dumps(answer).encode(), "headers": {}, "status_code": 200}
    shape = model.operation_model(operation).output_shape
    assert shape is not None
    parsed = parsers.create_parser("json").parse(response, shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


@FAST
@given(consumed=consumed)
def test_one_table_s_capacity_parses_the_same_taken_as_it_comes(consumed: dict[str, Any]) -> None:
    answer = {"Item": {"pk": {"S": "change#1"}, "n": {"N": "2"}}, "ConsumedCapacity": consumed}
    assert parse(OVERLAID, "GetItem", answer) == parse(PLAIN, "GetItem", answer)
    assert parse(OVERLAID, "GetItem", answer)["ConsumedCapacity"] == consumed


@FAST
@given(consumed=st.lists(consumed, max_size=4))
def test_a_list_of_tables_capacities_parses_the_same(consumed: list[dict[str, Any]]) -> None:
    answer = {"ConsumedCapacity": consumed, "ItemCollectionMetrics": {}}
    for operation in ("TransactWriteItems", "BatchWriteItem"):
        assert parse(OVERLAID, operation, answer) == parse(PLAIN, operation, answer)


def test_only_the_named_structure_is_changed() -> None:
    plain = Loader().load_service_model("dynamodb", "service-2")["shapes"]
    overlaid = OverlaidLoader().load_service_model("dynamodb", "service-2")["shapes"]
    changed = {name for name in plain if plain[name] != overlaid[name]}
    assert changed == {"ConsumedCapacity"}
    assert overlaid["ConsumedCapacity"]["document"] is True
    s3 = OverlaidLoader().load_service_model("s3", "service-2")["shapes"]
    assert s3 == Loader().load_service_model("s3", "service-2")["shapes"]
