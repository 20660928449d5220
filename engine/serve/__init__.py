"""`docsync serve`: the worker process (parts under a supervisor) and its HTTP API."""

from __future__ import annotations

from engine.serve.apikeys import ApiKeys
from engine.serve.health import Readiness
from engine.serve.service import Service
from engine.serve.supervisor import Backoff, Part, Supervisor

__all__ = ["ApiKeys", "Backoff", "Part", "Readiness", "Service", "Supervisor"]
