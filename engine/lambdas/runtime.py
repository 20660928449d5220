"""What a Lambda container keeps between invocations, built on first use from the function's
environment (DOCSYNC_*, DOCSYNC_STREAMS_*): the engine (listener, reconcile, shard tasks), and
for the stream consumer its stream state (the processor that counts each record once per
container, the sink, the repair and history effects). DOCSYNC_DRY_RUN=1 makes every mutating
call a logged no-op. Before a handler returns, the alarms' figures are flushed."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine import cloudwatch, tracing
from engine.app import Engine
from engine.aws import AwsClients, CallCounter
from engine.logs import configure_logging
from engine.settings import Settings, StreamSettings, load_settings, log_deprecations
from engine.streams.core import StreamProcessor
from engine.streams.effects import Effects, build_processor
from engine.streams.sinks import RowSink, build_sink

_engine: Engine | None = None


def _settings() -> Settings:
    settings = load_settings()
    configure_logging("json", settings.log_level)
    log_deprecations(settings)
    return settings


def engine() -> Engine:
    global _engine  # noqa: PLW0603 - one engine per Lambda container, built on first use
    if _engine is None:
        _engine = Engine.build(_settings())
    return _engine


def use_engine(value: Engine | None) -> None:
    """For tests: a given engine (one with a call recorder, say), or None to build one from
    the environment again."""
    global _engine  # noqa: PLW0603
    _engine = value


def reset_engine() -> None:
    """For tests: forget the cached engine so new settings take effect."""
    use_engine(None)


def flush_alarm_metrics() -> None:
    """The alarms' figures of this invocation (engine/cloudwatch.py), once the engine exists,
    and its spans when tracing is on: the one call every docsync Lambda handler makes before
    it returns."""
    if _engine is not None:
        cloudwatch.flush(_engine.settings, _engine.clients)
    tracing.flush()


# -- the stream consumer's container ---------------------------------------------------------


@dataclass
class StreamRuntime:
    """What survives between invocations of one stream consumer container."""

    settings: Settings
    core: StreamProcessor  # counts each record once per container
    sink: RowSink
    clients: AwsClients | None = None  # for PutMetricData (metrics_sink); built if needed
    batch: StreamProcessor | None = None  # template of a batch's own processor
    effects: Effects = field(default_factory=lambda: Effects(None, None))
    repair_wait_s: float = 10.0

    def for_batch(self) -> StreamProcessor:
        return (self.batch or self.core).fresh()


_stream: StreamRuntime | None = None


def build_stream_runtime(
    settings: Settings, config: StreamSettings, counter: CallCounter | None = None
) -> StreamRuntime:
    clients = AwsClients(settings, counter)
    core = StreamProcessor(
        table=settings.table, window_s=config.window_s, dedupe_capacity=config.dedupe_capacity
    )
    effects = (
        Effects.build(Engine.build(settings, counter), config)
        if config.repair or config.history
        else Effects(None, None)
    )
    return StreamRuntime(
        settings,
        core,
        build_sink(settings, config, clients, producer="lambda"),
        clients,
        batch=build_processor(settings, config),
        effects=effects,
        repair_wait_s=config.lambda_repair_wait_s,
    )


def stream_runtime() -> StreamRuntime:
    global _stream  # noqa: PLW0603 - one stream runtime per Lambda container, built on first use
    if _stream is None:
        settings = _settings()
        _stream = build_stream_runtime(settings, settings.streams)
    return _stream


def use_stream_runtime(value: StreamRuntime | None) -> None:
    """For tests: a given stream runtime, or None to build one from the environment again."""
    global _stream  # noqa: PLW0603
    _stream = value
