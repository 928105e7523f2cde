"""The expectation suites, built in code from the naming contract.

Great Expectations is imported inside the functions only: importing this module
(and so ``tasks.expectations``) stays cheap for the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mirror_rollout import contract
from tasks.expectations import frames

if TYPE_CHECKING:
    import pandas
    from great_expectations import ExpectationSuite

#: Terraform plan actions (ResourceChange.action) a plan may contain.
PLAN_ACTIONS = ("create", "update", "delete", "replace", "no-op", "read")
DESTROYING_ACTIONS = ("delete", "replace")

# ISO-8601 date-time with seconds, optional fraction and a zone (Z or +hh:mm).
_ISO_BODY = (
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)"
)
ISO_8601 = rf"^{_ISO_BODY}$"
FP_SK = rf"^event#{_ISO_BODY}#.+$"


def _epoch(now: datetime | float | int | None) -> float:
    if now is None:
        return datetime.now(UTC).timestamp()
    if isinstance(now, datetime):
        return (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()
    return float(now)


def _suite(name: str, expectations: list, meta: dict[str, Any]) -> ExpectationSuite:
    import great_expectations as gx

    return gx.ExpectationSuite(name=name, expectations=expectations, meta=meta)


# -- 1. plan_changes -------------------------------------------------------------------------
def plan_changes_suite(
    *,
    allow_destroy: bool = False,
    expected: Iterable[str] = contract.EXPECTED_ADDRESSES,
    allowed_actions: Iterable[str] = PLAN_ACTIONS,
    environment: str | None = None,
) -> ExpectationSuite:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    stateful = ", ".join(sorted(contract.STATEFUL_TYPES))
    expectations: list[gxe.Expectation] = [
        gxe.ExpectColumnValuesToNotBeNull(
            column="address", description="Every resource change names its address"
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="address", description="Each address appears once in the plan"
        ),
    ]
    if not allow_destroy:
        expectations.append(
            gxe.ExpectColumnValuesToNotBeInSet(
                column="action",
                value_set=list(DESTROYING_ACTIONS),
                row_condition=Column("stateful") == True,  # noqa: E712 (builds a condition)
                description=f"No stateful resource ({stateful}) is deleted or replaced",
            )
        )
    expectations += [
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="address",
            value_set=list(expected),
            row_condition=Column("action") != "delete",
            description="Every address of the naming contract is in the plan and not deleted",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="action",
            value_set=list(allowed_actions),
            description="Every action is one Terraform plans (" + ", ".join(allowed_actions) + ")",
        ),
    ]
    return _suite(
        "plan_changes",
        expectations,
        {"allow_destroy": allow_destroy, "environment": environment},
    )


# -- 2. alarm_inventory ----------------------------------------------------------------------
def _grouped(attribute: Callable[[contract.AlarmSpec], Any]) -> dict[Any, list[contract.AlarmSpec]]:
    groups: dict[Any, list[contract.AlarmSpec]] = {}
    for spec in contract.ALARMS:
        groups.setdefault(attribute(spec), []).append(spec)
    return groups


def alarm_inventory_suite(
    *, environment: str, allowed_states: Iterable[str] = ("OK",)
) -> ExpectationSuite:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    env = environment
    names = [a.full_name(env) for a in contract.ALARMS]
    topic = contract.name(env, "ops-alerts")
    expectations: list = [
        gxe.ExpectTableRowCountToEqual(
            value=len(contract.ALARMS), description=f"Exactly {len(contract.ALARMS)} alarms"
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="name", description="Every alarm has a name"),
        gxe.ExpectColumnValuesToBeUnique(column="name", description="Alarm names are unique"),
        gxe.ExpectColumnDistinctValuesToEqualSet(
            column="name",
            value_set=names,
            description=f"The alarm names are exactly the contract's for {env}",
        ),
    ]

    def per_alarm(column: str, what: str, attribute: Callable[[contract.AlarmSpec], Any]) -> None:
        for value, specs in _grouped(attribute).items():
            who = [s.full_name(env) for s in specs]
            label = ", ".join(s.name for s in specs)
            expectations.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=column,
                    value_set=[value],
                    row_condition=Column("name").is_in(who),
                    description=f"{what} is {value} for {label}",
                )
            )

    per_alarm("threshold", "Threshold", lambda s: s.threshold)
    per_alarm("namespace", "Namespace", lambda s: s.namespace(env))
    per_alarm("metric", "Metric", lambda s: s.metric)
    table_alarms = [a for a in contract.ALARMS if a.table]
    for value, specs in _grouped(lambda s: s.dimensions(env).get("TableName")).items():
        if value is None:
            continue
        who = [s.full_name(env) for s in specs]
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column="table",
                value_set=[value],
                row_condition=Column("name").is_in(who),
                description=f"TableName dimension is {value} for "
                + ", ".join(s.name for s in specs),
            )
        )
    others = [a.full_name(env) for a in contract.ALARMS if not a.table]
    expectations += [
        gxe.ExpectColumnValuesToNotBeNull(
            column="table",
            row_condition=Column("name").is_in([a.full_name(env) for a in table_alarms]),
            description="Every DynamoDB alarm has a TableName dimension",
        ),
        gxe.ExpectColumnValuesToBeNull(
            column="table",
            row_condition=Column("name").is_in(others),
            description="Custom-metric alarms have no TableName dimension",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="comparison",
            value_set=sorted({a.comparison for a in contract.ALARMS}),
            description="Every alarm fires above its threshold (GreaterThanThreshold)",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="period",
            value_set=sorted({a.period for a in contract.ALARMS}),
            description="Every alarm's period is 300 s",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="state",
            value_set=list(allowed_states),
            description="Every alarm is in state " + " or ".join(allowed_states),
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="actions", description="Every alarm has alarm actions"
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="actions",
            regex=rf"(?:^|\s)arn:[^\s]+:{topic}(?:\s|$)",
            description=f"Every alarm's actions name the SNS topic {topic}",
        ),
    ]
    return _suite("alarm_inventory", expectations, {"environment": env})


# -- 3. pitr_status --------------------------------------------------------------------------
def _one_row_per_table(environment: str, what: str) -> list:
    """Exactly one row for each of the contract's three tables of ``environment``."""
    import great_expectations.expectations as gxe

    tables = [t.name(environment) for t in contract.TABLES]
    return [
        gxe.ExpectTableRowCountToEqual(
            value=len(tables), description=f"{what} for {len(tables)} tables"
        ),
        gxe.ExpectColumnDistinctValuesToEqualSet(
            column="table",
            value_set=tables,
            description=f"The tables are exactly the contract's for {environment}",
        ),
    ]


def pitr_status_suite(*, environment: str) -> ExpectationSuite:
    import great_expectations.expectations as gxe

    return _suite(
        "pitr_status",
        [
            *_one_row_per_table(environment, "PITR status read"),
            gxe.ExpectColumnValuesToBeInSet(
                column="status",
                value_set=["ENABLED"],
                description="Point-in-time recovery is ENABLED",
            ),
            gxe.ExpectColumnValuesToNotBeNull(
                column="earliest_restorable",
                description="Each table has an earliest restorable time",
            ),
            gxe.ExpectColumnValuesToMatchRegex(
                column="earliest_restorable",
                regex=ISO_8601,
                description="The earliest restorable time is ISO-8601",
            ),
        ],
        {"environment": environment},
    )


# -- 4. fp_events ----------------------------------------------------------------------------
def fp_events_suite(
    *,
    now: datetime | float | int | None = None,
    retention_days: int = 90,
    tolerance_days: float = 1,
    environment: str | None = None,
) -> ExpectationSuite:
    """FP event items as the Oracle writes them; ``now`` pins the TTL and recordedAt windows."""
    import great_expectations.expectations as gxe

    at = _epoch(now)
    day = timedelta(days=1).total_seconds()
    expires_min = int(at + (retention_days - tolerance_days) * day)
    expires_max = int(at + (retention_days + tolerance_days) * day)
    recorded_min = int((at - tolerance_days * day) * 1000)
    recorded_max = int((at + 3600) * 1000)
    expectations: list = [
        gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"Every item has {c}")
        for c in (
            "pk",
            "sk",
            "gsi1pk",
            "gsi1sk",
            "eventId",
            "timestamp",
            "isFalsePositive",
            "expiresAt",
            "recordedAt",
        )
    ]
    expectations += [
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["pk", "sk"], description="(pk, sk) is unique: writes are conditional"
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="pk", regex=r"^rule#.+$", description="pk is rule#{ruleId}"
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="sk", regex=FP_SK, description="sk is event#{ISO-8601 timestamp}#{eventId}"
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="gsi1pk", regex=r"^finding#.+$", description="gsi1pk is finding#{findingId}"
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="gsi1sk",
            regex=r"^rule#[^#]+#.+$",
            description="gsi1sk is rule#{ruleId}#{ruleVersion}",
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="timestamp", regex=ISO_8601, description="timestamp is ISO-8601 with a zone"
        ),
        gxe.ExpectColumnValuesToBeInTypeList(
            column="isFalsePositive",
            type_list=["bool", "bool_"],
            description="isFalsePositive is a boolean",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="expiresAt",
            min_value=expires_min,
            max_value=expires_max,
            description=f"expiresAt (epoch s) is {retention_days} days ahead "
            f"(+/- {tolerance_days} d)",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="recordedAt",
            min_value=recorded_min,
            max_value=recorded_max,
            description=f"recordedAt is epoch milliseconds within the last {tolerance_days} d",
        ),
    ]
    return _suite(
        "fp_events",
        expectations,
        {"now": datetime.fromtimestamp(at, UTC).isoformat(), "environment": environment},
    )


# -- 5. restore_drill ------------------------------------------------------------------------
def restore_drill_suite(*, environment: str) -> ExpectationSuite:
    """The restored copies against the sources at T: same counts, same digests, copies gone."""
    import great_expectations.expectations as gxe

    prefix = contract.name(environment, "")
    return _suite(
        "restore_drill",
        [
            *_one_row_per_table(environment, "A restore drill ran"),
            gxe.ExpectColumnValuesToMatchRegex(
                column="copy",
                regex=rf"^{prefix}[a-z-]+-drill-[0-9a-f]{{8}}$",
                description="Each copy is named {source}-drill-{short run id}",
            ),
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A="source_items",
                column_B="copy_items",
                description="The copy holds as many items as the source at T",
            ),
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A="source_digest",
                column_B="copy_digest",
                description="The digest of keys and attribute values is the source's at T",
            ),
            gxe.ExpectColumnValuesToBeInSet(
                column="copy_deleted",
                value_set=[True],
                description="Every copy was deleted after the comparison",
            ),
        ],
        {"environment": environment},
    )


# -- registry --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SuiteSpec:
    name: str
    title: str
    build_frame: Callable[[Any], pandas.DataFrame]
    build_suite: Callable[..., ExpectationSuite]
    #: columns that identify a row in failure reports
    index_columns: tuple[str, ...]

    @property
    def slug(self) -> str:
        """The name as Prefect artifact keys allow it (lowercase, digits, dashes)."""
        return self.name.replace("_", "-")


SUITES: dict[str, SuiteSpec] = {
    s.name: s
    for s in (
        SuiteSpec(
            "plan_changes",
            "Plan resource changes",
            frames.build_plan_changes_frame,
            plan_changes_suite,
            ("address",),
        ),
        SuiteSpec(
            "alarm_inventory",
            "Live CloudWatch alarms",
            frames.build_alarm_inventory_frame,
            alarm_inventory_suite,
            ("name",),
        ),
        SuiteSpec(
            "pitr_status",
            "DynamoDB point-in-time recovery",
            frames.build_pitr_status_frame,
            pitr_status_suite,
            ("table",),
        ),
        SuiteSpec(
            "fp_events",
            "FP event items read back",
            frames.build_fp_events_frame,
            fp_events_suite,
            ("eventId",),
        ),
        SuiteSpec(
            "restore_drill",
            "PITR restore drill copies",
            frames.build_restore_drill_frame,
            restore_drill_suite,
            ("table",),
        ),
    )
}


def get_suite(name: str) -> SuiteSpec:
    """``plan_changes`` or ``plan-changes``; unknown names raise ConfigError."""
    spec = SUITES.get(name.replace("-", "_"))
    if spec is None:
        from mirror_rollout.errors import ConfigError

        raise ConfigError(f"unknown expectation suite {name!r}", "use one of " + ", ".join(SUITES))
    return spec
