"""DynamoDB tables: PITR, encryption, the Oracle's access patterns, the contract's schema."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

from mirror_rollout import contract
from mirror_rollout.documents import as_list
from mirror_rollout.errors import ConfigError
from tasks.data_plane.checks import TableShape, mismatches
from tasks.data_plane.spec import SPEC_PATH, DataPlane, load_data_plane
from tasks.guardrails.base import (
    declared_tables,
    first,
    is_cmk,
    is_true,
    missing,
    not_planned,
    plan_check,
    planned_tables,
    static_check,
)
from tasks.guardrails.common import Observation, Problem, each_expected, observe, unless
from tasks.guardrails.plan_view import Planned, PlanView
from tasks.guardrails.view import Block, InfraView

# -- as written -----------------------------------------------------------------------
#: The contract's tables by Terraform address.
SPECS = {spec.address: spec for spec in contract.TABLES}


def _pitr(view: InfraView, table: Block) -> Iterator[Observation]:
    if not table.blocks("point_in_time_recovery"):
        return observe(table, [("", "no point_in_time_recovery block")], "")
    raw = table.block("point_in_time_recovery").get("enabled")
    ok, why = is_true(view.aws, raw)
    if not ok and isinstance(raw, str) and raw.startswith("${var."):
        # The value comes from a variable: blame the tfvars line that sets it.
        name = raw[len("${var.") : -1]
        message = f"point_in_time_recovery.enabled {why}: set {name} = true for {view.env}"
        return iter([Observation(table.address, view.aws.var_location(name), False, message)])
    problems = unless(
        ok,
        "point_in_time_recovery.enabled",
        f"point_in_time_recovery.enabled {why}, must be true",
    )
    return observe(table, problems, "PITR enabled")


@static_check("MR-001", "Point-in-time recovery on every DynamoDB table")
def table_pitr(view: InfraView) -> Iterator[Observation]:
    return each_expected(
        declared_tables(view), partial(missing, view), lambda table: _pitr(view, table)
    )


def _encryption(view: InfraView, table: Block) -> Iterator[Observation]:
    sse = table.block("server_side_encryption")
    problems = unless(
        is_true(view.aws, sse.get("enabled"))[0],
        "server_side_encryption.enabled",
        "server_side_encryption.enabled must be true",
    ) + unless(
        is_cmk(view.aws, sse.get("kms_key_arn")),
        "server_side_encryption.kms_key_arn",
        "server_side_encryption.kms_key_arn must refer to the project CMK (aws_kms_key.<name>.arn)",
    )
    return observe(table, problems, "SSE with the project CMK")


@static_check("MR-002", "Every DynamoDB table encrypted with the project CMK")
def table_encryption(view: InfraView) -> Iterator[Observation]:
    return each_expected(
        declared_tables(view), partial(missing, view), lambda table: _encryption(view, table)
    )


#: Where a data-plane mismatch is blamed in a table block, by its aspect. Encryption is
#: MR-002's (same rule, one failure), so MR-009 leaves the "sse" aspect out.
_ASPECT_ARGUMENT = {"keys": "hash_key", "index": "global_secondary_index", "ttl": "ttl"}


def table_shape(view: InfraView, table: Block) -> TableShape:
    """What a raw table block declares, in the data-plane contract's terms (no evaluation)."""
    types = {a.get("name"): a.get("type") for a in table.blocks("attribute")}

    def keyed(*names: Any) -> dict[str, str]:
        return {str(n): str(types.get(n, "?")) for n in names if n}

    ttl = table.block("ttl")
    # As written: a name or projection may be absent (None), which the contract reports.
    indexes: dict[Any, Any] = {
        g.get("name"): (keyed(g.get("hash_key"), g.get("range_key")), g.get("projection_type"))
        for g in table.blocks("global_secondary_index")
    }
    return TableShape(
        name=table.address,
        keys=keyed(table.get("hash_key"), table.get("range_key")),
        indexes=indexes,
        ttl=ttl.get("attribute_name"),
        ttl_status=("ENABLED" if is_true(view.aws, ttl.get("enabled"))[0] else "DISABLED")
        if ttl
        else None,
    )


def _serves(view: InfraView, plane: DataPlane, table: Block) -> Iterator[Observation]:
    short = SPECS[table.address].key
    use = plane.tables[short]
    shape = table_shape(view, table)
    problems: list[Problem] = list(
        dict.fromkeys(
            (_ASPECT_ARGUMENT[aspect], message)
            for p in plane.patterns
            if p.table == short
            for aspect, message in mismatches(p, use, shape)
            if aspect in _ASPECT_ARGUMENT
        )
    )
    ids = ", ".join(p.id for p in plane.patterns if p.table == short)
    return observe(table, problems, f"serves {ids}")


@static_check("MR-009", "Tables serve the Oracle's access patterns (infra/data-plane.yaml)")
def oracle_access_patterns(view: InfraView) -> Iterator[Observation]:
    try:
        plane = load_data_plane(view.root)
    except ConfigError as exc:
        return iter([Observation(str(SPEC_PATH), str(SPEC_PATH), False, exc.line())])
    specs = {s.key: s for s in contract.TABLES}
    addresses = [specs[short].address for short in plane.tables]
    return each_expected(
        [(a, view.aws.get(a)) for a in addresses],
        partial(missing, view),
        lambda table: _serves(view, plane, table),
    )


# -- as planned -----------------------------------------------------------------------
def _differs(values: dict, key: str, expected: Any) -> list[Problem]:
    actual = values.get(key)
    return unless(actual == expected, key, f"{key} is {actual!r}, expected {expected!r}")


def _index_problems(spec: contract.TableSpec, values: dict) -> list[Problem]:
    if not spec.gsi:
        return []
    gsis = {g.get("name"): g for g in as_list(values.get("global_secondary_index"))}
    gsi = gsis.get(spec.gsi[0])
    if gsi is None:
        return [("global_secondary_index", f"index {spec.gsi[0]} is missing")]
    shape = (gsi.get("hash_key"), gsi.get("range_key"), gsi.get("projection_type"))
    return unless(
        shape == (spec.gsi[1], spec.gsi[2], "ALL"),
        "global_secondary_index",
        f"{spec.gsi[0]} must be {spec.gsi[1]}/{spec.gsi[2]} with projection ALL",
    )


def schema_problems(spec: contract.TableSpec, env: str, values: dict) -> list[Problem]:
    """How a planned table differs from the contract's name, keys, attributes, TTL, index."""
    problems = _differs(values, "name", spec.name(env))
    problems += unless(
        values.get("billing_mode") == "PAY_PER_REQUEST",
        "billing_mode",
        "billing_mode must be PAY_PER_REQUEST",
    )
    problems += _differs(values, "hash_key", spec.hash_key)
    problems += _differs(values, "range_key", spec.range_key)
    types = {a.get("name"): a.get("type") for a in as_list(values.get("attribute"))}
    keys = [spec.hash_key, spec.range_key, *(spec.gsi[1:] if spec.gsi else ())]
    problems += [
        ("attribute", f"attribute {key!r} must be declared with type S")
        for key in filter(None, keys)
        if types.get(key) != "S"
    ]
    ttl = first(values.get("ttl"))
    problems += unless(
        not spec.ttl_attribute
        or (ttl.get("enabled") is True and ttl.get("attribute_name") == spec.ttl_attribute),
        "ttl",
        f"ttl must be enabled on {spec.ttl_attribute!r}",
    )
    return problems + _index_problems(spec, values)


@plan_check("MR-003", "Table names, keys, GSI, TTL and billing as the Oracle expects")
def table_schema(plan: PlanView) -> Iterator[Observation]:
    def judge(table: Planned) -> Iterator[Observation]:
        spec = SPECS[table.address]
        problems = schema_problems(spec, plan.env, table.values)
        return observe(table, problems, f"{spec.name(plan.env)} matches the contract")

    return each_expected(planned_tables(plan), partial(not_planned, plan), judge)


def _protection(table: Planned) -> Iterator[Observation]:
    problems: list[Problem] = [
        (block, f"{block}.enabled is not true")
        for block in ("point_in_time_recovery", "server_side_encryption")
        if first(table.values.get(block)).get("enabled") is not True
    ]
    return observe(table, problems, "PITR on, SSE on")


@plan_check("MR-008", "Every table planned with PITR on and server-side encryption on")
def table_protection(plan: PlanView) -> Iterator[Observation]:
    return each_expected(planned_tables(plan), partial(not_planned, plan), _protection)
