"""SSM / KMS glue of the nonce steps. The only module that touches a nonce value.

Values are written here and read here, nowhere else:
- a new value is generated with ``new_nonce()`` inside the function that sends it
  (``put_new_version``, which never overwrites) and dropped right after the call;
- ``holds_nonce`` reads a value (to check it is a real 64-hex nonce) and returns
  only a bool; ``read_value`` returns it masked for in-memory comparisons.
While either call is in flight, botocore/urllib3 debug logging is held at INFO so
no wire dump (request parameters, response body) can carry the value into a log,
and an error is re-raised without any text that contains it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from mirror_rollout.aws import AwsClients
from mirror_rollout.contract import NONCE_VALUE
from mirror_rollout.nonce_values import new_nonce
from mirror_rollout.retries import error_code
from tasks.nonce.rules import SECURE_STRING, NonceState, nonce_state, parameter_prefix

_WIRE_LOGGERS = ("botocore", "boto3", "urllib3")
_wire_lock = threading.RLock()


class NonceStoreError(Exception):
    """An SSM call on a nonce value failed; the message never contains the value."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class ParameterExists(NonceStoreError):
    """PutParameter without overwrite found the name taken."""


@contextmanager
def wire_logging_off() -> Iterator[None]:
    """Hold botocore/boto3/urllib3 loggers (and any explicitly levelled child) at INFO."""
    with _wire_lock:
        manager = logging.Logger.manager
        loggers = [logging.getLogger(n) for n in _WIRE_LOGGERS] + [
            lg
            for name, lg in list(manager.loggerDict.items())
            if isinstance(lg, logging.Logger)
            and name.split(".")[0] in _WIRE_LOGGERS
            and "." in name
            and lg.level != logging.NOTSET
        ]
        saved = [(lg, lg.level) for lg in loggers]
        for lg in loggers:
            if lg.getEffectiveLevel() < logging.INFO:
                lg.setLevel(logging.INFO)
        try:
            yield
        finally:
            for lg, level in saved:
                lg.setLevel(level)


def _put(aws: AwsClients, request: dict[str, Any]) -> int:
    """PutParameter with a freshly generated value; returns SSM's version counter."""
    nonce = new_nonce()
    try:
        with wire_logging_off():
            return int(
                aws.client("ssm").put_parameter(Value=nonce.get_secret_value(), **request)[
                    "Version"
                ]
            )
    except Exception as exc:
        code = error_code(exc)
        secret = nonce.get_secret_value()
        leaked = secret in str(exc) or secret in repr(getattr(exc, "response", ""))
        cls = ParameterExists if code == "ParameterAlreadyExists" else NonceStoreError
        if leaked or cls is ParameterExists:
            message = f"PutParameter {request['Name']} failed: {code or type(exc).__name__}"
            raise cls(message, code) from None
        raise
    finally:
        del nonce


def describe_versions(aws: AwsClients, environment: str) -> list[dict[str, Any]]:
    """DescribeParameters entries of ``/guardian/{env}/redaction_nonce_v*``, each with its ``Tags``."""
    ssm = aws.client("ssm")
    found: list[dict[str, Any]] = []
    pages = ssm.get_paginator("describe_parameters").paginate(
        ParameterFilters=[
            {"Key": "Name", "Option": "BeginsWith", "Values": [parameter_prefix(environment)]}
        ]
    )
    for page in pages:
        found.extend(page.get("Parameters", []))
    for entry in found:
        tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=entry["Name"])
        entry["Tags"] = tags.get("TagList", [])
    return found


def read_state(aws: AwsClients, environment: str, now: datetime | None = None) -> NonceState:
    return nonce_state(environment, describe_versions(aws, environment), now)


def put_new_version(
    aws: AwsClients,
    name: str,
    key_id: str,
    tags: dict[str, str],
    description: str,
    tier: str = "Standard",
) -> int:
    """Create ``name`` (never overwrite) as a SecureString holding a fresh nonce, tagged.

    Raises ``ParameterExists`` if the name is taken (a concurrent or earlier run).
    """
    return _put(
        aws,
        {
            "Name": name,
            "Description": description,
            "Type": SECURE_STRING,
            "KeyId": key_id,
            "Tier": tier,
            "Overwrite": False,
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        },
    )


def delete_version(aws: AwsClients, name: str) -> bool:
    """Delete ``name``; False if it was already gone."""
    try:
        aws.client("ssm").delete_parameter(Name=name)
    except Exception as exc:
        if error_code(exc) == "ParameterNotFound":
            return False
        raise
    return True


def read_value(aws: AwsClients, name: str) -> SecretStr | None:
    """The nonce held by ``name``, masked; None unless it is 64 lowercase hex.

    The one place a nonce value is read: with wire logging held above DEBUG and the
    response cleared, so the value exists only inside the returned SecretStr.
    """
    with wire_logging_off():
        response = aws.client("ssm").get_parameter(Name=name, WithDecryption=True)
    try:
        value = response["Parameter"]["Value"]
        return SecretStr(value) if NONCE_VALUE.match(value) else None
    finally:
        response.clear()
        del response


def holds_nonce(aws: AwsClients, name: str) -> bool:
    """True if ``name`` holds a real nonce (64 lowercase hex). The value is not kept."""
    return read_value(aws, name) is not None


def key_arn(aws: AwsClients, key_id: str | None) -> str | None:
    """The ARN of the KMS key ``key_id`` (id, ARN, alias name or alias ARN); None if not found."""
    if not key_id:
        return None
    try:
        return str(aws.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]["Arn"])
    except Exception as exc:
        if error_code(exc) in ("NotFoundException", "InvalidArnException"):
            return None
        raise
