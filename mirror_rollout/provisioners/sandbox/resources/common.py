"""Helpers shared by the resource handlers: state shape, tags, errors, ARNs, waiting."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from mirror_rollout.aws import AwsClients
from mirror_rollout.errors import ConfigError, RolloutError

from .base import NotProvisionable

# ---------------------------------------------------------------------------
# State and config shape
# ---------------------------------------------------------------------------


def state(config: Mapping[str, Any], **computed: Any) -> dict[str, Any]:
    """The state attributes: the configured arguments unchanged plus the computed ones."""
    out = dict(config)
    out.update(computed)
    return out


def blocks(config: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    """A nested block in state shape (a list of dicts); tolerates a single dict or null."""
    value = config.get(name)
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [dict(value)]
    return [dict(v) for v in value if v is not None]


def block(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The first (for MaxItems=1 blocks: the only) instance of a nested block, or {}."""
    found = blocks(config, name)
    return found[0] if found else {}


def changed(prior: Mapping[str, Any], config: Mapping[str, Any], *names: str) -> bool:
    return any(prior.get(n) != config.get(n) for n in names)


def given(value: Any) -> bool:
    """An argument the configuration set (Terraform's null and "" mean unset for strings)."""
    return value is not None and value != ""


def reject_unsupported(type_: str, config: Mapping[str, Any], names: tuple[str, ...]) -> None:
    """Fail clearly on arguments the sandbox engine does not apply (never silently ignore)."""
    used = [n for n in names if config.get(n) not in (None, "", [], {}, False)]
    if used:
        raise ConfigError(
            f"{type_}: argument(s) {', '.join(used)} are not supported by the sandbox engine",
            "remove them or use the terraform provisioner against a real account",
        )


def unique_name(prefix: str | None, default_prefix: str = "terraform-") -> str:
    """Like the provider's id.PrefixedUniqueId for name_prefix/bucket_prefix arguments."""
    return f"{prefix if prefix is not None else default_prefix}{uuid.uuid4().hex[:26]}"


# ---------------------------------------------------------------------------
# Tags
# ---------------------------------------------------------------------------


def tags_of(config: Mapping[str, Any]) -> dict[str, str]:
    """Tags to apply: ``tags_all`` (provider default_tags merged, when the engine supplies it)
    overlaid with the resource's own ``tags``. Values are strings, as in AWS."""
    merged: dict[str, Any] = {}
    merged.update(config.get("tags_all") or {})
    merged.update(config.get("tags") or {})
    return {str(k): "" if v is None else str(v) for k, v in merged.items()}


def tag_list(
    tags: Mapping[str, str], key: str = "Key", value: str = "Value"
) -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in tags.items()]


def tag_changes(
    prior: Mapping[str, Any], config: Mapping[str, Any]
) -> tuple[dict[str, str], list[str]]:
    """(tags to set or change, tag keys to remove) between prior state and new config."""
    old, new = tags_of(prior), tags_of(config)
    upsert = {k: v for k, v in new.items() if old.get(k) != v}
    remove = sorted(k for k in old if k not in new)
    return upsert, remove


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def error_code(err: BaseException) -> str:
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(err: BaseException) -> str:
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Message", ""))
    return str(err)


def server_failed(err: BaseException) -> bool:
    """An HTTP 5xx from the server. moto answers an action it does not implement (or one
    that crashes inside moto) with an HTML 500 page: boto3 raises a ClientError with code
    "500" (JSON protocols) or a ResponseParserError (XML protocols such as IAM)."""
    if isinstance(err, ResponseParserError):
        return True
    if isinstance(err, ClientError):
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return int(status) >= 500 or error_code(err) in {"500", "InternalError", "InternalFailure"}
    return False


@contextmanager
def ignoring(*codes: str) -> Iterator[None]:
    """Swallow ClientErrors with one of ``codes`` (typically "already gone" on delete)."""
    try:
        yield
    except ClientError as err:
        if error_code(err) not in codes:
            raise


@contextmanager
def moto_gap(reason: str) -> Iterator[None]:
    """Report a server-side failure of a call moto is known not to implement as NotProvisionable."""
    try:
        yield
    except (ClientError, ResponseParserError) as err:
        if server_failed(err):
            raise NotProvisionable(reason) from err
        raise


# ---------------------------------------------------------------------------
# Account, partition, ARNs
# ---------------------------------------------------------------------------


def account_id(aws: AwsClients) -> str:
    return str(aws.client("sts").get_caller_identity()["Account"])


@lru_cache(maxsize=1)
def _partitions() -> list[dict[str, Any]]:
    import botocore.session

    return list(botocore.session.get_session().get_data("endpoints")["partitions"])


def partition_info(region: str) -> dict[str, str]:
    """partition, dns_suffix and region description for a region (botocore's endpoint data)."""
    import re

    parts = _partitions()
    found = next((p for p in parts if region in p.get("regions", {})), None)
    if found is None:
        found = next(
            (p for p in parts if p.get("regionRegex") and re.match(p["regionRegex"], region)),
            parts[0],
        )
    return {
        "partition": found["partition"],
        "dns_suffix": found.get("dnsSuffix", "amazonaws.com"),
        "description": found.get("regions", {}).get(region, {}).get("description", ""),
    }


def partition_of(region: str) -> str:
    return partition_info(region)["partition"]


def arn_account(arn: str) -> str:
    """The account field of an ARN (arn:partition:service:region:account:resource)."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 else ""


# ---------------------------------------------------------------------------
# Waiting
# ---------------------------------------------------------------------------


def wait_until(
    check: Callable[[], bool], what: str, timeout: float = 600, interval: float = 0.5
) -> None:
    """Poll ``check`` until it is true (moto answers at once; real AWS may take minutes)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RolloutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
