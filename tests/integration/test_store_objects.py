"""The object and inventory stores on the seam, against moto over HTTP, faults injected
through botocore's hooks: S3's answers and failures become the project's own."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError

from engine.aws import AwsClients
from engine.exceptions import NotFoundError, ObjectStoreError
from engine.settings import Settings
from engine.store.inventory import InventoryStore
from engine.store.objects import ObjectStore
from tests.integration.faults import Faults

KEY = "changes/CHG-seam.json"


@pytest.fixture
def s3(settings: Settings) -> tuple[ObjectStore, Faults]:
    clients = AwsClients(settings)
    faults = Faults()
    faults.attach(clients.s3)
    return ObjectStore(clients.s3, settings.bucket), faults


def test_answers_that_are_not_failures(s3: tuple[ObjectStore, Faults]) -> None:
    objects, _ = s3
    with pytest.raises(NotFoundError, match=f"s3://{objects.bucket}/{KEY} does not exist"):
        objects.get(KEY)
    assert objects.head(KEY) is None
    put = objects.put(KEY, b'{"a": 1}')
    assert objects.get_if_changed(KEY, put.etag) is None  # 304: unchanged, no body
    changed = objects.get_if_changed(KEY, "0" * 32)
    assert changed is not None and changed.body == b'{"a": 1}'
    head = objects.head(KEY)
    assert head is not None and head.etag == put.etag


@pytest.mark.parametrize("operation", ["GetObject", "HeadObject", "PutObject", "DeleteObject"])
def test_a_refused_call_is_an_object_store_error(
    s3: tuple[ObjectStore, Faults], operation: str
) -> None:
    objects, faults = s3
    objects.put(KEY, b"{}")
    faults.respond("s3", operation, "AccessDenied", 403)
    call: Callable[[], object] = {
        "GetObject": lambda: objects.get(KEY),
        "HeadObject": lambda: objects.head(KEY),
        "PutObject": lambda: objects.put(KEY, b"{}"),
        "DeleteObject": lambda: objects.delete(KEY),
    }[operation]
    with pytest.raises(ObjectStoreError, match=f"S3 {operation} {KEY} failed") as raised:
        call()
    assert isinstance(raised.value.__cause__, ClientError)
    assert ("s3", operation, "AccessDenied") in faults.fired


def test_an_outage_after_retries_is_an_object_store_error(
    s3: tuple[ObjectStore, Faults], settings: Settings
) -> None:
    objects, faults = s3
    faults.fail("s3", "PutObject", times=settings.aws.max_attempts)
    with pytest.raises(ObjectStoreError, match=f"S3 PutObject {KEY} failed"):
        objects.put(KEY, b"{}")
    assert objects.head(KEY) is None  # nothing was written


def test_a_listing_of_a_missing_bucket_is_a_failure_not_a_missing_key(settings: Settings) -> None:
    objects = ObjectStore(AwsClients(settings).s3, "no-such-bucket-here")
    with pytest.raises(ObjectStoreError, match="S3 ListObjectsV2 changes/ failed") as raised:
        list(objects.list("changes/"))
    assert not isinstance(raised.value, NotFoundError)


def test_inventory_reads_name_the_bucket(settings: Settings) -> None:
    clients = AwsClients(settings)
    faults = Faults()
    faults.attach(clients.s3)
    key, bucket = "_docsync/inventory/manifest.json", settings.bucket
    ObjectStore(clients.s3, bucket).put(key, b"{}")
    inventory = InventoryStore(clients.s3)
    assert inventory.read(bucket, key) == b"{}"
    with pytest.raises(NotFoundError):
        inventory.read(bucket, "_docsync/inventory/none.json")
    faults.respond("s3", "GetObject", "AccessDenied", 403)
    with pytest.raises(ObjectStoreError, match=f"S3 GetObject s3://{bucket}/{key} failed"):
        inventory.read(bucket, key)
