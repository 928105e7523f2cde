"""IAM and GitHub OIDC: the provider, the deploy role's trust, least-privilege policies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mirror_rollout import contract
from mirror_rollout.documents import as_list
from tasks.guardrails.base import missing, not_planned, plan_check, static_check
from tasks.guardrails.common import Observation, each_found, observe, unless
from tasks.guardrails.families.nonce import IDENTITY_POLICY_TYPES
from tasks.guardrails.plan_view import AFTER_APPLY, Planned, PlanView, planned_document
from tasks.guardrails.policies import open_principal_problems, policy_problems, trust_problems
from tasks.guardrails.view import Block, InfraView

GITHUB_ROLE = "aws_iam_role trusted by GitHub OIDC"
OIDC_PROVIDER = "aws_iam_openid_connect_provider"


def github_trusted(roles: list, trusts_a_provider: Callable[[Any], bool]) -> list:
    """The roles GitHub may assume: named for it, or trusting an OIDC provider."""
    return [r for r in roles if "github" in r.address or trusts_a_provider(r)]


def trust_observations(subject: Any, policy: Any, org: str, repo: str) -> Iterator[Observation]:
    """A role's trust policy (as written or as planned) against ``repo:{org}/{repo}:*``."""
    problems = [("assume_role_policy", p) for p in trust_problems(policy, org, repo)]
    return observe(subject, problems, f"repo:{org}/{repo}:*")


# -- as written -----------------------------------------------------------------------
@static_check("MR-051", "Deploy role trusted only by repo:{org}/{repo}:* (trust policy as written)")
def deploy_role_trust(view: InfraView) -> Iterator[Observation]:
    aws = view.aws
    org, repo = aws.var("github_org", ""), aws.var("github_repo", "")
    providers = {p.address for p in aws.of_type(OIDC_PROVIDER)}
    roles = github_trusted(
        aws.of_type("aws_iam_role"),
        lambda r: bool(aws.references(r.get("assume_role_policy")) & providers),
    )
    return each_found(
        roles,
        missing(view, GITHUB_ROLE),
        lambda role: trust_observations(
            role, aws.resolve(role.document("assume_role_policy")), org, repo
        ),
    )


def _least_privilege(policy: Block) -> Iterator[Observation]:
    document = policy.document("policy")
    if not isinstance(document, dict):
        message = (
            "policy is not written as jsonencode({...}) or JSON; the plan check MR-055 evaluates it"
        )
        return iter([Observation(policy.address, policy.at("policy"), None, message)])
    problems = [("policy", p) for p in policy_problems(document)]
    return observe(policy, problems, "least privilege")


@static_check(
    "MR-052", "IAM policies as written: no * resource for restrictable actions, no wildcard actions"
)
def iam_least_privilege(view: InfraView) -> Iterator[Observation]:
    policies = [p for t in IDENTITY_POLICY_TYPES for p in view.aws.of_type(t)]
    return each_found(policies, missing(view, "aws_iam_role_policy"), _least_privilege)


# -- as planned -----------------------------------------------------------------------
def _provider(provider: Planned) -> Iterator[Observation]:
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
    return observe(provider, problems, contract.OIDC_URL)


@plan_check("MR-050", "GitHub OIDC provider with audience sts.amazonaws.com")
def oidc_provider(plan: PlanView) -> Iterator[Observation]:
    return each_found(plan.of_type(OIDC_PROVIDER), not_planned(plan, OIDC_PROVIDER), _provider)


def _planned_trust(role: Planned, org: str, repo: str) -> Iterator[Observation]:
    policy, why = planned_document(role, "assume_role_policy")
    if why and why.endswith(AFTER_APPLY):
        message = f"{why} (it names the OIDC provider's ARN); MR-051 read it as written"
        return iter([Observation(role.address, role.where("assume_role_policy"), None, message)])
    return trust_observations(role, policy, org, repo)


@plan_check("MR-054", "Deploy role trusted only by repo:{org}/{repo}:* (trust policy as planned)")
def planned_deploy_role_trust(plan: PlanView) -> Iterator[Observation]:
    org, repo = plan.variables.get("github_org") or "", plan.variables.get("github_repo") or ""
    providers = plan.of_type(OIDC_PROVIDER)
    roles = github_trusted(
        plan.of_type("aws_iam_role"),
        lambda r: any(plan.refers_to(r, "assume_role_policy", p) for p in providers),
    )
    return each_found(
        roles, not_planned(plan, GITHUB_ROLE), lambda role: _planned_trust(role, org, repo)
    )


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
        yield from observe(resource, [(key, p) for p in judge(document)], ok)
    if not found:
        yield not_planned(plan, " or ".join(sorted(set(kinds))))


@plan_check(
    "MR-055", "Planned IAM policies: no * resource for restrictable actions, no wildcard actions"
)
def identity_policies(plan: PlanView) -> Iterator[Observation]:
    return policy_observations(plan, IDENTITY_POLICIES, policy_problems, "least privilege")


@plan_check(
    "MR-056", "Planned trust, key, bucket and topic policies: no Allow to any principal (*)"
)
def resource_policies(plan: PlanView) -> Iterator[Observation]:
    return policy_observations(
        plan, RESOURCE_POLICIES, open_principal_problems, "no open principal"
    )
