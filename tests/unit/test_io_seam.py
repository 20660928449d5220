"""Issue 11's "one I/O seam": no boto3 client call outside engine/store/ and the client factory.

The source tree is read with `ast`: an attribute named like an operation of a service docsync
uses (botocore's own models), taken on something that is a client (a `clients.s3`, a
`client("sts")`, an `_ddb`, or a name bound to one in the same function), is a call that
bypasses the stores, whether it is called there or handed to a wrapper.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "reconciler")
SEAM = ("engine/store/", "engine/aws.py")
SERVICES = ("s3", "dynamodb", "dynamodbstreams", "sqs", "sts", "kinesis", "cloudwatch")
CLIENT_METHODS = {
    "get_waiter",
    "get_paginator",
    "generate_presigned_url",
    "generate_presigned_post",
}
CLIENT_NAMES = {*SERVICES, "ddb", "cw", "streams", "client"}


@cache
def operations() -> frozenset[str]:
    session = botocore.session.get_session()
    names = set(CLIENT_METHODS)
    for service in SERVICES:
        names.update(xform_name(op) for op in session.get_service_model(service).operation_names)
    return frozenset(names)


def _clientish(node: ast.expr, bound: set[str]) -> bool:
    if isinstance(node, ast.Call):  # clients.client("sts"), boto3.client("s3")
        func = node.func
        return isinstance(func, ast.Attribute) and func.attr == "client"
    if isinstance(node, ast.Name) and node.id in bound:
        return True
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    name = name.strip("_").lower()
    return name in CLIENT_NAMES or name.endswith("_client")


class _Finder(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.found: list[str] = []
        self.bound: list[set[str]] = [set()]

    def _scope(self, node: ast.AST) -> None:
        self.bound.append(set())
        self.generic_visit(node)
        self.bound.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scope

    def visit_Assign(self, node: ast.Assign) -> None:
        if _clientish(node.value, self.bound[-1]):
            self.bound[-1].update(t.id for t in node.targets if isinstance(t, ast.Name))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in operations() and _clientish(node.value, set().union(*self.bound)):
            self.found.append(f"{self.path}:{node.lineno}: {ast.unparse(node)}")
        self.generic_visit(node)


def client_calls(root: Path = ROOT) -> dict[str, list[str]]:
    """Module path → its client calls outside the seam."""
    out: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(SEAM):
                continue
            finder = _Finder(rel)
            finder.visit(ast.parse(path.read_text(), rel))
            if finder.found:
                out[rel] = finder.found
    return out


def test_no_client_call_outside_the_stores() -> None:
    outside = [line for lines in client_calls().values() for line in lines]
    assert not outside, "boto3 client calls outside engine/store/:\n" + "\n".join(outside)


def test_the_finder_sees_each_way_of_calling_a_client(tmp_path: Path) -> None:
    engine = tmp_path / "engine"
    (engine / "store").mkdir(parents=True)
    (tmp_path / "reconciler").mkdir()
    (engine / "a.py").write_text(
        "def f(self, clients):\n"
        "    clients.s3.head_bucket(Bucket='b')\n"
        "    kinesis = clients.client('kinesis')\n"
        "    kinesis.describe_stream_summary(StreamName='s')\n"
        "    self._call('x', self._ddb.get_item, Key={})\n"
        "    self.store.get_item('change', 'a')\n"  # a store's method, not a client's
        "    kinesis_summary = {}.get('x')\n"
    )
    (engine / "store" / "s.py").write_text("def g(self):\n    self._ddb.put_item(Item={})\n")
    found = client_calls(tmp_path)
    assert list(found) == ["engine/a.py"]
    assert [line.split(": ", 1)[1] for line in found["engine/a.py"]] == [
        "clients.s3.head_bucket",
        "kinesis.describe_stream_summary",
        "self._ddb.get_item",
    ]
