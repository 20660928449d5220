"""One reconcile at a time across replicas: a `Lease` in the leases table (engine/store/leases.py).

Taken with a conditional write (free, expired, or already ours), renewed from a background
thread while the run lasts, released at the end; a holder that dies stops renewing and the
lease is taken over once it expires. A failure of the leases table is a `StoreError`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from loguru import logger

from engine.store.leases import Lease, default_owner

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class LeaseLock:
    def __init__(self, client: DynamoDBClient, table: str, name: str, ttl_s: float) -> None:
        # The lock's item goes on release (PutItem/DeleteItem): nothing is left behind.
        self.lease = Lease(client, table, name, ttl_s, default_owner(), keep=False)
        self.table = table
        self.name = name
        self.ttl_s = ttl_s
        self.owner = self.lease.owner

    def try_acquire(self) -> bool:
        return self.lease.try_acquire()

    def release(self) -> None:
        self.lease.release()

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
