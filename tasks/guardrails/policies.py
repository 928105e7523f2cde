"""IAM policy documents (as written or as planned): least privilege, open principals, trust."""

from __future__ import annotations

import re
from typing import Any

from mirror_rollout import contract
from mirror_rollout.documents import as_list


def statements(policy: Any) -> list[dict]:
    return [s for s in as_list((policy or {}).get("Statement")) if isinstance(s, dict)]


def allows(policy: Any) -> list[dict]:
    """The Allow statements of a policy document."""
    return [s for s in statements(policy) if s.get("Effect") == "Allow"]


def actions_of(statement: dict) -> list[str]:
    return [str(a) for a in as_list(statement.get("Action"))]


def glob_match(pattern: str, text: str) -> bool:
    """IAM-style wildcard match (``*`` any run of characters, ``?`` one character)."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, text) is not None


#: Actions that support no resource-level permissions, so "*" is their only resource.
UNSCOPED_ACTIONS = frozenset(
    {
        "sts:GetCallerIdentity",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:DescribeAlarmHistory",
        "cloudwatch:GetMetricData",
        "cloudwatch:GetMetricStatistics",
        "cloudwatch:ListMetrics",
        "cloudwatch:ListDashboards",
        "cloudwatch:PutMetricData",
        "dynamodb:ListTables",
        "kms:ListAliases",
        "kms:ListKeys",
        "s3:ListAllMyBuckets",
        "sns:ListTopics",
        "ssm:DescribeParameters",
        "backup:ListBackupVaults",
        "backup:ListBackupPlans",
        "cloudtrail:DescribeTrails",
        "iam:ListOpenIDConnectProviders",
    }
)


def policy_problems(policy: Any) -> list[str]:
    """Why an identity policy is wider than least privilege (empty if it is not)."""
    problems = []
    for statement in allows(policy):
        actions = actions_of(statement)
        resources = as_list(statement.get("Resource"))
        sid = statement.get("Sid", "?")
        if any(a == "*" or a.endswith(":*") for a in actions):
            problems.append(f"statement {sid} allows wildcard actions {actions}")
        if "*" in resources:
            wide = [a for a in actions if a not in UNSCOPED_ACTIONS]
            if wide:
                problems.append(f"statement {sid} grants {wide} on every resource (*)")
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"statement {sid} uses NotAction/NotResource (allows by exclusion)")
    return problems


def open_principal_problems(policy: Any) -> list[str]:
    """Allow statements of a resource or trust policy open to any principal without a condition."""
    problems = []
    for statement in allows(policy):
        principal = statement.get("Principal")
        anyone = principal == "*" or (
            isinstance(principal, dict) and "*" in as_list(principal.get("AWS"))
        )
        if anyone and not statement.get("Condition"):
            problems.append(f"statement {statement.get('Sid', '?')} allows any principal (*)")
    return problems


def _claims(condition: dict) -> dict[str, list]:
    """The token claims (sub, aud) a statement's condition names, over all its operators."""
    claims: dict[str, list] = {"sub": [], "aud": []}
    for operator in condition.values():
        if isinstance(operator, dict):
            for key, values in operator.items():
                claim = str(key).rpartition(":")[2]
                if claim in claims:
                    claims[claim].extend(as_list(values))
    return claims


def _claim_problems(statement: dict, org: str, repo: str) -> list[str]:
    allowed = re.compile(rf"^repo:{re.escape(org)}/{re.escape(repo)}:")
    claims = _claims(statement.get("Condition") or {})
    problems = []
    if not claims["sub"]:
        problems.append(
            f"no {contract.OIDC_URL.removeprefix('https://')}:sub condition: "
            "any repository could assume the role"
        )
    for sub in claims["sub"]:
        head = ":".join(str(sub).split(":")[:2])
        if not allowed.match(str(sub)) or any(ch in head for ch in "*?"):
            problems.append(f"sub {sub!r} is wider than repo:{org}/{repo}:*")
    if claims["aud"] and set(claims["aud"]) != {contract.OIDC_AUDIENCE}:
        problems.append(f"aud must be {contract.OIDC_AUDIENCE}")
    return problems


def trust_problems(policy: Any, org: str, repo: str) -> list[str]:
    """Why a role trust policy admits more than ``repo:{org}/{repo}:*`` (empty if it does not)."""
    if policy is None:
        return ["assume_role_policy is not a JSON document"]
    problems = []
    if not org or not repo or any(ch in f"{org}/{repo}" for ch in "*?"):
        problems.append(f"github_org/github_repo must name one repository, not {org!r}/{repo!r}")
    granted = allows(policy)
    if not granted:
        problems.append("no Allow statement")
    for statement in granted:
        problems += _claim_problems(statement, org, repo)
        problems += open_principal_problems({"Statement": [statement]})
    return problems
