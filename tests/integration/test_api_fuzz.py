"""A fuzz pass over the API from its own OpenAPI schema (schemathesis + hypothesis), against a
real server: valid and invalid inputs on every operation, never a 5xx.

Bounded: a fixed number of examples per operation (reconcile, which lists every shard, gets
fewer), no example database, so the pass takes a few seconds and is the same every run.
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from engine.app import Engine
from engine.documents import ID_PATTERN, TYPES, parse_document
from engine.sample import sample_documents
from tests.integration.test_api_routes import KEY, running_api

ID_RE = re.compile(ID_PATTERN)
EXAMPLES = {"POST /v1/reconcile": 4}
DEFAULT_EXAMPLES = 12


def test_no_input_makes_the_api_fail_with_a_server_error(engine: Engine) -> None:
    for raw in sample_documents(20, seed=9):
        engine.pipeline.put(parse_document(raw))
    unlimited = Engine.build(engine.settings.replace({"serve.rate_limit_per_minute": 0}))
    with running_api(unlimited) as api:
        schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
        checked: dict[str, int] = {}
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            examples = EXAMPLES.get(label, DEFAULT_EXAMPLES)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                statuses = _fuzz(operation, mode, examples, api.url)
                checked[f"{label} {mode.value}"] = len(statuses)
                if label == "PUT /v1/{type}/{id}" and mode is GenerationMode.POSITIVE:
                    assert 200 in statuses, statuses  # fuzzed documents went through the pipeline
                server_errors = [s for s in statuses if s >= 500]
                assert not server_errors, (label, mode, statuses)
    operations = {name.rsplit(" ", 1)[0] for name in checked}
    assert {
        "GET /v1/{type}/{id}",
        "GET /v1/{type}",
        "PUT /v1/{type}/{id}",
        "DELETE /v1/{type}/{id}",
        "POST /v1/reconcile",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    } <= operations
    assert sum(checked.values()) >= 100, checked


def _fuzz(operation: Any, mode: GenerationMode, examples: int, base_url: str) -> list[int]:
    statuses: list[int] = []
    failures: list[str] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        if mode is GenerationMode.POSITIVE and isinstance(case.body, dict):
            _coherent(case)
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "x-api-key"}
        headers["x-api-key"] = KEY  # past the key check and the rate limit, into the handlers
        case.headers = headers
        response = case.call(base_url=base_url, timeout=30)
        statuses.append(response.status_code)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} → {response.status_code}")

    try:
        one()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        return statuses  # nothing to make invalid (an operation without inputs)
    assert not failures, failures
    return statuses


def _coherent(case: Any) -> None:
    """A generated document whose id and type agree with the path (so it is written, not
    refused as a mismatch): the pipeline and the stores then see the fuzzed content."""
    body, path = case.body, case.path_parameters or {}
    if "id" in path and isinstance(body.get("id"), str) and ID_RE.fullmatch(body["id"]):
        path["id"] = body["id"]
    if path.get("type") in TYPES:
        body["object_type"] = path["type"]
