"""aws_ssm_parameter.

The redaction nonce is created by Terraform with a placeholder (``value`` or the
write-only ``value_wo`` + ``value_wo_version``, with ``ignore_changes = [value]``)
and the nonce flows write the real value. This handler therefore never reads a
parameter's value back from AWS (no GetParameter, with or without decryption)
and writes a value only on create or when the configured ``value`` /
``insecure_value`` changed or ``value_wo_version`` was bumped; the state keeps the
configured placeholder (the engine blanks write-only arguments in state).
"""

from __future__ import annotations

from typing import Any

from mirror_rollout.aws import AwsClients
from mirror_rollout.errors import RolloutError

from .base import ResourceHandler, handler
from .common import (
    account_id,
    changed,
    given,
    ignoring,
    partition_of,
    state,
    tag_changes,
    tag_list,
    tags_of,
)

#: Arguments PutParameter can only change by rewriting the value as well.
REWRITE_ARGS = ("type", "description", "tier", "key_id", "allowed_pattern")


def configured_value(config: dict[str, Any]) -> Any:
    """The value to send: the write-only value_wo, else value, else insecure_value."""
    for arg in ("value_wo", "value", "insecure_value"):
        if given(config.get(arg)):
            return config[arg]
    return None


def value_changed(prior: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether an update must write the value. value_wo itself is never in state, so only
    a bump of value_wo_version says it changed (as in Terraform)."""
    return changed(prior, config, "value", "insecure_value", "value_wo_version")


def parameter_request(config: dict[str, Any], overwrite: bool = False) -> dict[str, Any]:
    """PutParameter arguments: name, type, configured value and metadata.

    Tags go along only on a create (PutParameter refuses Tags with Overwrite)."""
    param_type = config.get("type") or "String"
    req: dict[str, Any] = {
        "Name": config["name"],
        "Type": param_type,
        "Value": configured_value(config),
    }
    if given(config.get("description")):
        req["Description"] = config["description"]
    if given(config.get("tier")):
        req["Tier"] = config["tier"]
    if param_type == "SecureString" and given(config.get("key_id")):
        req["KeyId"] = config["key_id"]
    if given(config.get("allowed_pattern")):
        req["AllowedPattern"] = config["allowed_pattern"]
    if given(config.get("data_type")):
        req["DataType"] = config["data_type"]
    if overwrite:
        req["Overwrite"] = True
    else:
        tags = tags_of(config)
        if tags:
            req["Tags"] = tag_list(tags)
    return req


def parameter_arn(region: str, account: str, name: str) -> str:
    return f"arn:{partition_of(region)}:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


@handler
class SsmParameter(ResourceHandler):
    type = "aws_ssm_parameter"
    force_new = frozenset({"name", "data_type"})

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        ssm = aws.client("ssm")
        req = parameter_request(config, overwrite=bool(config.get("overwrite")))
        version = ssm.put_parameter(**req)["Version"]
        if req.get("Overwrite"):
            self._retag(ssm, config["name"], {}, config)
        return state(config, **self._computed(aws, config["name"], version))

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        ssm = aws.client("ssm")
        name = prior["id"]
        version = prior.get("version")
        if value_changed(prior, config):
            version = ssm.put_parameter(**parameter_request(config, overwrite=True))["Version"]
        elif changed(prior, config, *REWRITE_ARGS):
            # PutParameter needs the value to change any of these; the sandbox must not
            # read the live value (the pipeline-managed nonce) nor overwrite it with the
            # placeholder kept in state.
            which = ", ".join(a for a in REWRITE_ARGS if changed(prior, config, a))
            raise RolloutError(
                f"aws_ssm_parameter {name}: changing {which} would rewrite the parameter's value, "
                "which the pipeline manages (ignore_changes = [value]); the sandbox engine "
                "never reads a parameter value back",
                "replace the parameter (terraform apply -replace) and re-run the nonce bootstrap, "
                "or apply the change with the terraform provisioner",
            )
        self._retag(ssm, name, prior, config)
        return state(config, **self._computed(aws, name, version))

    @staticmethod
    def _retag(ssm: Any, name: str, prior: dict[str, Any], config: dict[str, Any]) -> None:
        upsert, remove = tag_changes(prior, config)
        if remove:
            ssm.remove_tags_from_resource(ResourceType="Parameter", ResourceId=name, TagKeys=remove)
        if upsert:
            ssm.add_tags_to_resource(
                ResourceType="Parameter", ResourceId=name, Tags=tag_list(upsert)
            )

    @staticmethod
    def _computed(aws: AwsClients, name: str, version: Any) -> dict[str, Any]:
        return {
            "id": name,
            "arn": parameter_arn(aws.region, account_id(aws), name),
            "version": version,
        }

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        with ignoring("ParameterNotFound"):
            aws.client("ssm").delete_parameter(Name=prior["id"])
