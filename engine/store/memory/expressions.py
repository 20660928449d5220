"""A small evaluator for the DynamoDB expressions the engine builds (for `memory/cache.py`).

Why not reuse one: `boto3.dynamodb.conditions` only *builds* expressions, and moto's parser
is a test dependency the engine must not import at run time. So this covers exactly the
grammar the stores write: conditions (`=`, `<>`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `AND`, `OR`,
`NOT`, parentheses, `attribute_exists`, `attribute_not_exists`, `contains`, `begins_with`,
`size`) and updates (`SET` with `+`/`-`, `if_not_exists`, `list_append`; `REMOVE`; `ADD` of
numbers and sets), over top-level attributes (no nested paths). Anything else is a
`ValueError` (DynamoDB's ValidationException), so a new expression fails loudly here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

Item = dict[str, Any]  # an item in DynamoDB's wire format: {"attr": {"S": "x"}, ...}
_de, _se = TypeDeserializer(), TypeSerializer()
_TOKEN = re.compile(r"\s*(<>|<=|>=|[=<>(),+\-]|[#:]?[A-Za-z_][A-Za-z0-9_]*)")
_MISSING = object()
_COMPARE = {"=", "<>", "<", "<=", ">", ">="}


def plain(value: dict[str, Any]) -> Any:
    return _de.deserialize(value)  # type: ignore[arg-type]


def wire(value: Any) -> dict[str, Any]:
    return dict(_se.serialize(value))


class _Plain(Mapping[str, Any]):
    """A wire-format item whose attributes become Python values only when an expression
    reads them (a query evaluates its key condition on every item of the table)."""

    def __init__(self, item: Item) -> None:
        self._item = item

    def __getitem__(self, name: str) -> Any:
        return plain(self._item[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._item)

    def __len__(self) -> int:
        return len(self._item)


@lru_cache(maxsize=256)
def _tokens(text: str) -> tuple[str, ...]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"cannot parse expression at {text[pos:]!r}")
        out.append(match.group(1))
        pos = match.end()
    return tuple(out)


class _Parser:
    def __init__(self, text: str, names: dict[str, str] | None, values: Item | None) -> None:
        self.toks = _tokens(text)
        self.pos = 0
        self.names = names or {}
        self.values = values or {}

    def peek(self) -> str | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok.upper() != expected):
            raise ValueError(f"expected {expected or 'a token'}, found {tok!r}")
        self.pos += 1
        return tok

    def path(self) -> str:
        tok = self.take()
        if tok.startswith("#"):
            return self.names[tok]
        if tok.startswith(":") or not re.match(r"[A-Za-z_]", tok):
            raise ValueError(f"expected an attribute, found {tok!r}")
        return tok

    # -- operands: ("path", name) | ("value", python) | ("size", name) | ("fn", ...) ---------

    def operand(self) -> tuple[str, Any]:
        tok = self.peek() or ""
        if tok.startswith(":"):
            self.take()
            return ("value", plain(self.values[tok]))
        low = tok.lower()
        if low in {"size", "if_not_exists", "list_append"} and self._call_follows():
            self.take()
            self.take("(")
            if low == "size":
                name = self.path()
                self.take(")")
                return ("size", name)
            first = self.path() if low == "if_not_exists" else self.operand()
            self.take(",")
            second = self.operand()
            self.take(")")
            return (low, (first, second))
        return ("path", self.path())

    def _call_follows(self) -> bool:
        return self.pos + 1 < len(self.toks) and self.toks[self.pos + 1] == "("


def _resolve(op: tuple[str, Any], item: Mapping[str, Any]) -> Any:
    kind, arg = op
    if kind == "value":
        return arg
    if kind == "path":
        return item.get(arg, _MISSING)
    if kind == "size":
        value = item.get(arg, _MISSING)
        return _MISSING if value is _MISSING else Decimal(len(value))
    if kind == "if_not_exists":
        found = item.get(arg[0], _MISSING)
        return _resolve(arg[1], item) if found is _MISSING else found
    if kind == "list_append":
        return list(_resolve(arg[0], item)) + list(_resolve(arg[1], item))
    raise ValueError(kind)


def _comparable(a: Any, b: Any) -> tuple[Any, Any] | None:
    """DynamoDB compares numbers as numbers and strings by their UTF-8 bytes; anything else
    (another type, a missing attribute) makes the comparison false."""
    if a is _MISSING or b is _MISSING:
        return None
    if isinstance(a, str) and isinstance(b, str):
        return a.encode(), b.encode()
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a, b
    if type(a) is type(b):
        return a, b
    return None


def _compare(op: str, a: Any, b: Any) -> bool:
    pair = _comparable(a, b)
    if pair is None:
        return False
    x, y = pair
    if op == "=":
        return bool(x == y)
    if op == "<>":
        return bool(x != y)
    if not isinstance(x, bytes | Decimal):
        raise ValueError(f"{op} on a {type(x).__name__}")
    return bool({"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op])


class _Condition(_Parser):
    def evaluate(self, item: Mapping[str, Any]) -> bool:
        self.item = item
        result = self.or_()
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()!r}")
        return result

    def or_(self) -> bool:
        result = self.and_()
        while (self.peek() or "").upper() == "OR":
            self.take()
            right = self.and_()
            result = result or right
        return result

    def and_(self) -> bool:
        result = self.not_()
        while (self.peek() or "").upper() == "AND":
            self.take()
            right = self.not_()
            result = result and right
        return result

    def not_(self) -> bool:
        if (self.peek() or "").upper() == "NOT":
            self.take()
            return not self.not_()
        return self.primary()

    def primary(self) -> bool:
        tok = self.peek() or ""
        if tok == "(":
            self.take()
            result = self.or_()
            self.take(")")
            return result
        low = tok.lower()
        functions = {"attribute_exists", "attribute_not_exists", "contains", "begins_with"}
        if low in functions and self._call_follows():
            self.take()
            self.take("(")
            name = self.path()
            found = self.item.get(name, _MISSING)
            if low.startswith("attribute_"):
                self.take(")")
                return (found is not _MISSING) == (low == "attribute_exists")
            self.take(",")
            arg = _resolve(self.operand(), self.item)
            self.take(")")
            if found is _MISSING:
                return False
            if low == "begins_with":
                return isinstance(found, str) and found.startswith(arg)
            return arg in found
        left = _resolve(self.operand(), self.item)
        op = self.take()
        if op.upper() == "BETWEEN":
            low_v = _resolve(self.operand(), self.item)
            self.take("AND")
            high_v = _resolve(self.operand(), self.item)
            return _compare(">=", left, low_v) and _compare("<=", left, high_v)
        if op not in _COMPARE:
            raise ValueError(f"unsupported operator {op!r}")
        return _compare(op, left, _resolve(self.operand(), self.item))


def matches(
    expression: str | None,
    item: Item | None,
    names: dict[str, str] | None = None,
    values: Item | None = None,
) -> bool:
    """Whether the wire-format `item` (None: no item) satisfies the condition."""
    if not expression:
        return True
    return _Condition(expression, names, values).evaluate(_Plain(item or {}))


def required_value(
    expression: str, attribute: str, names: dict[str, str] | None, values: Item | None
) -> dict[str, Any] | None:
    """The value `expression` requires `attribute` to equal (`attr = :v`), if it says so: a
    key condition's partition, so a query reads one partition, not the whole table."""
    toks = _tokens(expression)
    for i in range(len(toks) - 2):
        name = (names or {}).get(toks[i], toks[i])
        if name == attribute and toks[i + 1] == "=" and toks[i + 2].startswith(":"):
            value: dict[str, Any] | None = (values or {}).get(toks[i + 2])
            return value
    return None


def apply_update(
    expression: str,
    item: Item,
    names: dict[str, str] | None = None,
    values: Item | None = None,
) -> tuple[Item, set[str]]:
    """The item after the update (a new dict), and the attributes SET or ADDed."""
    parser = _Parser(expression, names, values)
    current = {k: plain(v) for k, v in item.items()}
    result = dict(item)
    updated: set[str] = set()
    while parser.peek() is not None:
        clause = parser.take().upper()
        while True:
            name = parser.path()
            if clause == "SET":
                parser.take("=")
                value = _resolve(parser.operand(), current)
                if parser.peek() in {"+", "-"}:
                    sign = parser.take()
                    other = _resolve(parser.operand(), current)
                    value = value + other if sign == "+" else value - other
                if value is _MISSING:
                    raise ValueError(f"SET {name}: the operand's attribute does not exist")
                result[name] = wire(value)
                updated.add(name)
            elif clause == "REMOVE":
                result.pop(name, None)
            elif clause == "ADD":
                delta = _resolve(parser.operand(), current)
                old = current.get(name, _MISSING)
                if old is _MISSING:
                    new = delta
                elif isinstance(old, set):
                    new = old | delta
                else:
                    new = old + delta
                result[name] = wire(new)
                updated.add(name)
            else:
                raise ValueError(f"unsupported update clause {clause!r}")
            if parser.peek() != ",":
                break
            parser.take(",")
    return result, updated
