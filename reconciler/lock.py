"""One reconcile at a time across replicas: a lease item in the leases table.

Taken with a conditional write (free, expired, or already ours), renewed from a background
thread while the run lasts, released at the end; a holder that dies stops renewing and the
lease is taken over once it expires.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError
from loguru import logger

from engine.store.errors import is_conditional_failure

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class LeaseLock:
    def __init__(self, client: DynamoDBClient, table: str, name: str, ttl_s: float) -> None:
        self._ddb = client
        self.table = table
        self.name = name
        self.ttl_s = ttl_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def try_acquire(self) -> bool:
        now = time.time()
        try:
            self._ddb.put_item(
                TableName=self.table,
                Item={
                    "lease_key": {"S": self.name},
                    "owner": {"S": self.owner},
                    "expires": {"N": f"{now + self.ttl_s:.3f}"},
                },
                ConditionExpression="attribute_not_exists(lease_key) OR expires < :now OR #o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}, ":me": {"S": self.owner}},
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def release(self) -> None:
        try:
            self._ddb.delete_item(
                TableName=self.table,
                Key={"lease_key": {"S": self.name}},
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}},
            )
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise

    @contextmanager
    def held(self) -> Iterator[bool]:
        """Yields False (and does nothing) when another holder has it."""
        if not self.try_acquire():
            logger.bind(op="lock", lock=self.name).info("held elsewhere: skipping this run")
            yield False
            return
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.ttl_s / 3):
                try:
                    if not self.try_acquire():
                        logger.bind(op="lock", lock=self.name).error("lease lost to another holder")
                        return
                except Exception as exc:  # keep trying until the lease would expire
                    logger.bind(op="lock", lock=self.name).warning("renewal failed: {}", exc)

        renewer = threading.Thread(target=renew, name="lease-renew", daemon=True)
        renewer.start()
        try:
            yield True
        finally:
            stop.set()
            renewer.join(timeout=5)
            self.release()
