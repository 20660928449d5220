"""Spans made whole where they end and handed to the span processors (engine/tracing.py's
fast path): the SDK's `Span` object costs more than the cache-hit get it would trace."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Mapping
from typing import Any


class Sink:
    """Spans made whole where they end, handed straight to the span processors.

    Hand-written fast path: the SDK's `Span` costs ~12 µs to open and close (a lock, attribute
    validation, `on_start` for every processor, a `ReadableSpan` copy at the end), and a
    cache-hit get makes two of them. docsync's spans take no events or links and learn their
    attributes up front (an AWS call's at its end), so each is built once as the
    `ReadableSpan` the exporters read. The SDK still decides the rest: the provider's sampler
    (`OTEL_TRACES_SAMPLER`), its id generator and resource, the span limits from `OTEL_*`,
    and the processors that batch and export. The processors see finished spans only
    (`on_end`), which is all the SDK's batch and simple processors use. While an engine
    operation runs, its context is current as a non-recording span, so the AWS calls and
    inner operations inside it are its children."""

    def __init__(self, provider: Any, processors: tuple[Any, ...]) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            SpanKind,
            Status,
            StatusCode,
            TraceFlags,
        )

        self._sampler, self._ids, self._resource = (
            provider.sampler,
            provider.id_generator,
            provider.resource,
        )
        self._processors = processors
        # a `parentbased_*` sampler (the default) samples a local parent's child as the
        # parent was: decided here without a call to it
        sampler_name = os.environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on")
        sampler_name = sampler_name.strip().lower()
        self._follow_parent = sampler_name.startswith("parentbased_")
        # ... and `always_on` (the default's root sampler) samples every root
        self._root_always = sampler_name in ("parentbased_always_on", "always_on")
        self._scope = InstrumentationScope("docsync")
        limits = SpanLimits()  # OTEL_SPAN_ATTRIBUTE_* and OTEL_ATTRIBUTE_* from the environment
        self._max_attributes: Any = limits.max_span_attributes
        if self._max_attributes is None:
            self._max_attributes = sys.maxsize
        self._max_length = limits.max_span_attribute_length
        self._current, self._in_context = trace.get_current_span, trace.set_span_in_context
        self._span_context, self._non_recording = SpanContext, NonRecordingSpan
        self._readable = ReadableSpan
        self._flags = (TraceFlags(TraceFlags.DEFAULT), TraceFlags(TraceFlags.SAMPLED))
        self._unset = Status(StatusCode.UNSET)
        self._error = functools.partial(Status, StatusCode.ERROR)
        self.attach, self.detach = _context().attach, _context().detach
        self.internal, self.client = SpanKind.INTERNAL, SpanKind.CLIENT

    def open(self, name: str, kind: Any, attributes: dict[str, Any]) -> Opened:
        """A span's identity under the current one, as the provider's sampler decides."""
        parent: Any = self._current().get_span_context()
        if parent.is_valid and self._follow_parent and not parent.is_remote:
            flags = parent.trace_flags
            context = self._span_context(
                parent.trace_id, self._ids.generate_span_id(), False, flags, parent.trace_state
            )
            return Opened(self, name, kind, context, parent, attributes if flags.sampled else None)
        if parent.is_valid:
            trace_id = parent.trace_id
        else:
            trace_id, parent = self._ids.generate_trace_id(), None
            if self._root_always:
                context = self._span_context(
                    trace_id, self._ids.generate_span_id(), False, self._flags[1], None
                )
                return Opened(self, name, kind, context, None, attributes)
        decision = self._sampler.should_sample(None, trace_id, name, kind, attributes)
        context = self._span_context(
            trace_id,
            self._ids.generate_span_id(),
            False,
            self._flags[decision.decision.is_sampled()],
            decision.trace_state,
        )
        recorded = decision.decision.is_recording()
        return Opened(self, name, kind, context, parent, decision.attributes if recorded else None)

    def current(self, opened: Opened) -> Any:
        """The context to attach while the operation runs: its span as the parent of
        what it calls."""
        return self._in_context(self._non_recording(opened.context))

    def close(self, opened: Opened, start_ns: int, error: str | None = None) -> None:
        attributes = opened.attributes
        if attributes is None:  # not recorded
            return
        if error is not None or opened.extra:
            attributes = {**attributes, **opened.extra}
            if error is not None:
                attributes["error.type"] = error
        if len(attributes) > self._max_attributes or self._max_length is not None:
            attributes = self._limited(attributes)  # only where OTEL_* sets or meets a limit
        span = self._readable(
            opened.name,
            opened.context,
            opened.parent,
            self._resource,
            attributes,
            kind=opened.kind,
            status=self._unset if error is None else self._error(error),
            start_time=start_ns,
            end_time=time.time_ns(),
            instrumentation_scope=self._scope,
        )
        for processor in self._processors:
            processor.on_end(span)

    def _limited(self, attributes: Mapping[str, Any]) -> Any:
        """The span limits, applied by the SDK's own attribute container."""
        from opentelemetry.attributes import BoundedAttributes

        return BoundedAttributes(
            self._max_attributes, attributes, immutable=True, max_value_len=self._max_length
        )


class Opened:
    """A span begun: its identity, and its attributes (None when the sampler dropped it)."""

    __slots__ = ("attributes", "context", "extra", "kind", "name", "parent", "sink")

    def __init__(
        self,
        sink: Sink,
        name: str,
        kind: Any,
        context: Any,
        parent: Any,
        attributes: Mapping[str, Any] | None,
    ) -> None:
        self.sink, self.name, self.kind = sink, name, kind
        self.context, self.parent, self.attributes = context, parent, attributes
        self.extra: dict[str, Any] = {}

    def set_attribute(self, key: str, value: Any) -> None:
        """An attribute learnt while the operation runs."""
        self.extra[key] = value


def _context() -> Any:
    from opentelemetry import context

    return context
