"""Deployed functions name handler paths: the new ones (engine/lambdas/) and those of earlier
releases must resolve to the same callables, and the template names only existing ones."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.template import resources

FUNCTION = "AWS::Lambda::Function"

# old path → new path
ALIASES = {
    "engine.events.handlers.sqs_handler": "engine.lambdas.listener.sqs_handler",
    "engine.events.handlers.s3_handler": "engine.lambdas.listener.s3_handler",
    "engine.events.handlers.engine": "engine.lambdas.runtime.engine",
    "engine.events.handlers.reset_engine": "engine.lambdas.runtime.reset_engine",
    "engine.events.handlers.flush_alarm_metrics": "engine.lambdas.runtime.flush_alarm_metrics",
    "engine.streams.lambda_handler.stream_handler": "engine.lambdas.stream.stream_handler",
    "engine.streams.lambda_handler.kinesis_handler": "engine.lambdas.stream.kinesis_handler",
    "reconciler.tasks.sqs_handler": "engine.lambdas.reconcile_tasks.sqs_handler",
}


def resolve(path: str) -> Any:
    """As the Lambda runtime does: import the module, then getattr the function."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("old", "new"), sorted(ALIASES.items()))
def test_an_old_handler_path_is_the_new_callable(old: str, new: str) -> None:
    handler = resolve(new)
    assert callable(handler)
    assert resolve(old) is handler


def test_an_unknown_name_on_the_lazy_alias_module_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        resolve("reconciler.tasks.no_such_handler")


def test_the_template_names_the_new_paths_and_each_resolves() -> None:
    handlers = [f["Properties"]["Handler"] for f in resources(FUNCTION).values()]
    assert handlers and all(h.startswith("engine.lambdas.") for h in handlers)
    for handler in handlers:
        assert callable(resolve(handler)), handler
