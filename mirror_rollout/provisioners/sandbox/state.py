"""Terraform-shaped state in the S3 backend bucket, guarded by a DynamoDB lock item.

Mirrors what Terraform's S3 backend does: the state object lives at
``{workspace_key_prefix}/{workspace}/{key}``, and a lock is an item
``LockID = "{bucket}/{path}"`` written with a condition so only one holder wins.
"""

from __future__ import annotations

import getpass
import json
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from mirror_rollout.aws import AwsClients
from mirror_rollout.errors import ConfigError, EndpointError
from mirror_rollout.provisioners.base import StateLocked
from mirror_rollout.provisioners.document import StateDocument


class Backend(BaseModel):
    bucket: str
    key: str
    workspace_key_prefix: str = "env:"
    dynamodb_table: str | None = None
    region: str = "us-east-1"
    encrypt: bool = True

    @classmethod
    def from_block(
        cls, block: tuple[str, dict[str, Any]] | None, overrides: dict[str, Any] | None = None
    ) -> Backend:
        if block is None or block[0] != "s3":
            raise ConfigError(
                "infra/terraform has no s3 backend block",
                'add terraform { backend "s3" { ... } } to backend.tf',
            )
        known = {
            k: v for k, v in {**block[1], **(overrides or {})}.items() if k in cls.model_fields
        }
        return cls(**known)

    def state_path(self, workspace: str) -> str:
        if workspace == "default":
            return self.key
        return f"{self.workspace_key_prefix}/{workspace}/{self.key}"


class LockInfo(BaseModel):
    ID: str
    Operation: str
    Info: str = ""
    Who: str
    Version: str = "mirror-rollout"
    Created: str
    Path: str

    def describe(self) -> str:
        extra = f", {self.Info}" if self.Info else ""
        return f"{self.Who} ({self.Operation}{extra}, since {self.Created}, lock id {self.ID})"


def _client_error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


class StateStore:
    def __init__(self, aws: AwsClients, backend: Backend, workspace: str):
        self.aws = aws
        self.backend = backend
        self.workspace = workspace
        self.path = backend.state_path(workspace)

    @property
    def lock_id(self) -> str:
        return f"{self.backend.bucket}/{self.path}"

    def _call(self, what: str, fn, **kwargs):
        from botocore.exceptions import EndpointConnectionError

        try:
            return fn(**kwargs)
        except EndpointConnectionError as exc:
            raise EndpointError(
                f"cannot reach the AWS endpoint for {what} ({exc.kwargs.get('endpoint_url', '?')})",
                "start the sandbox (mirror-rollout sandbox up) or check AWS_ENDPOINT_URL",
            ) from None

    def ensure_backend(self) -> None:
        """Create the state bucket and lock table when missing (the sandbox's bootstrap)."""
        s3 = self.aws.client("s3")
        try:
            self._call("the state bucket", s3.head_bucket, Bucket=self.backend.bucket)
        except Exception as exc:
            if _client_error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
            s3.create_bucket(Bucket=self.backend.bucket)
            s3.put_bucket_versioning(
                Bucket=self.backend.bucket, VersioningConfiguration={"Status": "Enabled"}
            )
            s3.put_bucket_encryption(
                Bucket=self.backend.bucket,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
            )
        if self.backend.dynamodb_table:
            ddb = self.aws.client("dynamodb")
            try:
                ddb.describe_table(TableName=self.backend.dynamodb_table)
            except ddb.exceptions.ResourceNotFoundException:
                ddb.create_table(
                    TableName=self.backend.dynamodb_table,
                    KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
                    BillingMode="PAY_PER_REQUEST",
                )

    def read(self) -> StateDocument | None:
        s3 = self.aws.client("s3")
        try:
            body = self._call(
                "the state", s3.get_object, Bucket=self.backend.bucket, Key=self.path
            )["Body"].read()
        except Exception as exc:
            if _client_error_code(exc) in ("NoSuchKey", "NoSuchBucket", "404"):
                return None
            raise
        try:
            state = StateDocument.model_validate_json(body)
        except ValueError as exc:
            raise ConfigError(
                f"state s3://{self.backend.bucket}/{self.path} is not valid state JSON: {exc}",
                "restore a previous version of the state object",
            ) from None
        state.check_version()
        return state

    def write(self, state: StateDocument) -> None:
        body = json.dumps(state.model_dump(mode="json"), indent=2, sort_keys=False).encode()
        extra = {"ServerSideEncryption": "AES256"} if self.backend.encrypt else {}
        self._call(
            "the state",
            self.aws.client("s3").put_object,
            Bucket=self.backend.bucket,
            Key=self.path,
            Body=body,
            ContentType="application/json",
            **extra,
        )

    def holder(self) -> LockInfo | None:
        if not self.backend.dynamodb_table:
            return None
        dynamodb = self.aws.client("dynamodb")
        try:
            item = dynamodb.get_item(
                TableName=self.backend.dynamodb_table,
                Key={"LockID": {"S": self.lock_id}},
                ConsistentRead=True,
            ).get("Item")
        except dynamodb.exceptions.ResourceNotFoundException:
            return None  # no lock table yet: nothing was ever planned here
        if not item or "Info" not in item:
            return None
        return LockInfo.model_validate_json(item["Info"]["S"])

    @contextmanager
    def lock(self, operation: str, info: str = "") -> Iterator[LockInfo]:
        """Hold the workspace lock for the block; a second holder fails naming the first."""
        lock = LockInfo(
            ID=str(uuid.uuid4()),
            Operation=operation,
            Info=info,
            Who=f"{getpass.getuser()}@{socket.gethostname()}",
            Created=datetime.now(UTC).isoformat(timespec="seconds"),
            Path=self.path,
        )
        table = self.backend.dynamodb_table
        if not table:
            yield lock
            return
        ddb = self.aws.client("dynamodb")
        try:
            self._call(
                "the state lock",
                ddb.put_item,
                TableName=table,
                Item={"LockID": {"S": self.lock_id}, "Info": {"S": lock.model_dump_json()}},
                ConditionExpression="attribute_not_exists(LockID)",
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            current = self.holder()
            # Ours: the put landed but its response was lost, and botocore's retry found it.
            if current is None or current.ID != lock.ID:
                who = current.describe() if current else "an unknown holder"
                raise StateLocked(
                    f"state of workspace {self.workspace!r} is locked by {who}",
                    "wait for that run to finish; if it died, remove the lock with `mirror-rollout force-unlock "
                    f"--env {self.workspace} {current.ID if current else 'LOCK_ID'}`",
                ) from None
        failure: BaseException | None = None
        try:
            yield lock
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._release(lock, failure)

    def _release(self, lock: LockInfo, failure: BaseException | None) -> None:
        ddb = self.aws.client("dynamodb")
        try:
            ddb.delete_item(
                TableName=self.backend.dynamodb_table,
                Key={"LockID": {"S": self.lock_id}},
                ConditionExpression="contains(Info, :id)",
                ExpressionAttributeValues={":id": {"S": lock.ID}},
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            current = self.holder()
            if current is not None and current.ID == lock.ID:
                raise
            # Released already: an earlier attempt's delete landed, its response was lost.
        except Exception as exc:
            before = f"; before that, {lock.Operation} had failed: {failure}" if failure else ""
            raise StateLocked(
                f"the state lock {lock.ID} of workspace {self.workspace!r} could not be "
                f"released: {exc}{before}",
                "when AWS answers again, remove it with `mirror-rollout force-unlock "
                f"--env {self.workspace} {lock.ID}`",
            ) from failure or exc

    def force_unlock(self, lock_id: str) -> None:
        current = self.holder()
        if current is None or current.ID != lock_id:
            raise ConfigError(
                f"workspace {self.workspace!r} holds no lock with id {lock_id}",
                "check the id in the lock error message",
            )
        self.aws.client("dynamodb").delete_item(
            TableName=self.backend.dynamodb_table, Key={"LockID": {"S": self.lock_id}}
        )
