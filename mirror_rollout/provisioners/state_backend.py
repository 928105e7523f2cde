"""The Terraform state backend: an S3 bucket and a DynamoDB lock table.

The production runbook bootstraps both once, outside the stack; the sandbox
does the same on moto (``sandbox up``, and again after a test resets moto),
so every plan and apply uses the S3 backend with locking, as in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirror_rollout import contract
from mirror_rollout.provisioners.raw_hcl import load, root_files, unquote
from mirror_rollout.target import DEFAULT_REGION


@dataclass(frozen=True)
class BackendSpec:
    bucket: str = contract.STATE_BUCKET
    lock_table: str = contract.LOCK_TABLE
    region: str = DEFAULT_REGION
    key: str = "infra/terraform.tfstate"
    workspace_key_prefix: str = "env"

    def state_key(self, workspace: str) -> str:
        """Where the S3 backend keeps ``workspace``'s state (the default workspace: ``key``)."""
        if workspace == "default":
            return self.key
        return f"{self.workspace_key_prefix}/{workspace}/{self.key}"


def read_backend(directory: Path) -> BackendSpec | None:
    """The ``backend "s3"`` block of the root's .tf files (raw python-hcl2), None if there is none."""
    for path in root_files(directory):
        for block in load(path).get("terraform", []):
            for backend in block.get("backend", []):
                for label, s3 in backend.items():
                    if unquote(label) != "s3":
                        continue
                    return BackendSpec(
                        bucket=unquote(s3.get("bucket", contract.STATE_BUCKET)),
                        lock_table=unquote(s3.get("dynamodb_table", contract.LOCK_TABLE)),
                        region=unquote(s3.get("region", DEFAULT_REGION)),
                        key=unquote(s3.get("key", "terraform.tfstate")),
                        workspace_key_prefix=unquote(s3.get("workspace_key_prefix", "env:")),
                    )
    return None


def bootstrap(session: Any, spec: BackendSpec, endpoint_url: str | None = None) -> list[str]:
    """Create the state bucket (versioned, encrypted, private) and lock table unless they exist.

    ``session`` is a boto3 Session; ``endpoint_url`` None means boto3's own resolution
    (AWS_ENDPOINT_URL). Returns what it created (empty when both existed).
    """
    from botocore.exceptions import ClientError

    from mirror_rollout.aws import retry_config

    created = []
    kwargs = {"region_name": spec.region, "config": retry_config(), "endpoint_url": endpoint_url}
    s3 = session.client("s3", **kwargs)
    try:
        s3.head_bucket(Bucket=spec.bucket)
    except ClientError:
        s3.create_bucket(Bucket=spec.bucket)
        s3.put_bucket_versioning(Bucket=spec.bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=spec.bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        s3.put_public_access_block(
            Bucket=spec.bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        created.append(f"s3://{spec.bucket}")
    dynamodb = session.client("dynamodb", **kwargs)
    try:
        dynamodb.describe_table(TableName=spec.lock_table)
    except dynamodb.exceptions.ResourceNotFoundException:
        dynamodb.create_table(
            TableName=spec.lock_table,
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        created.append(f"dynamodb table {spec.lock_table}")
    return created


def release_lock(spec: BackendSpec, workspace: str, lock_id: str, session: Any = None) -> None:
    """Delete the lock item of ``workspace``'s state if, and only if, it is lock ``lock_id``.

    What Terraform's unlock does (a conditional DeleteItem), for the one case its
    force-unlock cannot reach: a workspace whose creation that lock blocked.
    """
    from mirror_rollout.aws import new_session, retry_config

    table = (session or new_session()).client(
        "dynamodb", region_name=spec.region, config=retry_config()
    )
    table.delete_item(
        TableName=spec.lock_table,
        Key={"LockID": {"S": f"{spec.bucket}/{spec.state_key(workspace)}"}},
        ConditionExpression="contains(Info, :id)",
        ExpressionAttributeValues={":id": {"S": lock_id}},
    )
