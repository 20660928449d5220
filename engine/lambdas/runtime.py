"""What a Lambda container keeps between invocations: one engine, built on first use from the
function's environment (DOCSYNC_*), and the alarms' figures flushed before a handler returns.
DOCSYNC_DRY_RUN=1 makes every mutating call a logged no-op."""

from __future__ import annotations

from engine import cloudwatch
from engine.app import Engine
from engine.logs import configure_logging
from engine.settings import load_settings

_engine: Engine | None = None


def engine() -> Engine:
    global _engine  # noqa: PLW0603 - one engine per Lambda container, built on first use
    if _engine is None:
        settings = load_settings()
        configure_logging("json", settings.log_level)
        _engine = Engine.build(settings)
    return _engine


def use_engine(value: Engine | None) -> None:
    """For tests: a given engine, or None to build one from the environment again."""
    global _engine  # noqa: PLW0603
    _engine = value


def reset_engine() -> None:
    """For tests: forget the cached engine so new settings take effect."""
    use_engine(None)


def flush_alarm_metrics() -> None:
    """The alarms' figures of this invocation (engine/cloudwatch.py), once the engine exists:
    the one call every docsync Lambda handler makes before it returns."""
    if _engine is not None:
        cloudwatch.flush(_engine.settings, _engine.clients)
