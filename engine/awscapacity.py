"""`ReturnConsumedCapacity` on every DynamoDB call that takes it (seed 003 §7.2), written
into the serialized request.

Why not a parameter added at `before-parameter-build`: botocore then validates and serializes
it on every call: 7,000 to 12,000 instructions of a cache-hit get (valgrind, side by side),
a fifth of what the metrics cost. DynamoDB's protocol is JSON, which botocore's serializer
writes with `json.dumps`, ending in `}`; the constant is appended as `json.dumps` writes a
last member, so the bytes sent are the ones botocore writes for the parameter
(tests/unit/test_awscapacity.py compares them). A client whose serializer is not JSON (a
future protocol) gets the parameter instead, and a body that does not end in `}` is
serialized again with it rather than cut.

INDEXES is asked only where an index can be charged (a write; a query or scan of an index):
a read of the table alone gets the same units from TOTAL, in a smaller answer to parse.
"""

from __future__ import annotations

from typing import Any

_PARAMETER = "ReturnConsumedCapacity"
_HOOK_ID = "docsync-consumed-capacity"  # the fallback's handler, replaced when asked again
_TABLE_READS = frozenset({"GetItem", "BatchGetItem", "TransactGetItems", "Query", "Scan"})
_TAILS = {mode: f', "{_PARAMETER}": "{mode}"}}'.encode() for mode in ("TOTAL", "INDEXES")}
# the last member as json.dumps writes it (its separators, then the closing brace)


class CapacityModes:
    """The mode each operation is asked with, without and with an `IndexName` (None where
    its model takes none), learnt once per operation model."""

    def __init__(self, setting: str) -> None:
        self.setting = setting
        self._known: dict[Any, tuple[str | None, str | None]] = {}

    def of(self, params: dict[str, Any], model: Any) -> str | None:
        """The mode to ask `model` with these `params`, or None (asked already, or not at all)."""
        known = self._known.get(model) or self._learn(model)
        mode = known[1] if "IndexName" in params else known[0]
        return None if mode is None or _PARAMETER in params else mode

    def _learn(self, model: Any) -> tuple[str | None, str | None]:
        shape, setting = model.input_shape, self.setting
        known: tuple[str | None, str | None]
        if setting == "NONE" or shape is None or _PARAMETER not in shape.members:
            known = (None, None)
        elif setting == "INDEXES" and model.name in _TABLE_READS:
            known = ("TOTAL", setting)
        else:
            known = (setting, setting)
        self._known[model] = known
        return known

    def add_parameter(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        """The `before-parameter-build` hook, for a serializer this module cannot append to."""
        mode = self.of(params, model)
        if mode is not None:
            params[_PARAMETER] = mode


class AppendingSerializer:
    """botocore's serializer (with its validation) for the caller's parameters, then the
    mode appended to the JSON body."""

    def __init__(self, inner: Any, modes: CapacityModes) -> None:
        self._inner = inner
        self.modes = modes

    def serialize_to_request(self, parameters: dict[str, Any], operation_model: Any) -> Any:
        request = self._inner.serialize_to_request(parameters, operation_model)
        mode = self.modes.of(parameters, operation_model)
        if mode is None:
            return request
        body: bytes = request["body"]
        if body[-1:] != b"}":  # not the JSON object expected (a botocore of another day)
            return self._inner.serialize_to_request(
                {**parameters, _PARAMETER: mode}, operation_model
            )
        tail = _TAILS[mode]
        request["body"] = body[:-1] + (tail if len(body) > 2 else tail[2:])  # b"{}": alone
        return request

    def __getattr__(self, name: str) -> Any:  # anything else botocore may ask of it
        return getattr(self._inner, name)


def ask(client: Any, setting: str) -> None:
    """Ask `client`'s DynamoDB calls for their consumed capacity in mode `setting` (INDEXES,
    TOTAL; NONE asks nothing). Other services' clients are left as they are. Asked again,
    the last setting wins: a request never carries the member twice."""
    service_model = client.meta.service_model
    if service_model.service_name != "dynamodb":
        return
    modes = CapacityModes(setting)
    serializer = getattr(client, "_serializer", None)
    if isinstance(serializer, AppendingSerializer):
        serializer.modes = modes
        return
    events, event = client.meta.events, "before-parameter-build.dynamodb.*"
    events.unregister(event, unique_id=_HOOK_ID)
    if setting == "NONE":
        return
    if service_model.protocol == "json" and hasattr(serializer, "serialize_to_request"):
        client._serializer = AppendingSerializer(serializer, modes)
    else:
        events.register(event, modes.add_parameter, unique_id=_HOOK_ID)
