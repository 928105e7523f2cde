"""The sandbox engine: plan and apply infra/terraform with python-hcl2 and boto3.

It reads the same .tf files as Terraform, diffs the evaluated configuration
against Terraform-shaped state in the S3 backend, writes a plan in Terraform's
JSON plan shape, and applies exactly that plan file, resource by resource in
dependency order, persisting state after each change.
"""

from __future__ import annotations

import graphlib
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.aws import AwsClients
from mirror_rollout.environments import (
    Environment,
    parse_environment,
    terraform_dir,
    tfvars_path,
)
from mirror_rollout.errors import ConfigError
from mirror_rollout.hcl.config import Configuration, Instance, body_values, resolve_variables
from mirror_rollout.hcl.module import Module, load_module
from mirror_rollout.hcl.values import Unknown, is_known, map_leaves
from mirror_rollout.provisioners.base import (
    AppliedChange,
    ApplyInterrupted,
    ApplyRefused,
    ApplyResult,
    PlanResult,
    Provisioner,
    read_verified,
)
from mirror_rollout.provisioners.document import (
    Change,
    PlanDocument,
    PriorState,
    ResourceChange,
    StateDocument,
    StateInstance,
    StateResource,
    StateValues,
    StateValuesModule,
    StateValuesResource,
    instance_address,
    summarize,
)
from mirror_rollout.provisioners.sandbox.resources import base as handlers
from mirror_rollout.provisioners.sandbox.state import Backend, StateStore

PLAN_FORMAT = "mirror-rollout-sandbox-plan/1"
TERRAFORM_VERSION = "1.9.8"  # the Terraform release whose JSON shapes the engine writes
PROVIDER = "registry.terraform.io/hashicorp/aws"
SENSITIVE_ARGUMENTS = {"aws_ssm_parameter": ("value",)}
#: Write-only arguments (Terraform >= 1.11): sent to the provider, never stored
#: in plan or state, never compared. The nonce placeholder is one.
WRITE_ONLY = {"aws_ssm_parameter": frozenset({"value_wo"})}


#: Types whose provider schema has tags/tags_all (the provider merges default_tags into tags_all).
TAGGABLE = frozenset(
    {
        "aws_kms_key",
        "aws_dynamodb_table",
        "aws_ssm_parameter",
        "aws_sns_topic",
        "aws_cloudwatch_metric_alarm",
        "aws_cloudwatch_log_group",
        "aws_s3_bucket",
        "aws_iam_openid_connect_provider",
        "aws_iam_role",
        "aws_cloudtrail",
        "aws_backup_vault",
        "aws_backup_plan",
    }
)


def with_default_tags(
    rtype: str, config: dict[str, Any], default_tags: dict[str, Any]
) -> dict[str, Any]:
    """Add ``tags_all`` as the AWS provider computes it: default_tags overridden by tags."""
    if rtype not in TAGGABLE:
        return config
    tags = config.get("tags")
    if isinstance(tags, Unknown) or not is_known(default_tags):
        return {**config, "tags_all": Unknown(f"{rtype}.tags_all")}
    return {**config, "tags_all": {**default_tags, **(tags or {})}}


def keep_ignored(
    config: dict[str, Any], prior: dict[str, Any] | None, ignore: list[str]
) -> dict[str, Any]:
    """Arguments under lifecycle.ignore_changes keep their prior value, as in Terraform."""
    if not prior:
        return config
    ignored = {i.split(".")[0] for i in ignore}
    return {k: (prior[k] if k in ignored and k in prior else v) for k, v in config.items()}


def without_write_only(rtype: str, values: dict[str, Any]) -> dict[str, Any]:
    hidden = WRITE_ONLY.get(rtype, frozenset())
    return {k: (None if k in hidden else v) for k, v in values.items()}


def _handlers() -> dict[str, type[handlers.ResourceHandler]]:
    import mirror_rollout.provisioners.sandbox.resources  # noqa: F401  (registers every handler)

    return handlers.HANDLERS


# -- pure helpers --------------------------------------------------------------------
def null_unknowns(value: Any) -> Any:
    """Terraform's plan JSON writes unknown values as null in ``after``."""
    return map_leaves(value, lambda v: None if isinstance(v, Unknown) else v)


def unknown_marks(value: Any) -> Any:
    """``after_unknown``: true where a value is unknown, containers where inside ones are."""
    if isinstance(value, Unknown):
        return True
    if isinstance(value, dict):
        marks = {k: unknown_marks(v) for k, v in value.items()}
        return {k: v for k, v in marks.items() if v not in (False, {}, [])} or False
    if isinstance(value, list):
        marks = [unknown_marks(v) for v in value]
        return marks if any(m not in (False, {}, []) for m in marks) else False
    return False


def changed_arguments(
    config: dict[str, Any], prior: dict[str, Any], ignore: list[str]
) -> list[str]:
    """Top-level arguments whose configured value differs from state (unknown counts as a change)."""
    ignored = {i.split(".")[0] for i in ignore}
    out = []
    for key, value in config.items():
        if key in ignored:
            continue
        if not is_known(value) or _normal(value) != _normal(prior.get(key)):
            out.append(key)
    return out


def _normal(value: Any) -> Any:
    """Compare like Terraform: absent == null, empty block lists == absent, 1 == 1.0."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normal(v) for v in value] or None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def config_digest(module: Module, tfvars: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in [*module.files, *tfvars]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass
class Decision:
    instance: Instance
    action: str  # create, update, replace, no-op
    before: dict[str, Any] | None
    config: dict[str, Any]
    value: dict[str, Any]
    changed: list[str] = field(default_factory=list)


# -- the engine -------------------------------------------------------------------------
class SandboxEngine(Provisioner):
    name = "sandbox"

    def __init__(
        self,
        environment: Environment | str,
        *,
        root: Path | None = None,
        aws: AwsClients | None = None,
        workspace: str | None = None,
        backend_overrides: dict[str, Any] | None = None,
        variable_overrides: dict[str, Any] | None = None,
        lock_info: str = "",
        on_change: Callable[[AppliedChange], None] | None = None,
    ):
        self.on_change = on_change
        self._to_apply = 0
        self._last_change: str | None = None  # applied but not yet saved in state
        self.root = Path(root or PROJECT_ROOT)
        self.environment = parse_environment(environment, self.root)
        self.module = load_module(terraform_dir(self.root))
        self.tfvars = [tfvars_path(self.environment, self.root)]
        if not self.tfvars[0].is_file():
            raise ConfigError(
                f"{self.tfvars[0]} does not exist",
                f"create {self.tfvars[0].name} next to the .tf files",
            )
        self.variables = resolve_variables(self.module, self.tfvars, variable_overrides)
        self.workspace = workspace or self.environment
        self.backend = Backend.from_block(self.module.backend, backend_overrides)
        self.aws = aws or AwsClients(
            self.backend.region
            if self.variables.get("region") is None
            else self.variables["region"],
            environment=self.environment,
        )
        # The state backend is shared by every environment (its own account and region).
        self.store = StateStore(
            aws or AwsClients(self.backend.region), self.backend, self.workspace
        )
        self.lock_info = lock_info
        self._check_supported()

    # -- configuration ---------------------------------------------------------------------
    def _check_supported(self) -> None:
        known = _handlers()
        for res in self.module.resources:
            registry = known if res.mode == "managed" else handlers.DATA_SOURCES
            if res.type not in registry:
                kind = "resource" if res.mode == "managed" else "data source"
                raise ConfigError(
                    f"{res.where()}: {res.address}: {kind} type {res.type} is not supported by the sandbox engine",
                    "use the Terraform CLI provisioner for it, or add a handler under mirror_rollout/provisioners/sandbox/resources",
                )

    def _default_tags(self, cfg: Configuration) -> dict[str, Any]:
        """The aws provider block's default_tags, evaluated."""
        for name, body, _ in self.module.providers:
            if name == "aws":
                values = body_values(body, cfg.evaluator())
                blocks = values.get("default_tags") or [{}]
                return blocks[0].get("tags") or {}
        return {}

    def _read_data(self, instance: Instance, config: dict[str, Any]) -> dict[str, Any]:
        if not is_known(config):
            return config
        return {**config, **handlers.DATA_SOURCES[instance.type]().read(self.aws, config)}

    def _order(self, config: Configuration) -> list[str]:
        """Managed resource addresses, dependencies first."""
        graph = graphlib.TopologicalSorter()
        managed = {r.address for r in self.module.managed}
        for res in self.module.managed:
            graph.add(res.address, *(d for d in config.dependencies(res) if d in managed))
        try:
            return list(graph.static_order())
        except graphlib.CycleError as exc:
            raise ConfigError(
                f"dependency cycle between {exc.args[1]}", "break the cycle in the .tf files"
            ) from None

    # -- plan ----------------------------------------------------------------------------
    def plan(self, out_dir: Path) -> PlanResult:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.store.ensure_backend()
        with self.store.lock("OperationTypePlan", self.lock_info):
            state = self.store.read()
            document, not_provisionable = self._plan_document(state)
        envelope = {
            "format": PLAN_FORMAT,
            "environment": self.environment,
            "workspace": self.workspace,
            "backend": self.backend.model_dump(),
            "config_sha256": config_digest(self.module, self.tfvars),
            "prior_state": {"serial": state.serial, "lineage": state.lineage} if state else None,
            "not_provisionable": not_provisionable,
            "plan": document.model_dump(mode="json", exclude_none=True),
        }
        plan_file = out_dir / f"{self.workspace}.tfplan.json"
        plan_file.write_bytes(json.dumps(envelope, indent=1, sort_keys=True).encode())
        sha = hashlib.sha256(plan_file.read_bytes()).hexdigest()
        return PlanResult(
            provisioner=self.name,
            environment=self.environment,
            workspace=self.workspace,
            plan_file=str(plan_file),
            sha256=sha,
            prior_serial=state.serial if state else None,
            prior_lineage=state.lineage if state else None,
            document=document,
            summary=summarize(document, sha, not_provisionable),
        )

    def _plan_document(self, state: StateDocument | None) -> tuple[PlanDocument, dict[str, str]]:
        prior = state.instances() if state else {}
        decisions: dict[str, Decision] = {}
        known_handlers = _handlers()

        def planned_value(instance: Instance, config: dict[str, Any]) -> dict[str, Any]:
            if instance.address not in decisions:
                desired = with_default_tags(instance.type, config, default_tags)
                decisions[instance.address] = self._decide(instance, desired, prior, known_handlers)
            return decisions[instance.address].value

        cfg = Configuration(
            self.module,
            self.variables,
            workspace=self.workspace,
            resource_value=planned_value,
            data_value=self._read_data,
        )
        default_tags = self._default_tags(cfg)
        for address in self._order(cfg):
            for instance in cfg.instances(self.module.resource(address)):
                cfg.value(instance)
        changes: list[ResourceChange] = []
        not_provisionable: dict[str, str] = {}
        for decision in decisions.values():
            inst = decision.instance
            handler = known_handlers[inst.type]
            if not handler.provisionable:
                not_provisionable[inst.address] = handler.not_provisionable_reason
            actions = {"create": ["create"], "update": ["update"], "no-op": ["no-op"]}.get(
                decision.action
            )
            if decision.action == "replace":
                actions = (
                    ["create", "delete"]
                    if inst.resource.lifecycle.create_before_destroy
                    else ["delete", "create"]
                )
            after = decision.value if decision.action != "no-op" else decision.before
            changes.append(
                ResourceChange(
                    address=inst.address,
                    type=inst.type,
                    name=inst.resource.name,
                    index=inst.key,
                    provider_name=PROVIDER,
                    change=Change(
                        actions=actions,
                        before=decision.before,
                        after=null_unknowns(dict(after or {})),
                        after_unknown=unknown_marks(dict(after or {})) or {},
                        before_sensitive=self._sensitive(inst.type, decision.before),
                        after_sensitive=self._sensitive(inst.type, after),
                        replace_paths=[[k] for k in decision.changed if k in handler.force_new]
                        or None,
                    ),
                    action_reason="replace_because_cannot_update"
                    if decision.action == "replace"
                    else None,
                )
            )
        for address, (res, inst) in prior.items():
            if res.mode == "managed" and address not in decisions:
                changes.append(
                    ResourceChange(
                        address=address,
                        type=res.type,
                        name=res.name,
                        index=inst.index_key,
                        provider_name=PROVIDER,
                        change=Change(
                            actions=["delete"],
                            before=inst.attributes,
                            after=None,
                            after_unknown={},
                            before_sensitive=self._sensitive(res.type, inst.attributes),
                            after_sensitive=False,
                        ),
                        action_reason="delete_because_no_resource_config",
                    )
                )
        outputs = cfg.outputs()
        prior_outputs = {k: v.get("value") for k, v in (state.outputs if state else {}).items()}
        output_changes = {}
        for name, value in outputs.items():
            before = prior_outputs.get(name)
            action = (
                "create"
                if name not in prior_outputs
                else (
                    "no-op" if is_known(value) and _normal(before) == _normal(value) else "update"
                )
            )
            output_changes[name] = Change(
                actions=[action],
                before=before,
                after=null_unknowns(value),
                after_unknown=unknown_marks(value) is not False and unknown_marks(value),
                before_sensitive=False,
                after_sensitive=False,
            )
        for name in prior_outputs.keys() - outputs.keys():
            output_changes[name] = Change(
                actions=["delete"], before=prior_outputs[name], after=None, after_unknown=False
            )
        document = PlanDocument(
            format_version="1.2",
            terraform_version=TERRAFORM_VERSION,
            variables={k: {"value": v} for k, v in self.variables.items()},
            resource_changes=sorted(changes, key=lambda c: c.address),
            output_changes=output_changes,
            prior_state=self._prior_state(state) if state else None,
            applyable=True,
            errored=False,
            timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        return document, not_provisionable

    @staticmethod
    def _sensitive(rtype: str, values: dict[str, Any] | None) -> Any:
        keys = SENSITIVE_ARGUMENTS.get(rtype, ())
        if not values:
            return False
        return {k: True for k in keys if k in values} or {}

    @staticmethod
    def _prior_state(state: StateDocument) -> PriorState:
        resources = [
            StateValuesResource(
                address=address,
                mode=res.mode,
                type=res.type,
                name=res.name,
                index=inst.index_key,
                provider_name=PROVIDER,
                values=inst.attributes,
            )
            for address, (res, inst) in state.instances().items()
        ]
        return PriorState(
            terraform_version=TERRAFORM_VERSION,
            values=StateValues(
                outputs=state.outputs, root_module=StateValuesModule(resources=resources)
            ),
        )

    @staticmethod
    def _decide(
        instance: Instance, config: dict[str, Any], prior: dict, known_handlers: dict
    ) -> Decision:
        config = without_write_only(instance.type, config)
        found = prior.get(instance.address)
        if found is None:
            return Decision(instance, "create", None, config, config)
        before = found[1].attributes
        changed = changed_arguments(config, before, instance.resource.lifecycle.ignore_changes)
        if not changed:
            return Decision(instance, "no-op", before, config, before)
        if set(changed) & known_handlers[instance.type].force_new:
            return Decision(instance, "replace", before, config, config, changed)
        kept = keep_ignored(config, before, instance.resource.lifecycle.ignore_changes)
        return Decision(instance, "update", before, kept, {**before, **kept}, changed)

    # -- apply ------------------------------------------------------------------------------
    def apply(self, plan_file: Path, expected_sha256: str | None) -> ApplyResult:
        started = time.monotonic()
        plan_file = Path(plan_file)
        data = read_verified(plan_file, expected_sha256)
        sha = hashlib.sha256(data).hexdigest()
        envelope = json.loads(data)
        if envelope.get("format") != PLAN_FORMAT or envelope.get("workspace") != self.workspace:
            raise ApplyRefused(
                f"{plan_file.name} is not a sandbox plan for workspace {self.workspace!r}",
                "plan this environment again",
            )
        if envelope["config_sha256"] != config_digest(self.module, self.tfvars):
            raise ApplyRefused(
                "the .tf or .tfvars files changed after this plan was made",
                "plan again and have the new plan reviewed",
            )
        document = PlanDocument.model_validate(envelope["plan"])
        with self.store.lock("OperationTypeApply", self.lock_info):
            state = self.store.read()
            prior = envelope["prior_state"]
            current = {"serial": state.serial, "lineage": state.lineage} if state else None
            if current != prior:
                raise ApplyRefused(
                    f"the plan is stale: state is now {current}, the plan was made against {prior}",
                    "plan again and have the new plan reviewed",
                )
            result = self._execute(document, state, envelope.get("not_provisionable", {}))
        result.sha256 = sha
        result.seconds = round(time.monotonic() - started, 3)
        return result

    def _execute(
        self, document: PlanDocument, state: StateDocument | None, not_provisionable: dict[str, str]
    ) -> ApplyResult:
        state = state or StateDocument(
            lineage=str(uuid.uuid4()), terraform_version=TERRAFORM_VERSION
        )
        instances = state.instances()
        applied_values = {a: inst.attributes for a, (_, inst) in instances.items()}
        planned = {c.address: c for c in document.managed_changes()}
        result = ApplyResult(sha256="")
        self._to_apply = sum(1 for c in planned.values() if c.action != "no-op")
        known_handlers = _handlers()

        def current_value(instance: Instance, config: dict[str, Any]) -> dict[str, Any]:
            return applied_values.get(instance.address, config)

        cfg = Configuration(
            self.module,
            self.variables,
            workspace=self.workspace,
            resource_value=current_value,
            data_value=self._read_data,
        )
        default_tags = self._default_tags(cfg)
        order = self._order(cfg)
        deps = {
            addr: sorted(
                d for d in cfg.dependencies(self.module.resource(addr)) if not d.startswith("data.")
            )
            for addr in order
        }

        # Deletions of resources no longer configured go first, dependents before dependencies.
        orphans = [c for c in planned.values() if c.change.actions == ["delete"]]
        for change in self._reverse_dependency_order(orphans, instances):
            res, inst = instances[change.address]
            self._run(
                result,
                change.address,
                "delete",
                lambda r=res, i=inst: self._delete(known_handlers[r.type], i.attributes),
            )
            applied_values.pop(change.address, None)
            self._forget(state, change.address)
            self._persist(state)

        for address in order:
            resource = self.module.resource(address)
            for instance in cfg.instances(resource):
                change = planned.get(instance.address)
                if change is None:
                    raise ApplyRefused(
                        f"{instance.address} is configured but not in the reviewed plan",
                        "plan again and have the new plan reviewed",
                    )
                action = change.action
                if action == "no-op":
                    continue
                prior = applied_values.get(instance.address)
                config = keep_ignored(
                    with_default_tags(instance.type, cfg.config(instance), default_tags),
                    prior,
                    instance.resource.lifecycle.ignore_changes,
                )
                if not is_known(config):
                    raise ApplyRefused(
                        f"{instance.address}: values still unknown at apply", "plan again"
                    )
                self._check_consistent(
                    instance.address, change, without_write_only(instance.type, config)
                )
                handler = known_handlers[instance.type]()

                def step(
                    handler=handler,
                    config=config,
                    prior=prior,
                    address=instance.address,
                    action=action,
                ):
                    if address in not_provisionable:
                        return {
                            **config,
                            "id": address,
                        }, "not provisionable in the sandbox: " + not_provisionable[address]
                    try:
                        if action == "create":
                            return handler.create(self.aws, config), ""
                        if action == "update":
                            return handler.update(self.aws, prior, config), ""
                        if action == "replace":
                            handler.delete(self.aws, prior)
                            return handler.create(self.aws, config), ""
                    except handlers.NotProvisionable as gap:
                        # moto lacks this call; record it, never pretend it was applied.
                        not_provisionable[address] = str(gap)
                        return {**config, "id": address}, f"not provisionable in the sandbox: {gap}"
                    raise ApplyRefused(f"{address}: unexpected action {action}", "plan again")

                attributes = without_write_only(
                    instance.type, self._run(result, instance.address, action, step)
                )
                if instance.address in not_provisionable:
                    result.not_provisioned[instance.address] = not_provisionable[instance.address]
                applied_values[instance.address] = attributes
                self._record(
                    state,
                    instance,
                    attributes,
                    deps[address],
                    instance.address in not_provisionable,
                )
                self._persist(state)

        state.outputs = {
            name: {
                "value": value,
                "type": _type_of(value),
                **({"sensitive": True} if self.module.outputs[name].sensitive else {}),
            }
            for name, value in cfg.outputs().items()
        }
        self._persist(state)
        result.outputs = {k: v["value"] for k, v in state.outputs.items() if not v.get("sensitive")}
        result.state_serial = state.serial
        return result

    def _run(self, result: ApplyResult, address: str, action: str, step) -> Any:
        started = time.monotonic()
        try:
            outcome = step()
        except ApplyRefused:
            raise
        except Exception as exc:
            done = len(result.applied)
            raise ApplyInterrupted(
                f"apply stopped at {address} ({action}), change {done + 1} of "
                f"{self._to_apply}: {exc}",
                f"the {done} change(s) before it are applied and recorded in state, nothing "
                "after it was attempted; when AWS answers again, plan again (the new plan "
                "holds only what is left) and have it approved",
                address,
                done,
                exc,
            ) from exc
        attributes, note = outcome if isinstance(outcome, tuple) else (outcome, "")
        change = AppliedChange(
            address=address, action=action, seconds=round(time.monotonic() - started, 3), note=note
        )
        result.applied.append(change)
        self._last_change = address
        if self.on_change is not None:
            self.on_change(change)
        return attributes

    def _delete(
        self, handler_cls: type[handlers.ResourceHandler], attributes: dict[str, Any]
    ) -> tuple[None, str]:
        if not handler_cls.provisionable:
            return None, "not provisionable in the sandbox: " + handler_cls.not_provisionable_reason
        handler_cls().delete(self.aws, attributes)
        return None, ""

    @staticmethod
    def _check_consistent(address: str, change: ResourceChange, config: dict[str, Any]) -> None:
        """Every value known in the reviewed plan must be the value applied."""
        after = change.change.after or {}
        unknown = change.change.after_unknown or {}
        for key, value in config.items():
            if isinstance(unknown, dict) and unknown.get(key):
                continue
            if _normal(after.get(key)) != _normal(value):
                raise ApplyRefused(
                    f"{address}.{key} would be applied as {value!r} but the reviewed plan says {after.get(key)!r}",
                    "plan again and have the new plan reviewed",
                )

    @staticmethod
    def _reverse_dependency_order(
        changes: list[ResourceChange], instances: dict
    ) -> list[ResourceChange]:
        graph = graphlib.TopologicalSorter()
        addresses = {c.address for c in changes}
        for change in changes:
            _, inst = instances[change.address]
            graph.add(change.address, *(d for d in inst.dependencies if d in addresses))
        order = list(graph.static_order())
        by_address = {c.address: c for c in changes}
        return [by_address[a] for a in reversed(order)]

    @staticmethod
    def _record(
        state: StateDocument,
        instance: Instance,
        attributes: dict[str, Any],
        dependencies: list[str],
        not_provisioned: bool,
    ) -> None:
        resource = next(
            (r for r in state.resources if r.address == instance.resource.address), None
        )
        if resource is None:
            resource = StateResource(
                mode="managed",
                type=instance.type,
                name=instance.resource.name,
                provider=f'provider["{PROVIDER}"]',
            )
            state.resources.append(resource)
            state.resources.sort(key=lambda r: r.address)
        resource.instances = [i for i in resource.instances if i.index_key != instance.key]
        private = None
        if not_provisioned:
            import base64

            private = base64.b64encode(
                json.dumps({"mirror_rollout": "not provisionable in the sandbox"}).encode()
            ).decode()
        resource.instances.append(
            StateInstance(
                index_key=instance.key,
                attributes=attributes,
                dependencies=dependencies,
                private=private,
                sensitive_attributes=[
                    [{"type": "get_attr", "value": k}]
                    for k in SENSITIVE_ARGUMENTS.get(instance.type, ())
                    if k in attributes
                ],
            )
        )
        resource.instances.sort(key=lambda i: str(i.index_key) if i.index_key is not None else "")

    @staticmethod
    def _forget(state: StateDocument, address: str) -> None:
        for res in state.resources:
            res.instances = [
                i for i in res.instances if instance_address(res.address, i.index_key) != address
            ]
        state.resources = [r for r in state.resources if r.instances]

    def _persist(self, state: StateDocument) -> None:
        state.serial += 1
        try:
            self.store.write(state)
        except Exception as exc:
            last = self._last_change or "the outputs"
            raise ApplyInterrupted(
                f"apply stopped: the state after {last} could not be saved to "
                f"s3://{self.backend.bucket}/{self.store.path}: {exc}",
                f"{last} is changed in AWS but not recorded in state: compare the resource "
                "with the state (and import or remove it) before planning again",
                last,
                -1,
                exc,
            ) from exc
        self._last_change = None

    # -- reads ------------------------------------------------------------------------------
    def outputs(self) -> dict[str, Any]:
        state = self.store.read()
        return {
            k: v.get("value")
            for k, v in (state.outputs if state else {}).items()
            if not v.get("sensitive")
        }

    def state_serial(self) -> int | None:
        state = self.store.read()
        return state.serial if state else None

    def state(self) -> StateDocument | None:
        return self.store.read()


def _type_of(value: Any) -> Any:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return ["tuple", [_type_of(v) for v in value]]
    if isinstance(value, dict):
        return ["object", {k: _type_of(v) for k, v in value.items()}]
    return "dynamic"
