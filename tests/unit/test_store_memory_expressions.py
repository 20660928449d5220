"""The expression evaluator of the in-memory DynamoDB (engine/store/memory/expressions.py): the
semantics the contract suite relies on, and a loud refusal of anything it does not model."""

from __future__ import annotations

from typing import Any

import pytest

from engine.store.memory.expressions import apply_update, matches, wire

ITEM = {k: wire(v) for k, v in {"pk": "a", "n": 2, "s": "é", "tags": {"x"}, "l": []}.items()}


def values(**kw: Any) -> dict[str, Any]:
    return {f":{k}": wire(v) for k, v in kw.items()}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("n = :two AND attribute_exists(pk)", True),
        ("NOT (n = :two) OR attribute_not_exists(pk)", False),
        ("n BETWEEN :one AND :two", True),
        ("s > :z", True),  # strings compare by UTF-8 bytes: é (C3 A9) sorts after z
        ("missing < :two OR missing = :two OR missing <> :two", False),
        ("n = :z", False),  # another type: false, not an error
        ("contains(tags, :x) AND size(l) = :zero AND begins_with(pk, :a)", True),
    ],
)
def test_conditions(expression: str, expected: bool) -> None:
    given = values(one=1, two=2, z="z", x="x", zero=0, a="a")
    assert matches(expression, ITEM, None, given) is expected
    assert matches(expression.replace("pk", "#k"), ITEM, {"#k": "pk"}, given) is expected


def test_no_item_has_no_attributes() -> None:
    assert matches("attribute_not_exists(pk)", None)
    assert not matches("attribute_exists(pk) OR n = :one", None, None, values(one=1))


def test_updates() -> None:
    update = "SET n = n + :one, m = if_not_exists(m, :zero) - :one, l = list_append(l, :l)"
    update += " REMOVE s ADD tags :t, c :one"
    new, updated = apply_update(update, ITEM, None, values(one=1, zero=0, l=["y"], t={"z"}))
    assert new == {k: wire(v) for k, v in {"pk": "a", "n": 3, "m": -1, "l": ["y"]}.items()} | {
        "tags": wire({"x", "z"}),
        "c": wire(1),
    }
    assert updated == {"n", "m", "l", "tags", "c"}


@pytest.mark.parametrize("expression", ["n IN (:one)", "attribute_type(n, :one)", "a.b = :one"])
def test_what_it_does_not_model_is_refused(expression: str) -> None:
    with pytest.raises((ValueError, KeyError)):
        matches(expression, ITEM, None, values(one=1))
