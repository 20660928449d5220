"""docsync engine: a DynamoDB cache of JSON documents kept in step with S3 (the truth)."""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"
