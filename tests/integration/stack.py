"""deploy/template.yaml deployed into the moto server's CloudFormation, for the deploy and IAM
tests. moto cannot run every part of the template; what is left out, and why, is named here
(MOTO_FILTERED) and in docs/deploy.md ("What the tests could not check")."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import boto3

from engine.local_moto import EmbeddedMoto
from tests.template import load_template

STACK = "ds-stack"
BUCKET = "ds-stack-documents"
CODE_BUCKET = "ds-stack-artifacts"
CODE_KEY = "docsync-lambda.zip"
TOPIC = "arn:aws:sns:us-east-1:123456789012:docsync-alarms"
REGION = "us-east-1"

# Resource types left out of the copy deployed into moto, and why.
MOTO_FILTERED = {
    "AWS::CloudWatch::Alarm": "moto's CloudFormation has no model for alarms (skipped, logged)",
    "AWS::SQS::QueuePolicy": "moto's CloudFormation has no model for queue policies",
    "AWS::S3::BucketPolicy": "moto's CloudFormation has no model for bucket policies",
    "AWS::Lambda::EventSourceMapping": (
        "moto would invoke the function itself (in Docker) for every queue message and stream"
        " record, taking the messages `docsync listen --drain` must see"
    ),
}


def for_moto(template: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy without the MOTO_FILTERED resources; returns it and the logical ids removed."""
    out = copy.deepcopy(template)
    removed = sorted(name for name, res in out["Resources"].items() if res["Type"] in MOTO_FILTERED)
    for name in removed:
        del out["Resources"][name]
    for res in out["Resources"].values():
        depends = res.get("DependsOn")
        if depends is not None:
            kept = [
                d for d in ([depends] if isinstance(depends, str) else depends) if d not in removed
            ]
            if kept:
                res["DependsOn"] = kept
            else:
                del res["DependsOn"]
    return out, removed


@dataclass
class Stack:
    outputs: dict[str, str]
    removed: list[str]
    endpoint: str

    def client(self, service: str) -> Any:
        # boto3-stubs types `client` for a literal service name only.
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)  # type: ignore[call-overload]

    def env(self) -> dict[str, str]:
        """DOCSYNC_* for the CLI and the handlers: the names come from the stack's outputs."""
        return {
            "DOCSYNC_ENDPOINT_URL": self.endpoint,
            "DOCSYNC_REGION": REGION,
            "DOCSYNC_AWS_MAX_ATTEMPTS": "2",
            "DOCSYNC_BUCKET": self.outputs["BucketName"],
            "DOCSYNC_TABLE": self.outputs["TableName"],
            "DOCSYNC_LEASES_TABLE": self.outputs["LeasesTableName"],
            "DOCSYNC_HISTORY_TABLE": self.outputs["HistoryTableName"],
            "DOCSYNC_QUEUE": self.outputs["QueueName"],
            "DOCSYNC_DLQ": self.outputs["DeadLetterQueueName"],
            "DOCSYNC_WORK_QUEUE": self.outputs["WorkQueueName"],
        }


def deploy(
    server: EmbeddedMoto, adopt: dict[str, bytes] | None = None, kinesis_shards: int = 0
) -> Stack:
    """A reset moto, the artifact bucket with a small zip (moto checks the code object exists;
    the handlers run in-process in the tests, never through moto's Lambda), and the stack.
    `adopt`: the document bucket exists before the stack, holding these objects, and the
    stack adopts it (AdoptExistingBucket=true)."""
    server.reset()
    s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name=REGION)
    if adopt is not None:
        s3.create_bucket(Bucket=BUCKET)
        for key, body in adopt.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    s3.create_bucket(Bucket=CODE_BUCKET)
    artifact = io.BytesIO()
    with zipfile.ZipFile(artifact, "w") as zf:
        zf.writestr("engine/__init__.py", "")
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=artifact.getvalue())
    template, removed = for_moto(load_template())
    cfn = boto3.client("cloudformation", endpoint_url=server.endpoint, region_name=REGION)
    cfn.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(template),
        Parameters=[
            {"ParameterKey": "CodeBucket", "ParameterValue": CODE_BUCKET},
            {"ParameterKey": "CodeKey", "ParameterValue": CODE_KEY},
            {"ParameterKey": "BucketName", "ParameterValue": BUCKET},
            {"ParameterKey": "AlarmTopicArn", "ParameterValue": TOPIC},
            {"ParameterKey": "KinesisShardCount", "ParameterValue": str(kinesis_shards)},
            {
                "ParameterKey": "AdoptExistingBucket",
                "ParameterValue": "true" if adopt is not None else "false",
            },
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    described = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE", described
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return Stack(outputs, removed, server.endpoint)
