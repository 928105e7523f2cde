"""aws_iam_openid_connect_provider, aws_iam_role, aws_iam_role_policy,
aws_iam_role_policy_attachment."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from mirror_rollout.aws import AwsClients

from .base import NotProvisionable, ResourceHandler, handler
from .common import (
    changed,
    error_code,
    given,
    ignoring,
    moto_gap,
    reject_unsupported,
    state,
    tag_changes,
    tag_list,
    tags_of,
    unique_name,
)

# ---------------------------------------------------------------------------
# aws_iam_openid_connect_provider
# ---------------------------------------------------------------------------


def oidc_provider_request(config: dict[str, Any]) -> dict[str, Any]:
    req: dict[str, Any] = {
        "Url": config["url"],
        "ClientIDList": list(config.get("client_id_list") or []),
    }
    if config.get("thumbprint_list"):
        req["ThumbprintList"] = list(config["thumbprint_list"])
    tags = tags_of(config)
    if tags:
        req["Tags"] = tag_list(tags)
    return req


@handler
class OidcProvider(ResourceHandler):
    type = "aws_iam_openid_connect_provider"
    force_new = frozenset({"url"})

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        arn = aws.client("iam").create_open_id_connect_provider(**oidc_provider_request(config))[
            "OpenIDConnectProviderArn"
        ]
        return state(config, id=arn, arn=arn)

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        iam = aws.client("iam")
        arn = prior["arn"]
        if changed(prior, config, "thumbprint_list"):
            iam.update_open_id_connect_provider_thumbprint(
                OpenIDConnectProviderArn=arn,
                ThumbprintList=list(config.get("thumbprint_list") or []),
            )
        old = set(prior.get("client_id_list") or [])
        new = list(config.get("client_id_list") or [])
        # moto 5.2.5 does not implement Add/RemoveClientID (HTTP 500): reported as such.
        with moto_gap(
            "moto does not implement AddClientIDToOpenIDConnectProvider / RemoveClientIDFromOpenIDConnectProvider"
        ):
            for client_id in new:
                if client_id not in old:
                    iam.add_client_id_to_open_id_connect_provider(
                        OpenIDConnectProviderArn=arn, ClientID=client_id
                    )
            for client_id in sorted(old - set(new)):
                iam.remove_client_id_from_open_id_connect_provider(
                    OpenIDConnectProviderArn=arn, ClientID=client_id
                )
        upsert, remove = tag_changes(prior, config)
        if remove:
            iam.untag_open_id_connect_provider(OpenIDConnectProviderArn=arn, TagKeys=remove)
        if upsert:
            iam.tag_open_id_connect_provider(OpenIDConnectProviderArn=arn, Tags=tag_list(upsert))
        return state(config, id=arn, arn=arn)

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        with ignoring("NoSuchEntity"):
            aws.client("iam").delete_open_id_connect_provider(OpenIDConnectProviderArn=prior["arn"])


# ---------------------------------------------------------------------------
# aws_iam_role
# ---------------------------------------------------------------------------


def role_request(config: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """CreateRole arguments; the trust policy JSON string goes through as given."""
    req: dict[str, Any] = {
        "RoleName": name or config["name"],
        "AssumeRolePolicyDocument": config["assume_role_policy"],
        "Path": config.get("path") or "/",
    }
    if given(config.get("description")):
        req["Description"] = config["description"]
    if config.get("max_session_duration"):
        req["MaxSessionDuration"] = int(config["max_session_duration"])
    if given(config.get("permissions_boundary")):
        req["PermissionsBoundary"] = config["permissions_boundary"]
    tags = tags_of(config)
    if tags:
        req["Tags"] = tag_list(tags)
    return req


def _role_computed(role: dict[str, Any]) -> dict[str, Any]:
    created = role.get("CreateDate")
    return {
        "id": role["RoleName"],
        "name": role["RoleName"],
        "arn": role["Arn"],
        "unique_id": role["RoleId"],
        "create_date": created.isoformat() if hasattr(created, "isoformat") else created,
    }


@handler
class IamRole(ResourceHandler):
    type = "aws_iam_role"
    force_new = frozenset({"name", "name_prefix", "path"})

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        # inline_policy / managed_policy_arns would compete with aws_iam_role_policy and
        # aws_iam_role_policy_attachment (which the project uses); not applied here.
        reject_unsupported(self.type, config, ("inline_policy", "managed_policy_arns"))
        name = config.get("name") or unique_name(config.get("name_prefix"))
        role = aws.client("iam").create_role(**role_request(config, name))["Role"]
        return state(config, **_role_computed(role))

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        reject_unsupported(self.type, config, ("inline_policy", "managed_policy_arns"))
        iam = aws.client("iam")
        name = prior["id"]
        if changed(prior, config, "assume_role_policy"):
            iam.update_assume_role_policy(
                RoleName=name, PolicyDocument=config["assume_role_policy"]
            )
        if changed(prior, config, "description", "max_session_duration"):
            kwargs: dict[str, Any] = {
                "RoleName": name,
                "Description": config.get("description") or "",
            }
            if config.get("max_session_duration"):
                kwargs["MaxSessionDuration"] = int(config["max_session_duration"])
            iam.update_role(**kwargs)
        if changed(prior, config, "permissions_boundary"):
            if given(config.get("permissions_boundary")):
                iam.put_role_permissions_boundary(
                    RoleName=name, PermissionsBoundary=config["permissions_boundary"]
                )
            else:
                iam.delete_role_permissions_boundary(RoleName=name)
        upsert, remove = tag_changes(prior, config)
        if remove:
            iam.untag_role(RoleName=name, TagKeys=remove)
        if upsert:
            iam.tag_role(RoleName=name, Tags=tag_list(upsert))
        return state(config, **_role_computed(iam.get_role(RoleName=name)["Role"]))

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        iam = aws.client("iam")
        name = prior["id"]
        try:
            # As the provider: leave instance profiles; with force_detach_policies also
            # drop inline and managed policies (else they are their own resources, deleted
            # before the role, and a leftover makes DeleteRole fail with DeleteConflict).
            for profile in iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
                iam.remove_role_from_instance_profile(
                    InstanceProfileName=profile["InstanceProfileName"], RoleName=name
                )
            if prior.get("force_detach_policies"):
                for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
                    iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
                for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                    iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
            iam.delete_role(RoleName=name)
        except ClientError as err:
            if error_code(err) != "NoSuchEntity":
                raise


# ---------------------------------------------------------------------------
# aws_iam_role_policy
# ---------------------------------------------------------------------------


def role_policy_request(config: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    return {
        "RoleName": config["role"],
        "PolicyName": name or config["name"],
        "PolicyDocument": config["policy"],
    }


@handler
class IamRolePolicy(ResourceHandler):
    type = "aws_iam_role_policy"
    force_new = frozenset({"name", "name_prefix", "role"})

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        name = config.get("name") or unique_name(config.get("name_prefix"))
        aws.client("iam").put_role_policy(**role_policy_request(config, name))
        return state(config, id=f"{config['role']}:{name}", name=name)

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        name = prior.get("name") or prior["id"].split(":", 1)[1]
        aws.client("iam").put_role_policy(**role_policy_request(config, name))
        return state(config, id=prior["id"], name=name)

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        role, name = prior["id"].split(":", 1)
        with ignoring("NoSuchEntity"):
            aws.client("iam").delete_role_policy(RoleName=role, PolicyName=name)


# ---------------------------------------------------------------------------
# aws_iam_role_policy_attachment
# ---------------------------------------------------------------------------


def is_aws_managed(policy_arn: str) -> bool:
    return ":iam::aws:policy/" in policy_arn


@handler
class IamRolePolicyAttachment(ResourceHandler):
    """Attaches a managed policy. moto knows AWS-managed policies (arn:aws:iam::aws:policy/...)
    only when started with MOTO_IAM_LOAD_MANAGED_POLICIES=true (verified against moto 5.2.5:
    without it AttachRolePolicy answers NoSuchEntity for AWSBackupServiceRolePolicyForBackup,
    with it the attachment succeeds); an unknown AWS-managed policy is NotProvisionable."""

    type = "aws_iam_role_policy_attachment"
    force_new = frozenset({"role", "policy_arn"})

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        role, policy_arn = config["role"], config["policy_arn"]
        try:
            aws.client("iam").attach_role_policy(RoleName=role, PolicyArn=policy_arn)
        except ClientError as err:
            if error_code(err) == "NoSuchEntity" and is_aws_managed(policy_arn):
                self._raise_if_role_missing(aws, role)
                raise NotProvisionable(
                    f"moto does not know the AWS-managed policy {policy_arn} "
                    "(it loads AWS-managed policies only with MOTO_IAM_LOAD_MANAGED_POLICIES=true)"
                ) from err
            raise
        # The provider's id is a generated "<role>-<timestamp>"; this one is stable.
        return state(config, id=f"{role}/{policy_arn}")

    @staticmethod
    def _raise_if_role_missing(aws: AwsClients, role: str) -> None:
        aws.client("iam").get_role(RoleName=role)  # NoSuchEntity for the role is a real error

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        return state(config, id=prior["id"])  # every argument forces replacement

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        with ignoring("NoSuchEntity"):
            aws.client("iam").detach_role_policy(
                RoleName=prior["role"], PolicyArn=prior["policy_arn"]
            )
