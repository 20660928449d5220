"""The AWS side of `docsync doctor`: describe what is deployed, and probe each permission.

The calls are the stores' (engine/store/control.py describes, engine/store/probes.py probes,
engine/store/queue.py the queues), translated there: a missing resource is a `NotFoundError`,
anything else (AccessDenied included) a `StoreError` naming the call. This module decides what
each answer means for the operator, and in which order the checks run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ConnectionError, NoCredentialsError

from engine.aws import AwsClients
from engine.exceptions import DocsyncError, NotFoundError, StoreError
from engine.infra import cache_table_spec, leases_table_spec, wanted_notifications
from engine.ops import doctor, wiring
from engine.ops.doctor import Check
from engine.settings import Settings
from engine.store.control import ControlStore
from engine.store.probes import AccessProbes, Outcome
from engine.store.queue import QueueRef, QueueStore


def _table(control: ControlStore, name: str) -> dict[str, Any] | None:
    try:
        return control.describe_table(name)
    except NotFoundError:
        return None


def _attempt(checks: list[Check], check: str, fix: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
    """Run one step; an error becomes a failed check instead of stopping the doctor."""
    try:
        return True, fn()
    except DocsyncError as exc:
        checks.append(Check(check, "fail", str(exc), fix))
        return False, None


def _probe(
    checks: list[Check], check: str, action: str, resource: str, fn: Callable[[], Outcome]
) -> None:
    done, outcome = _attempt(
        checks, check, f"allow {action} on {resource} to the role docsync runs as", fn
    )
    if not done:
        return
    if outcome == "ok":
        checks.append(doctor.ok(check, f"{action} allowed"))
    elif outcome == "dry-run":
        checks.append(
            Check(check, "warn", f"{action} not checked: dry run", "run without DOCSYNC_DRY_RUN")
        )
    else:
        checks.append(Check(check, "warn", f"{action}: the endpoint ignored the probe's condition"))


def run(settings: Settings, clients: AwsClients) -> list[Check]:
    """Every check, in the order an operator would fix them."""
    control = ControlStore(clients, settings.endpoint_url)
    probes = AccessProbes(clients, settings.bucket, settings.reserved_prefix)
    checks: list[Check] = []
    init = doctor.INIT

    try:
        arn = probes.identity()
        checks.append(doctor.ok("identity", f"running as {arn} in {settings.region}"))
    except DocsyncError as exc:
        cause = exc.__cause__
        if isinstance(cause, NoCredentialsError | ConnectionError):
            where = settings.endpoint_url or f"AWS in {settings.region}"
            fix = (
                "configure AWS credentials (AWS_PROFILE, or a role)"
                if isinstance(cause, NoCredentialsError)
                else f"check the endpoint, region and network: {where}"
            )
            return [Check("identity", "fail", str(exc), fix)]  # nothing else can be checked
        checks.append(Check("identity", "fail", str(exc), "allow sts:GetCallerIdentity"))

    bucket_ok = False
    try:
        control.head_bucket(settings.bucket)
        bucket_ok = True
        checks.append(doctor.ok("bucket", f"bucket {settings.bucket} exists"))
    except NotFoundError:
        checks.append(Check("bucket", "fail", f"bucket {settings.bucket} does not exist", init))
    except DocsyncError as exc:
        grant = f"allow s3:ListBucket on arn:aws:s3:::{settings.bucket}"
        checks.append(Check("bucket", "fail", str(exc), grant))

    describe = "allow dynamodb:DescribeTable and dynamodb:DescribeTimeToLive on "
    done, cache = _attempt(
        checks, "cache-table", describe + settings.table, lambda: _table(control, settings.table)
    )
    if done:
        checks += doctor.check_table(settings, "cache-table", cache_table_spec(settings), cache)
    if cache is not None:
        checks.append(doctor.check_stream(settings, cache))
        done, ttl = _attempt(
            checks,
            "cache-table.ttl",
            describe + settings.table,
            lambda: control.ttl(settings.table),
        )
        if done:
            checks.append(doctor.check_ttl(settings, ttl))
    done, leases = _attempt(
        checks, "leases-table", describe + settings.leases_table,
        lambda: _table(control, settings.leases_table),
    )  # fmt: skip
    if done:
        checks += doctor.check_table(settings, "leases-table", leases_table_spec(settings), leases)

    queues, attributes = _queues(settings, QueueStore(clients.sqs, settings.endpoint_url), checks)
    dlq, queue = queues.get("dlq"), queues.get("queue")
    for label, s3_source in (("queue", True), ("work-queue", False)):
        ref = queues.get(label)
        if ref is not None:
            checks += wiring.check_queue(
                settings, label, ref.name, ref.url, attributes[label],
                dlq.arn if dlq else None, s3_source,
            )  # fmt: skip
    if dlq is not None:
        sources = {ref.name: attributes[k] for k, ref in queues.items() if k != "dlq"}
        checks.append(wiring.check_dlq_retention(settings, dlq.url, attributes["dlq"], sources))
        checks.append(wiring.check_dlq_depth(settings, attributes["dlq"]))
    if bucket_ok and queue is not None:
        done, config = _attempt(
            checks,
            "bucket.notifications",
            f"allow s3:GetBucketNotification on arn:aws:s3:::{settings.bucket}",
            lambda: control.notifications(settings.bucket),
        )
        if done:
            wanted = wanted_notifications(settings, queue.arn)
            checks += wiring.check_notifications(settings, queue.arn, config, wanted)

    _access(settings, control, probes, checks, bucket_ok, cache, leases)
    return checks


def _access(
    settings: Settings,
    control: ControlStore,
    probes: AccessProbes,
    checks: list[Check],
    bucket_ok: bool,
    cache: dict[str, Any] | None,
    leases: dict[str, Any] | None,
) -> None:
    """One harmless call of each kind the engine makes, on the resources that exist."""
    if bucket_ok:
        bucket = f"arn:aws:s3:::{settings.bucket}"
        _probe(checks, "access.s3.list", "s3:ListBucket", bucket, probes.list_objects)
        _probe(checks, "access.s3.read", "s3:GetObject", f"{bucket}/*", probes.read_object)
        _probe(checks, "access.s3.write", "s3:PutObject", f"{bucket}/*", probes.write_object)
    if cache is not None:
        arn = str(cache.get("TableArn", settings.table))
        _probe(checks, "access.cache.read", "dynamodb:GetItem", arn,
               lambda: probes.get_item(settings.table, "pk"))  # fmt: skip
        _probe(checks, "access.cache.query", "dynamodb:Query", f"{arn}/index/*",
               lambda: probes.query(settings.table))  # fmt: skip
        _probe(checks, "access.cache.write", "dynamodb:UpdateItem", arn,
               lambda: probes.update_item(settings.table, "pk"))  # fmt: skip
        stream_arn = str(cache.get("LatestStreamArn") or "")
        if stream_arn and (cache.get("StreamSpecification") or {}).get("StreamEnabled"):
            _probe(checks, "access.stream.read", "dynamodb:DescribeStream", stream_arn,
                   lambda: _stream_enabled(control, stream_arn))  # fmt: skip
    if leases is not None:
        arn = str(leases.get("TableArn", settings.leases_table))
        _probe(checks, "access.leases.read", "dynamodb:GetItem", arn,
               lambda: probes.get_item(settings.leases_table, "lease_key"))  # fmt: skip
        _probe(checks, "access.leases.write", "dynamodb:UpdateItem", arn,
               lambda: probes.update_item(settings.leases_table, "lease_key"))  # fmt: skip


def _queues(
    settings: Settings, store: QueueStore, checks: list[Check]
) -> tuple[dict[str, QueueRef], dict[str, dict[str, str]]]:
    """The three queues by label (those that exist) and their attributes
    (sqs:GetQueueAttributes on each is also the queue permission probe)."""
    found: dict[str, QueueRef] = {}
    attributes: dict[str, dict[str, str]] = {}
    names = {"dlq": settings.dlq, "queue": settings.queue, "work-queue": settings.work_queue}
    for label, name in names.items():
        try:
            ref = store.lookup(name)
            attributes[label] = store.attributes(ref.url, name)
        except NotFoundError:
            checks.append(Check(label, "fail", f"queue {name} does not exist", doctor.INIT))
            continue
        except DocsyncError as exc:
            grant = f"allow sqs:GetQueueUrl, sqs:GetQueueAttributes on {name}"
            checks.append(Check(label, "fail", str(exc), grant))
            continue
        found[label] = ref
        checks.append(doctor.ok(label, f"queue {name} exists"))
    return found, attributes


def _stream_enabled(control: ControlStore, arn: str) -> Outcome:
    status = control.stream(arn).get("StreamStatus", "ENABLED")
    if status not in ("ENABLED", "ENABLING"):
        raise StoreError(f"stream {arn} is {status}")
    return "ok"
