"""Thin stores over boto3: they map items and objects, and turn botocore errors into ours."""

from __future__ import annotations
