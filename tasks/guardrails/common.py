"""What the static and the plan guardrails share: checks with ids, observations, results.

A check is a small class registered under its id; ``inspect`` yields one
Observation per thing it looked at. An observation is ok (True), a problem
(False), or not shown by the input (None: for example a value Terraform knows
only after apply). ``run_checks`` turns them into typed CheckResults: FAIL per
problem; PASS when something was seen and nothing is wrong (the unseen parts are
named in the message and the evidence); SKIPPED, with the reason, when nothing
could be seen. A check that finds nothing to inspect fails: a guardrail never
passes on absent evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from mirror_rollout import contract
from mirror_rollout.results import CheckResult, Evidence, Severity, Status

Subject = TypeVar("Subject")


@dataclass(frozen=True)
class Observation:
    subject: str  # resource address (or file) the observation is about
    location: str  # file:line for the static checks, the plan's address/path for plan checks
    ok: bool | None  # None: the input does not show it
    message: str


class Check(Generic[Subject]):
    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[Severity] = Severity.error

    def inspect(self, subject: Subject) -> Iterable[Observation]:
        raise NotImplementedError


class Registry(dict[str, type[Check]]):
    """Check classes by id; ``register`` is the class decorator."""

    def register(self, cls: type[Check]) -> type[Check]:
        if cls.id in self:
            raise ValueError(f"duplicate guardrail id {cls.id}")
        self[cls.id] = cls
        return cls


def run_checks(
    registry: Registry, subject: Any, only: Iterable[str] | None = None
) -> list[CheckResult]:
    """Run every check of ``registry`` (or ``only`` those ids) on ``subject``."""
    wanted = None if only is None else set(only)
    results: list[CheckResult] = []
    for check_id in sorted(registry):
        if wanted is not None and check_id not in wanted:
            continue
        cls = registry[check_id]
        observations = list(cls().inspect(subject))
        results.extend(to_results(cls, observations))
    return results


def to_results(cls: type[Check], observations: list[Observation]) -> list[CheckResult]:
    if not observations:
        observations = [Observation(cls.id, "", False, "nothing to inspect")]
    evidence = [
        Evidence(
            source=o.location,
            observed={"subject": o.subject, "ok": o.ok, "detail": o.message},
        )
        for o in observations
    ]

    def result(status: Status, subject: str, location: str, message: str) -> CheckResult:
        return CheckResult(
            check_id=cls.id,
            title=cls.title,
            status=status,
            severity=cls.severity,
            subject=subject,
            location=location,
            message=message,
            evidence=evidence,
        )

    failures = [o for o in observations if o.ok is False]
    if failures:
        return [result(Status.FAIL, f.subject, f.location, f.message) for f in failures]
    seen = [o for o in observations if o.ok]
    unseen = [o for o in observations if o.ok is None]
    notes = [f"{o.subject}: {o.message}" for o in unseen]
    if not seen:
        return [
            result(
                Status.SKIPPED,
                ", ".join(o.subject for o in unseen),
                unseen[0].location,
                "; ".join(notes)[:500],
            )
        ]
    return [
        result(
            Status.PASS,
            ", ".join(o.subject for o in seen),
            seen[0].location,
            "; ".join(_counted([o.message for o in seen]) + notes)[:500],
        )
    ]


def _counted(messages: list[str]) -> list[str]:
    """Each distinct message once, with how often it was seen ("tagged (x21)")."""
    counts: dict[str, int] = {}
    for message in messages:
        counts[message] = counts.get(message, 0) + 1
    return [m if n == 1 else f"{m} (x{n})" for m, n in counts.items()]


# -- small value helpers ---------------------------------------------------------------
def as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def strings(value: Any) -> Iterable[str]:
    """Every string inside a nested structure of dicts and lists."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def declares_nonce_version(name: Any, resource_name: str = "") -> bool:
    """Is an SSM parameter with this (resolved) name / resource name a nonce version?"""
    text = str(name or "")
    return (
        "redaction_nonce" in text
        or bool(contract.NONCE_NAME.match(text))
        or bool(contract.NONCE_LEGACY_NAME.search(text))
        or "nonce" in resource_name.lower()
    )


NONCE_OWNERSHIP = (
    "nonce versions (/guardian/{env}/redaction_nonce_v{N}) are runtime data owned by the "
    "nonce-bootstrap and nonce-rotation flows, never by Terraform (DESIGN.md, Nonce)"
)


# -- IAM policy documents -------------------------------------------------------------
def statements(policy: Any) -> list[dict]:
    return [s for s in as_list((policy or {}).get("Statement")) if isinstance(s, dict)]


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
    for statement in statements(policy):
        if statement.get("Effect") != "Allow":
            continue
        actions = [str(a) for a in as_list(statement.get("Action"))]
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
    for statement in statements(policy):
        principal = statement.get("Principal")
        anyone = principal == "*" or (
            isinstance(principal, dict) and "*" in as_list(principal.get("AWS"))
        )
        if statement.get("Effect") == "Allow" and anyone and not statement.get("Condition"):
            problems.append(f"statement {statement.get('Sid', '?')} allows any principal (*)")
    return problems


def trust_problems(policy: Any, org: str, repo: str) -> list[str]:
    """Why a role trust policy admits more than ``repo:{org}/{repo}:*`` (empty if it does not)."""
    if policy is None:
        return ["assume_role_policy is not a JSON document"]
    problems = []
    if not org or not repo or any(ch in f"{org}/{repo}" for ch in "*?"):
        problems.append(f"github_org/github_repo must name one repository, not {org!r}/{repo!r}")
    allowed = re.compile(rf"^repo:{re.escape(org)}/{re.escape(repo)}:")
    allows = [s for s in statements(policy) if s.get("Effect") == "Allow"]
    if not allows:
        problems.append("no Allow statement")
    for statement in allows:
        condition = statement.get("Condition") or {}
        claims: dict[str, list] = {"sub": [], "aud": []}
        for operator in condition.values():
            if isinstance(operator, dict):
                for key, values in operator.items():
                    claim = str(key).rpartition(":")[2]
                    if claim in claims:
                        claims[claim].extend(as_list(values))
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
        problems += open_principal_problems({"Statement": [statement]})
    return problems


# -- the restore drill's grants -------------------------------------------------------
def glob_match(pattern: str, text: str) -> bool:
    """IAM-style wildcard match (``*`` any run of characters, ``?`` one character)."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, text) is not None


#: What the drill may do to its own copies: describe, scan, delete, and the item writes
#: DynamoDB needs on a restore's target table. Nothing else, and nothing on other tables.
DRILL_COPY_ACTIONS = frozenset(
    {
        "dynamodb:DescribeTable",
        "dynamodb:Scan",
        "dynamodb:DeleteTable",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    }
)
#: The drill's needs that must be granted on its copies.
DRILL_COPY_NEEDS = ("dynamodb:DescribeTable", "dynamodb:Scan", "dynamodb:DeleteTable")
RESTORE = "dynamodb:RestoreTableToPointInTime"
DELETE_TABLE = "dynamodb:DeleteTable"


def _table_of(environment: str, resource: str) -> str:
    """The table name (pattern) an IAM resource names; "*" for every table, "" for no table.

    A resource is an ARN (as planned, or as written with interpolations resolved) or a
    reference to a contract table's ``arn`` (as written).
    """
    for spec in contract.TABLES:
        if resource.strip() == f"${{{spec.address}.arn}}":
            return spec.name(environment)
    if resource == "*":
        return "*"
    arn = resource.split(":", 5)
    if len(arn) == 6 and arn[2] in ("dynamodb", "*"):
        kind, _, name = arn[5].partition("/")
        if kind in ("table", "*") and "/" not in name:
            return name or "*"
        return "*" if kind == "*" else ""
    # An expression the reader cannot resolve: itself, which no rule accepts.
    return resource if "${" in resource else ""


def drill_only(environment: str, pattern: str) -> bool:
    """Can the table name pattern match nothing but this environment's drill copies?"""
    from tasks.restore_drill.checks import DRILL_MARKER

    prefix = contract.name(environment, "")
    return pattern.startswith(prefix) and DRILL_MARKER in pattern and "${" not in pattern


def drill_grant_problems(env: str, document: Any, require: bool = True) -> list[str]:
    """Why an identity policy grants the restore drill more (or, with ``require``, less)
    than it needs."""
    from tasks.restore_drill.checks import drill_table_name, source_tables

    sources = source_tables(env)
    a_copy = drill_table_name(env, contract.TABLES[0].key, "0" * 8)
    problems, restorable, on_copies = [], set(), set()
    for statement in as_list((document or {}).get("Statement")):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        sid = statement.get("Sid", "?")
        actions = [str(a) for a in as_list(statement.get("Action"))]
        tables = [_table_of(env, str(r)) for r in as_list(statement.get("Resource"))]
        if any(glob_match(a, RESTORE) for a in actions):
            for table in tables:
                if table in sources:
                    restorable.add(table)
                else:
                    problems.append(
                        f"statement {sid} allows restoring from {table or 'a non-table resource'}"
                        f": only {', '.join(sorted(sources))}"
                    )
        if any(glob_match(a, DELETE_TABLE) for a in actions):
            problems += [
                f"statement {sid} allows deleting {table!r}, not only drill copies "
                f"({contract.name(env, '')}<table>-drill-*)"
                for table in tables
                if table and not drill_only(env, table)
            ]
        drill = [t for t in tables if t and drill_only(env, t)]
        if drill:
            wider = [a for a in actions if not any(glob_match(a, d) for d in DRILL_COPY_ACTIONS)]
            wider += [a for a in actions if "*" in a or "?" in a]
            if wider:
                problems.append(
                    f"statement {sid} grants {sorted(set(wider))} on drill copies: only "
                    + ", ".join(sorted(DRILL_COPY_ACTIONS))
                )
            if any(glob_match(t, a_copy) for t in drill):
                on_copies |= {need for need in DRILL_COPY_NEEDS if need in actions}
    if not require:
        return problems
    missing = sorted(sources - restorable)
    if missing:
        problems.append(f"no statement allows {RESTORE} on {', '.join(missing)}")
    lacking = [need for need in DRILL_COPY_NEEDS if need not in on_copies]
    if lacking:
        problems.append(f"no statement allows {', '.join(lacking)} on the drill copies ({a_copy})")
    return problems


# -- dashboards -----------------------------------------------------------------------
_SEARCH = re.compile(
    r"\{(?P<namespace>[^,}]+)[^}]*\}.*?MetricName\s*=\s*\\?\"?(?P<metric>[A-Za-z]+)"
)


def dashboard_metrics(body: Any) -> tuple[set[tuple[str, str, str]], list[dict]]:
    """(namespace, metric, TableName or "") of every metric row, and the alarm widgets."""
    rows: set[tuple[str, str, str]] = set()
    alarm_widgets = []
    for widget in as_list((body or {}).get("widgets")):
        props = widget.get("properties") or {}
        if widget.get("type") == "alarm":
            alarm_widgets.append(props)
        previous: list = []
        for row in as_list(props.get("metrics")):
            if not isinstance(row, list):
                continue
            for options in (v for v in row if isinstance(v, dict)):
                # A SEARCH expression row: SEARCH('{Namespace,Dim,...} MetricName="X" ...')
                search = _SEARCH.search(str(options.get("expression", "")))
                if search:
                    rows.add((search["namespace"], search["metric"], ""))
            # "." repeats the previous row's value at that position (CloudWatch shorthand).
            plain = [v for v in row if not isinstance(v, dict)]
            plain = [
                previous[i] if v == "." and i < len(previous) else v for i, v in enumerate(plain)
            ]
            previous = plain
            if len(plain) >= 2:
                dims = dict(zip(plain[2::2], plain[3::2], strict=False))
                rows.add((str(plain[0]), str(plain[1]), str(dims.get("TableName", ""))))
    return rows, alarm_widgets
