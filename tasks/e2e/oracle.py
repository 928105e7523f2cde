"""A reference Oracle client: the Oracle's data-plane contract against a deployed environment.

boto3 through ``AwsClients`` (endpoints from the environment: moto or AWS). Each step
returns a ``StepResult``; the decisions are the pure functions of ``checks.py``.

Nonce values: read here into ``SecretStr`` (never logged, never returned, never in a
result or the report) with botocore wire logging held at INFO; only the HMAC digest
and the nonce *version* are stored in the FP event item.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.contract import NONCE_NAME
from mirror_rollout.results import Status
from mirror_rollout.retries import error_code, is_transient
from tasks.e2e import checks
from tasks.e2e.checks import StepResult, Verdict, failed, passed, run_steps, skipped
from tasks.e2e.table import DdbTable
from tasks.nonce import store
from tasks.nonce.rules import kms_alias

DEFAULT_ORG = "phase-mirror-test"
DEFAULT_RULE = "MD-E2E-001"
DEFAULT_RULE_VERSION = "1.0.0"
DEFAULT_SCOPE = "fp-calibration"
#: Attempts of the block-counter update, each single-shot (see increment_block_counter).
COUNTER_ATTEMPTS = 4


def describe_error(exc: BaseException) -> str:
    """An AWS error as its code and a short message (no request payloads)."""
    code = error_code(exc)
    if code:
        message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", ""))[:200]
        operation = getattr(exc, "operation_name", None)
        if operation:  # e.g. "ThrottlingException on PutItem after 6 attempts: Rate exceeded"
            attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts")  # type: ignore[attr-defined]
            code += f" on {operation}" + (f" after {attempts + 1} attempts" if attempts else "")
        return f"{code}: {message}" if message else code
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def baseline_bucket(environment: str) -> str:
    return contract.name(environment, "baselines")


def baseline_key(run_id: str) -> str:
    return f"e2e/{run_id}.json"


class OracleClient:
    """Performs (and verifies) each data-plane operation of the Oracle, one step at a time."""

    def __init__(
        self,
        clients: AwsClients,
        environment: str,
        run_id: str,
        org_id: str = DEFAULT_ORG,
        rule_id: str = DEFAULT_RULE,
        rule_version: str = DEFAULT_RULE_VERSION,
        now: datetime | None = None,
    ):
        self.clients = clients
        self.environment = environment
        self.run_id = run_id
        self.org_id = org_id
        self.rule_id = rule_id
        self.rule_version = rule_version
        self.now = now or datetime.now(UTC)
        self.tables = {t.key: t.name(environment) for t in contract.TABLES}
        self.bucket = baseline_bucket(environment)
        self.baseline_key = baseline_key(run_id)
        self.counter_key = checks.block_counter_key(rule_id, org_id, self.now)
        self.consent: dict[str, Any] | None = None
        #: The consent items this run wrote: removed by the last step (the table has no TTL).
        self.consent_written: dict[str, str] = {}  # sk -> "created" or "appended"
        self.steps: list[StepResult] = []
        self.item: dict[str, Any] | None = None
        self.read_back: list[dict[str, Any]] = []
        self._nonces: dict[int, SecretStr] = {}

    # -- driver ------------------------------------------------------------------------------
    def run(self) -> list[StepResult]:
        """All steps in order; a step whose input is missing is SKIPPED, never PASS."""
        steps = (
            ("load nonce versions", self.load_nonce),
            ("record FP event (conditional put)", self.record_fp_event),
            ("reject duplicate FP event", self.reject_duplicate),
            ("read FP event back via FindingIndex", self.read_fp_event),
            ("record consent, read it through the summary", self.record_consent),
            ("increment block counter (adapter's UpdateItem)", self.increment_block_counter),
            ("store run report as SSE-KMS baseline", self.store_baseline),
            ("remove the consent items this run wrote", self.remove_consent),
        )
        try:
            self.steps.extend(run_steps(steps, describe_error))
        finally:
            self._forget_nonces()
        return self.steps

    def _forget_nonces(self) -> None:
        self._nonces.clear()

    # -- steps -------------------------------------------------------------------------------
    def load_nonce(self) -> Verdict:
        described = store.describe_versions(self.clients, self.environment)
        by_version: dict[int, str] = {}
        for entry in described:
            match = NONCE_NAME.match(entry["Name"])
            if match and match["env"] == self.environment:
                by_version[int(match["version"])] = entry["Name"]
        real: dict[int, bool] = {}
        for version, name in sorted(by_version.items()):
            value = store.read_value(self.clients, name)
            real[version] = value is not None
            if value is not None:
                self._nonces[version] = value
        names = [by_version[v] for v in sorted(by_version)]
        verdict = checks.judge_nonce(names, sorted(by_version), real)
        if verdict.status is not Status.PASS:
            self._forget_nonces()  # never redact with an older version than the newest
        return verdict

    def _redacted_context(self) -> dict[str, Any]:
        version = checks.newest_version(self._nonces)
        if version is None:
            raise RuntimeError("no real nonce loaded")
        finding_context = {
            "repository": "PhaseMirror/Phase-Mirror-Test",
            "path": "src/e2e/fixture.ts",
            "line": 42,
            "snippet": f"e2e run {self.run_id}: token-like string AKIA0000000000000000",
        }
        return checks.redact(finding_context, self._nonces[version].get_secret_value(), version)

    def record_fp_event(self) -> Verdict:
        if not self._nonces:
            return skipped("no real nonce to redact with (nonce step failed)")
        event_id = str(uuid.uuid4())
        self.item = checks.fp_event_item(
            event_id=event_id,
            rule_id=self.rule_id,
            rule_version=self.rule_version,
            finding_id=f"e2e-{self.run_id}-{event_id[:8]}",
            outcome="block",
            is_false_positive=True,
            context=self._redacted_context(),
            moment=datetime.now(UTC),
        )
        table = self.tables["fp-events"]
        note = ""
        try:
            self._table("fp-events").put_item(
                Item=self.item, ConditionExpression=checks.CONDITION_NEW_EVENT
            )
        except Exception as exc:
            # A put whose response was lost is retried by botocore and then meets its own item.
            if error_code(exc) != "ConditionalCheckFailedException" or not self._recorded():
                raise
            note = " (written by an earlier attempt whose response was lost)"
        return passed(
            f"put {self.item['pk']} / {self.item['sk']}{note}",
            event_id,
            source=f"dynamodb:PutItem {self.clients.region} {table}",
            pk=self.item["pk"],
            sk=self.item["sk"],
            nonceVersion=self.item["context"]["nonceVersion"],
            condition=checks.CONDITION_NEW_EVENT,
        )

    def _recorded(self) -> bool:
        """Is this run's FP event (same eventId) stored under its key?"""
        assert self.item is not None
        key = {"pk": self.item["pk"], "sk": self.item["sk"]}
        found = self._table("fp-events").get_item(Key=key, ConsistentRead=True).get("Item")
        return found is not None and found.get("eventId") == self.item["eventId"]

    def reject_duplicate(self) -> Verdict:
        if self.item is None:
            return skipped("no FP event was recorded")
        code: str | None = None
        try:
            self._table("fp-events").put_item(
                Item=self.item, ConditionExpression=checks.CONDITION_NEW_EVENT
            )
        except Exception as exc:
            code = error_code(exc)
            if not code:
                raise
        verdict = checks.judge_duplicate(code)
        verdict.subject = self.item["eventId"]
        for e in verdict.evidence:
            e.source = f"dynamodb:PutItem {self.clients.region} {self.tables['fp-events']}"
            e.observed["error"] = code
        return verdict

    def read_fp_event(self) -> Verdict:
        if self.item is None:
            return skipped("no FP event was recorded")
        name, hash_key, _ = next(t.gsi for t in contract.TABLES if t.gsi)
        response = self._table("fp-events").query(
            IndexName=name,
            KeyConditionExpression=f"{hash_key} = :h",
            ExpressionAttributeValues={":h": self.item["gsi1pk"]},
        )
        items = [checks.plain(i) for i in response.get("Items", [])]
        self.read_back = [i for i in items if i.get("eventId") == self.item["eventId"]]
        verdict = checks.judge_read_back(items, self.item)
        verdict.evidence.append(
            _evidence(
                f"dynamodb:Query {self.clients.region} {self.tables['fp-events']} {name}",
                gsi1pk=self.item["gsi1pk"],
                count=len(items),
            )
        )
        return verdict

    def record_consent(self) -> Verdict:
        """A grant record and the org's summary item, as the consent adapter writes them; then
        the summary read the adapter's consent check does."""
        table = self._table("consent")
        self.consent = record = checks.consent_record(
            org_id=self.org_id,
            repo_id=f"e2e/{self.run_id}",
            scope=DEFAULT_SCOPE,
            granted_by="mirror-rollout e2e",
            record_id=str(uuid.uuid4()),
            moment=datetime.now(UTC),
        )
        table.put_item(Item=record)
        self.consent_written[record["sk"]] = "created"
        summary_key = {"pk": record["pk"], "sk": checks.CONSENT_SUMMARY_SK}
        entry = checks.summary_entry(record)
        try:  # a summary of the test org may exist (another run): add to it, never replace it
            table.put_item(
                Item=summary_key | {"records": [entry], "updatedAt": record["updatedAt"]},
                ConditionExpression="attribute_not_exists(pk)",
            )
            self.consent_written[checks.CONSENT_SUMMARY_SK] = "created"
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            table.update_item(
                Key=summary_key,
                UpdateExpression="SET records = list_append(records, :mine), updatedAt = :at",
                ExpressionAttributeValues={":mine": [entry], ":at": record["updatedAt"]},
            )
            self.consent_written[checks.CONSENT_SUMMARY_SK] = "appended"
        summary = table.get_item(Key=summary_key, ConsistentRead=True).get("Item")
        verdict = checks.judge_consent(summary, record, datetime.now(UTC))
        verdict.evidence.append(
            _evidence(
                f"dynamodb:PutItem+GetItem {self.clients.region} {self.tables['consent']}",
                pk=record["pk"],
                sk=record["sk"],
                summary=self.consent_written[checks.CONSENT_SUMMARY_SK],
            )
        )
        return verdict

    def remove_consent(self) -> Verdict:
        """Delete the consent record this run wrote and its summary entry (or the summary it
        created). Nothing else: another run's records stay."""
        if not self.consent_written or self.consent is None:
            return skipped("this run wrote no consent item")
        table = self._table("consent")
        pk = self.consent["pk"]
        for sk, how in self.consent_written.items():
            if how == "created":
                table.delete_item(Key={"pk": pk, "sk": sk})
                continue
            key = {"pk": pk, "sk": sk}
            summary = table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
            records = summary.get("records") or []
            mine = [i for i, r in enumerate(records) if r.get("sk") == self.consent["sk"]]
            if mine:  # REMOVE by index, on condition the entry is still where it was read
                table.update_item(
                    Key=key,
                    UpdateExpression=f"REMOVE records[{mine[0]}]",
                    ConditionExpression=f"records[{mine[0]}].sk = :sk",
                    ExpressionAttributeValues={":sk": self.consent["sk"]},
                )
        left = [
            sk
            for sk, how in self.consent_written.items()
            if how == "created"
            and table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=True).get("Item")
        ]
        if left:
            return failed(f"consent items still there after DeleteItem: {', '.join(left)}", pk)
        removed = ", ".join(
            sk if how == "created" else f"its entry in {sk}"
            for sk, how in self.consent_written.items()
        )
        self.consent_written.clear()
        return passed(
            f"removed {removed}", pk, source=f"dynamodb:DeleteItem {self.tables['consent']}"
        )

    def _single_attempt(self) -> AwsClients:
        return AwsClients(self.clients.region, max_attempts=0, environment=self.environment)

    def increment_block_counter(self) -> Verdict:
        """The adapter's UpdateItem, exactly: ``ADD count SET ttl = if_not_exists(ttl), timestamp``.

        The update is not idempotent, so botocore must not resend it: each attempt is single-shot,
        and after an attempt without a valid response the item's ``timestamp`` (this attempt's
        own value) tells whether DynamoDB applied it before another attempt is made.
        """
        table = self._table("block-counter")
        key = {"bucketKey": self.counter_key}
        before_item = table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
        before = int(before_item.get("count", 0))
        values = checks.block_counter_values(datetime.now(UTC))
        once = DdbTable(self._single_attempt(), self.tables["block-counter"])
        after: dict[str, Any] | None = None
        attempts = 0
        for attempts in range(1, COUNTER_ATTEMPTS + 1):
            try:
                after = once.update_item(
                    Key=key,
                    UpdateExpression=checks.BLOCK_COUNTER_UPDATE,
                    ExpressionAttributeNames=checks.BLOCK_COUNTER_NAMES,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                ).get("Attributes")
                break
            except Exception as exc:
                if not is_transient(exc) or attempts == COUNTER_ATTEMPTS:
                    raise
                current = table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
                if current.get("timestamp") == values[":timestamp"]:
                    after = current  # applied; only the response was lost
                    break
        verdict = checks.judge_counter(before, after)
        verdict.subject = self.counter_key
        shown = checks.plain(dict(after or {}))
        verdict.evidence.append(
            _evidence(
                f"dynamodb:UpdateItem {self.clients.region} {self.tables['block-counter']}",
                bucketKey=self.counter_key,
                before=before,
                after=shown.get("count"),
                ttl=shown.get("ttl"),
                attempts=attempts,
                update=checks.BLOCK_COUNTER_UPDATE,
            )
        )
        return verdict

    def report(self) -> dict[str, Any]:
        """The run's report: what every step saw so far. No nonce value, only versions."""
        events = []
        if self.item is not None:
            events.append({k: self.item[k] for k in ("eventId", "findingId", "ruleId", "pk", "sk")})
        return {
            "runId": self.run_id,
            "environment": self.environment,
            "orgId": self.org_id,
            "generatedAt": checks.iso_timestamp(datetime.now(UTC)),
            "fpEvents": events,
            "baselineKey": self.baseline_key,
            "steps": [
                {
                    "name": s.name,
                    "status": s.status.value,
                    "seconds": s.seconds,
                    "message": s.message,
                }
                for s in self.steps
            ],
        }

    def store_baseline(self) -> Verdict:
        key_arn = store.key_arn(self.clients, kms_alias(self.environment))
        if key_arn is None:
            return failed(f"project CMK {kms_alias(self.environment)} not found")
        s3 = self.clients.client("s3")
        body = json.dumps(self.report(), indent=2, sort_keys=True).encode()
        put = s3.put_object(
            Bucket=self.bucket,
            Key=self.baseline_key,
            Body=body,
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=key_arn,
        )
        return verify_baseline(self.clients, self.bucket, self.baseline_key, key_arn, put)

    def _table(self, key: str) -> DdbTable:
        return DdbTable(self.clients, self.tables[key])


def verify_baseline(
    clients: AwsClients,
    bucket: str,
    key: str,
    key_arn: str | None = None,
    put: dict[str, Any] | None = None,
) -> Verdict:
    """HeadObject shows aws:kms with the project CMK and a VersionId."""
    environment = bucket.removeprefix(contract.PREFIX + "-").removesuffix("-baselines")
    key_arn = key_arn or store.key_arn(clients, kms_alias(environment))
    head = clients.client("s3").head_object(Bucket=bucket, Key=key)
    verdict = checks.judge_baseline(head, key_arn)
    verdict.subject = f"s3://{bucket}/{key}"
    verdict.evidence.append(
        _evidence(
            f"s3:HeadObject {clients.region} {bucket}/{key}",
            ServerSideEncryption=head.get("ServerSideEncryption"),
            SSEKMSKeyId=head.get("SSEKMSKeyId"),
            VersionId=head.get("VersionId"),
            put_VersionId=(put or {}).get("VersionId"),
            ContentLength=head.get("ContentLength"),
        )
    )
    return verdict


def find_fp_events(
    clients: AwsClients, environment: str, wanted: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Look the report's FP events up: by FindingIndex when a findingId is given, else a
    filtered scan. Returns (items found, event ids missing)."""
    spec = next(t for t in contract.TABLES if t.gsi)
    assert spec.gsi is not None  # the fp-events table has the finding index
    index_name, hash_key, _ = spec.gsi
    table = DdbTable(clients, spec.name(environment))
    found: list[dict[str, Any]] = []
    missing: list[str] = []
    for event in wanted:
        if event.get("findingId"):
            response = table.query(
                IndexName=index_name,
                KeyConditionExpression=f"{hash_key} = :h",
                ExpressionAttributeValues={":h": f"finding#{event['findingId']}"},
            )
            items = response.get("Items", [])
        else:
            items, start = [], None
            while True:
                kwargs: dict[str, Any] = {
                    "FilterExpression": "eventId = :e",
                    "ExpressionAttributeValues": {":e": event["eventId"]},
                }
                if start:
                    kwargs["ExclusiveStartKey"] = start
                page = table.scan(**kwargs)
                items += page.get("Items", [])
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
        mine = [checks.plain(i) for i in items if i.get("eventId") == event["eventId"]]
        if mine:
            found += mine
        else:
            missing.append(event["eventId"])
    return found, missing


def _evidence(source: str, **observed: Any):
    from mirror_rollout.results import Evidence

    return Evidence(source=source, observed=observed)


__all__ = [
    "OracleClient",
    "baseline_bucket",
    "baseline_key",
    "find_fp_events",
    "verify_baseline",
]
