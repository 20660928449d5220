"""S3 events → cache: parsing (pure), applying (level-triggered), SQS worker, Lambda handlers."""

from __future__ import annotations
