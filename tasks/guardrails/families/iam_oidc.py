"""IAM and GitHub OIDC: the provider, the deploy role's trust, least-privilege policies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mirror_rollout import contract
from mirror_rollout.documents import as_list
from tasks.guardrails.base import Guardrail, PlanGuardrail, missing, not_planned
from tasks.guardrails.common import Observation, guardrail, unless
from tasks.guardrails.families.nonce import IDENTITY_POLICY_TYPES
from tasks.guardrails.plan_view import AFTER_APPLY, PlanView, planned_document
from tasks.guardrails.policies import open_principal_problems, policy_problems, trust_problems

GITHUB_ROLE = "aws_iam_role trusted by GitHub OIDC"


def github_trusted(roles: list, trusts_a_provider: Callable[[Any], bool]) -> list:
    """The roles GitHub may assume: named for it, or trusting an OIDC provider."""
    return [r for r in roles if "github" in r.address or trusts_a_provider(r)]


# -- as written -----------------------------------------------------------------------
@guardrail
class DeployRoleTrust(Guardrail):
    id = "MR-051"
    title = "Deploy role trusted only by repo:{org}/{repo}:* (trust policy as written)"

    def inspect(self, view):
        aws = view.aws
        org, repo = aws.var("github_org", ""), aws.var("github_repo", "")
        providers = {p.address for p in aws.of_type("aws_iam_openid_connect_provider")}
        roles = github_trusted(
            aws.of_type("aws_iam_role"),
            lambda r: bool(aws.references(r.get("assume_role_policy")) & providers),
        )
        if not roles:
            yield missing(view, GITHUB_ROLE)
        for role in roles:
            policy = aws.resolve(role.document("assume_role_policy"))
            problems = [("assume_role_policy", p) for p in trust_problems(policy, org, repo)]
            yield from self.observe(role, problems, f"repo:{org}/{repo}:*")


@guardrail
class IamLeastPrivilege(Guardrail):
    id = "MR-052"
    title = "IAM policies as written: no * resource for restrictable actions, no wildcard actions"

    def inspect(self, view):
        policies = [p for t in IDENTITY_POLICY_TYPES for p in view.aws.of_type(t)]
        if not policies:
            yield missing(view, "aws_iam_role_policy")
        for policy in policies:
            document = policy.document("policy")
            if not isinstance(document, dict):
                yield Observation(
                    policy.address,
                    policy.at("policy"),
                    None,
                    "policy is not written as jsonencode({...}) or JSON; the plan check "
                    "MR-055 evaluates it",
                )
                continue
            problems = [("policy", p) for p in policy_problems(document)]
            yield from self.observe(policy, problems, "least privilege")


# -- as planned -----------------------------------------------------------------------
@guardrail
class OidcProvider(PlanGuardrail):
    id = "MR-050"
    title = "GitHub OIDC provider with audience sts.amazonaws.com"

    def inspect(self, plan):
        providers = plan.of_type("aws_iam_openid_connect_provider")
        if not providers:
            yield not_planned(plan, "aws_iam_openid_connect_provider")
        for provider in providers:
            # AWS answers the URL without its scheme; the provider keeps what it read.
            url = str(provider.values.get("url") or "")
            problems = unless(
                url.removeprefix("https://") == contract.OIDC_URL.removeprefix("https://"),
                "url",
                f"url must be {contract.OIDC_URL}",
            ) + unless(
                as_list(provider.values.get("client_id_list")) == [contract.OIDC_AUDIENCE],
                "client_id_list",
                f"client_id_list must be [{contract.OIDC_AUDIENCE!r}]",
            )
            yield from self.observe(provider, problems, contract.OIDC_URL)


@guardrail
class PlannedDeployRoleTrust(PlanGuardrail):
    id = "MR-054"
    title = "Deploy role trusted only by repo:{org}/{repo}:* (trust policy as planned)"

    def inspect(self, plan):
        org, repo = plan.variables.get("github_org") or "", plan.variables.get("github_repo") or ""
        providers = plan.of_type("aws_iam_openid_connect_provider")
        roles = github_trusted(
            plan.of_type("aws_iam_role"),
            lambda r: any(plan.refers_to(r, "assume_role_policy", p) for p in providers),
        )
        if not roles:
            yield not_planned(plan, GITHUB_ROLE)
        for role in roles:
            policy, why = planned_document(role, "assume_role_policy")
            if why and why.endswith(AFTER_APPLY):
                yield Observation(
                    role.address,
                    role.where("assume_role_policy"),
                    None,
                    f"{why} (it names the OIDC provider's ARN); MR-051 read it as written",
                )
                continue
            problems = [("assume_role_policy", p) for p in trust_problems(policy, org, repo)]
            yield from self.observe(role, problems, f"repo:{org}/{repo}:*")


IDENTITY_POLICIES = dict.fromkeys(IDENTITY_POLICY_TYPES, "policy")
RESOURCE_POLICIES = {
    "aws_iam_role": "assume_role_policy",
    "aws_kms_key": "policy",
    "aws_s3_bucket_policy": "policy",
    "aws_sns_topic_policy": "policy",
    "aws_sns_topic": "policy",
}


def policy_observations(
    plan: PlanView, kinds: dict[str, str], judge: Callable[[Any], list[str]], ok: str
) -> Iterator[Observation]:
    """Judge every planned document of ``kinds`` (resource type -> argument) that is set."""
    found = 0
    for resource in (r for r in plan.resources if r.type in kinds):
        key = kinds[resource.type]
        if plan.expression(resource, key) is None:
            continue  # not set in the configuration (a provider default, such as a topic's)
        found += 1
        document, why = planned_document(resource, key)
        if why:
            shown = None if why.endswith(AFTER_APPLY) else False
            yield Observation(resource.address, resource.where(key), shown, why)
            continue
        problems = [(key, p) for p in judge(document)]
        yield from PlanGuardrail.observe(resource, problems, ok)
    if not found:
        yield not_planned(plan, " or ".join(sorted(set(kinds))))


@guardrail
class IdentityPolicies(PlanGuardrail):
    id = "MR-055"
    title = "Planned IAM policies: no * resource for restrictable actions, no wildcard actions"

    def inspect(self, plan):
        yield from policy_observations(plan, IDENTITY_POLICIES, policy_problems, "least privilege")


@guardrail
class ResourcePolicies(PlanGuardrail):
    id = "MR-056"
    title = "Planned trust, key, bucket and topic policies: no Allow to any principal (*)"

    def inspect(self, plan):
        yield from policy_observations(
            plan, RESOURCE_POLICIES, open_principal_problems, "no open principal"
        )
