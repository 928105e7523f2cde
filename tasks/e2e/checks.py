"""Pure E2E logic: step results, the FP event item, redaction and the judgements of each step.

Nothing here calls AWS or GitHub: dicts (API responses) in, decisions out. The glue in
``oracle.py`` / ``github.py`` makes the calls and hands the responses over.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from mirror_rollout import contract
from mirror_rollout.results import CheckResult, Evidence, Status

FP_RETENTION_DAYS = 90
BLOCK_COUNTER_TTL_HOURS = 24
CONDITION_NEW_EVENT = "attribute_not_exists(pk) AND attribute_not_exists(sk)"
#: Keys of every FP event item the Oracle writes (DESIGN.md, naming contract).
FP_EVENT_KEYS = frozenset(contract.FP_EVENT_FIELDS)
#: What a redacted context holds: the HMAC digest and the nonce version, nothing else.
CONTEXT_KEYS = frozenset({"digest", "nonceVersion"})
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class StepResult(BaseModel):
    """One step of an E2E driver: its verdict, how long it took and what it saw."""

    name: str
    status: Status
    seconds: float = 0.0
    message: str = ""
    subject: str = ""
    evidence: list[Evidence] = Field(default_factory=list)


class Verdict(BaseModel):
    """What a pure judgement returns; the timer wraps it into a StepResult."""

    status: Status
    message: str = ""
    subject: str = ""
    evidence: list[Evidence] = Field(default_factory=list)


def passed(message: str, subject: str = "", **observed: Any) -> Verdict:
    return Verdict(status=Status.PASS, message=message, subject=subject, evidence=_ev(observed))


def failed(message: str, subject: str = "", **observed: Any) -> Verdict:
    return Verdict(status=Status.FAIL, message=message, subject=subject, evidence=_ev(observed))


def skipped(message: str, subject: str = "") -> Verdict:
    return Verdict(status=Status.SKIPPED, message=message, subject=subject)


def _ev(observed: dict[str, Any]) -> list[Evidence]:
    source = observed.pop("source", None)
    return [Evidence(source=source, observed=observed)] if source else []


def run_step(
    name: str,
    body: Callable[[], Verdict],
    describe_error: Callable[[BaseException], str] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> StepResult:
    """Run ``body``, timing it; an exception becomes a FAIL naming the error (never its payload)."""
    started = clock()
    try:
        verdict = body()
    except Exception as exc:
        text = describe_error(exc) if describe_error else f"{type(exc).__name__}: {exc}"
        verdict = failed(f"{name} failed: {text}"[:500])
    seconds = round(clock() - started, 4)
    for e in verdict.evidence:
        e.observed.setdefault("seconds", seconds)
    return StepResult(
        name=name,
        status=verdict.status,
        seconds=seconds,
        message=verdict.message,
        subject=verdict.subject,
        evidence=verdict.evidence,
    )


Step = tuple[str, Callable[[], Verdict]]  # (name, body)


def run_steps(
    steps: Iterable[Step],
    describe_error: Callable[[BaseException], str] | None = None,
    *,
    skip_after_failure: bool = False,
) -> Iterator[StepResult]:
    """Each step's result as it ends (``list.extend`` keeps those done if a later one raises).

    With ``skip_after_failure`` the steps after a FAIL are SKIPPED, naming that step.
    """
    blocked = ""
    for name, body in steps:
        if blocked:
            yield run_step(name, functools.partial(skipped, blocked))
            continue
        step = run_step(name, body, describe_error)
        yield step
        if skip_after_failure and step.status is Status.FAIL:
            blocked = f"not run: step '{name}' failed"


def to_check_results(steps: Iterable[StepResult], prefix: str = "E2E") -> list[CheckResult]:
    """E2E-001, E2E-002 ... in step order; the timing is part of the message and the evidence."""
    results = []
    for n, step in enumerate(steps, start=1):
        evidence = list(step.evidence) or [
            Evidence(source=f"e2e step {step.name}", observed={"seconds": step.seconds})
        ]
        results.append(
            CheckResult(
                check_id=f"{prefix}-{n:03d}",
                title=step.name,
                status=step.status,
                subject=step.subject,
                message=f"{step.message} ({step.seconds:.3f} s)".strip(),
                evidence=evidence,
            )
        )
    return results


# -- time ------------------------------------------------------------------------------------
def iso_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z zone, e.g. 2026-11-27T12:00:00.123Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def expires_at(moment: datetime, days: int = FP_RETENTION_DAYS) -> int:
    return int((moment + timedelta(days=days)).timestamp())


# -- redaction -------------------------------------------------------------------------------
def canonical(context: Mapping[str, Any]) -> bytes:
    return json.dumps(context, sort_keys=True, separators=(",", ":"), default=str).encode()


def redact(context: Mapping[str, Any], nonce_hex: str, nonce_version: int) -> dict[str, Any]:
    """HMAC-SHA256 of the canonical JSON of ``context`` keyed by the nonce's 32 bytes.

    Only the digest and the nonce *version* leave this function.
    """
    digest = hmac.new(bytes.fromhex(nonce_hex), canonical(context), hashlib.sha256).hexdigest()
    return {"digest": digest, "nonceVersion": nonce_version}


def newest_version(versions: Iterable[int]) -> int | None:
    versions = list(versions)
    return max(versions) if versions else None


# -- FP event --------------------------------------------------------------------------------
def fp_event_item(
    *,
    event_id: str,
    rule_id: str,
    rule_version: str,
    finding_id: str,
    outcome: str,
    is_false_positive: bool,
    context: dict[str, Any],
    moment: datetime,
) -> dict[str, Any]:
    """The FP event item of the naming contract (plain Python values, boto3 resource style)."""
    ts = iso_timestamp(moment)
    return {
        "pk": f"rule#{rule_id}",
        "sk": f"event#{ts}#{event_id}",
        "gsi1pk": f"finding#{finding_id}",
        "gsi1sk": f"rule#{rule_id}#{rule_version}",
        "eventId": event_id,
        "ruleId": rule_id,
        "ruleVersion": rule_version,
        "findingId": finding_id,
        "outcome": outcome,
        "isFalsePositive": is_false_positive,
        "timestamp": ts,
        "context": context,
        "expiresAt": expires_at(moment),
        "recordedAt": int(moment.timestamp() * 1000),
    }


def plain(value: Any) -> Any:
    """Decimals (boto3 numbers) as int/float, recursively: JSON-ready items."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    return value


def shape_problems(item: Mapping[str, Any]) -> list[str]:
    """What about ``item`` breaks the FP event contract (empty when it conforms)."""
    item = plain(dict(item))
    problems = [f"missing {k}" for k in sorted(FP_EVENT_KEYS - item.keys())]
    if problems:
        return problems
    rule, version, event = item["ruleId"], item["ruleVersion"], item["eventId"]
    expected = {
        "pk": f"rule#{rule}",
        "sk": f"event#{item['timestamp']}#{event}",
        "gsi1pk": f"finding#{item['findingId']}",
        "gsi1sk": f"rule#{rule}#{version}",
    }
    problems += [f"{k} is {item[k]!r}, not {v!r}" for k, v in expected.items() if item[k] != v]
    if not isinstance(item["isFalsePositive"], bool):
        problems.append("isFalsePositive is not a boolean")
    recorded_s = item["recordedAt"] / 1000 if isinstance(item["recordedAt"], int | float) else None
    if recorded_s is None or not isinstance(item["expiresAt"], int):
        problems.append("expiresAt / recordedAt are not numbers")
    else:
        days = (item["expiresAt"] - recorded_s) / 86400
        if abs(days - FP_RETENTION_DAYS) > 1:
            problems.append(f"expiresAt is {days:.2f} days after recordedAt, not 90")
    context = item["context"]
    if not isinstance(context, dict) or set(context) != CONTEXT_KEYS:
        problems.append("context is not {digest, nonceVersion} (unredacted data stored?)")
    elif not _HEX64.match(str(context["digest"])):
        problems.append("context.digest is not a hex SHA-256 digest")
    return problems


# -- judgements ------------------------------------------------------------------------------
def judge_nonce(names: list[str], versions: list[int], real: dict[int, bool]) -> Verdict:
    """Live versions listed; the newest must hold a real nonce (64 lowercase hex)."""
    newest = newest_version(versions)
    observed: dict[str, Any] = {"source": "ssm:DescribeParameters+GetParameter", "names": names}
    if newest is None:
        return failed("no nonce version found", "", **observed)
    observed |= {"newest_version": newest, "real_values": {str(v): real[v] for v in real}}
    if not real.get(newest):
        return failed(
            f"nonce v{newest} holds no real nonce (not 64 lowercase hex, e.g. a placeholder); "
            f"run nonce-rotation to create v{newest + 1}",
            names[-1],
            **observed,
        )
    return passed(
        f"{len(versions)} live version(s); redacting with v{newest}", names[-1], **observed
    )


def judge_duplicate(error_code: str | None) -> Verdict:
    """The second conditional put of the same item must be refused."""
    if error_code == "ConditionalCheckFailedException":
        return passed("duplicate put rejected: ConditionalCheckFailed", source="dynamodb:PutItem")
    if error_code is None:
        return failed("duplicate put was accepted: the write condition is missing or ignored")
    return failed(f"duplicate put failed with {error_code}, not ConditionalCheckFailed")


def judge_read_back(items: list[Mapping[str, Any]], written: Mapping[str, Any]) -> Verdict:
    """Exactly the written item comes back through FindingIndex, in the contract's shape."""
    mine = [i for i in items if i.get("eventId") == written["eventId"]]
    if not mine:
        return failed(f"event {written['eventId']} not found through FindingIndex")
    item = plain(dict(mine[0]))
    problems = shape_problems(item)
    diff = sorted(k for k in FP_EVENT_KEYS if item.get(k) != plain(written.get(k)))
    if diff:
        problems.append("differs from the written item in " + ", ".join(diff))
    if len(mine) > 1:
        problems.append(f"{len(mine)} items carry eventId {written['eventId']}")
    if problems:
        return failed("; ".join(problems), written["eventId"])
    return passed(f"read back {written['sk']} via FindingIndex", written["eventId"])


# -- consent (the consent adapter's item shapes, DESIGN.md) -----------------------------------
CONSENT_SUMMARY_SK = "consent#summary"
CONSENT_VALID_DAYS = 365


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def consent_pk(org_id: str) -> str:
    """The consent adapter's partition key: the org id is stored hashed, never in clear."""
    return f"org#{sha256_hex(org_id)}"


def consent_record(
    *,
    org_id: str,
    repo_id: str,
    scope: str,
    granted_by: str,
    record_id: str,
    moment: datetime,
) -> dict[str, Any]:
    """A consent grant as the adapter writes it: ``sk=consent#{scope}#{uuid}``."""
    at = iso_timestamp(moment)
    return {
        "pk": consent_pk(org_id),
        "sk": f"consent#{scope}#{record_id}",
        "orgId": sha256_hex(org_id),
        "repoId": repo_id,
        "scope": scope,
        "grantedBy": sha256_hex(granted_by),
        "grantedAt": at,
        "expiresAt": iso_timestamp(moment + timedelta(days=CONSENT_VALID_DAYS)),
        "revoked": False,
        "updatedAt": at,
    }


def summary_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the summary item's ``records`` list holds of one record."""
    keys = ("sk", "scope", "repoId", "grantedAt", "expiresAt", "revoked")
    return {k: record[k] for k in keys if record.get(k) is not None}


def judge_consent(
    summary: Mapping[str, Any] | None, record: Mapping[str, Any], now: datetime
) -> Verdict:
    """The summary the adapter reads (``sk=consent#summary``) lists the record, granted and live."""
    if not summary:
        return failed(f"no consent summary under {record['pk']}", record["pk"])
    entries = [e for e in summary.get("records") or [] if e.get("sk") == record["sk"]]
    if not entries:
        return failed(f"the consent summary does not list {record['sk']}", record["pk"])
    entry = entries[0]
    if entry.get("revoked") is not False:
        return failed(f"{record['sk']} is listed as revoked", record["pk"])
    if str(entry.get("expiresAt", "")) <= iso_timestamp(now):
        return failed(f"{record['sk']} expired at {entry.get('expiresAt')}", record["pk"])
    n = len(summary.get("records") or [])
    return passed(
        f"consent {record['scope']} granted until {entry['expiresAt']}; summary lists {n} record(s)",
        record["pk"],
    )


# -- block counter (the block-counter adapter's UpdateItem) -------------------------------------
BLOCK_COUNTER_UPDATE = (
    "ADD #count :one SET #ttl = if_not_exists(#ttl, :ttl), #timestamp = :timestamp"
)
#: count, ttl and timestamp are DynamoDB reserved words: the adapter names them.
BLOCK_COUNTER_NAMES = {"#count": "count", "#ttl": "ttl", "#timestamp": "timestamp"}


def hour_start(moment: datetime) -> str:
    """The UTC hour ``moment`` falls in, ISO-8601 with .000Z (JavaScript's toISOString)."""
    return iso_timestamp(moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0))


def block_counter_key(rule_id: str, org_id: str, moment: datetime) -> str:
    """``{ruleId}:{orgId}:{hour start}``: one counter per rule, org and UTC hour."""
    return f"{rule_id}:{org_id}:{hour_start(moment)}"


def block_counter_values(moment: datetime) -> dict[str, Any]:
    return {
        ":one": 1,
        ":ttl": int((moment + timedelta(hours=BLOCK_COUNTER_TTL_HOURS)).timestamp()),
        ":timestamp": int(moment.timestamp() * 1000),
    }


def judge_counter(before: int, after: Mapping[str, Any] | None) -> Verdict:
    """One increment, a numeric ttl (epoch s) and the update's timestamp on the item."""
    after = plain(dict(after or {}))
    count = after.get("count")
    if count != before + 1:
        return failed(f"block counter went {before} -> {count}, expected {before + 1}")
    if not isinstance(after.get("ttl"), int):
        return failed(f"block counter ttl is {after.get('ttl')!r}, not epoch seconds")
    return passed(f"block counter {before} -> {count}, ttl {after['ttl']}")


def judge_baseline(head: Mapping[str, Any], key_arn: str | None) -> Verdict:
    """The baseline object is SSE-KMS with the project CMK and has a version id."""
    sse = head.get("ServerSideEncryption")
    key = head.get("SSEKMSKeyId")
    version = head.get("VersionId")
    problems = []
    if sse != "aws:kms":
        problems.append(f"ServerSideEncryption is {sse!r}, not aws:kms")
    if key_arn and key != key_arn:
        problems.append(f"encrypted with {key!r}, not the project CMK {key_arn}")
    if not version or version == "null":
        problems.append("no VersionId (bucket versioning off?)")
    if problems:
        return failed("; ".join(problems))
    return passed(f"aws:kms with the project CMK, version {version}")


def judge_check_run(run: Mapping[str, Any] | None, waited: float, timeout: float) -> Verdict:
    if run is None:
        return failed(f"no Oracle check run after {waited:.0f}s (timeout {timeout:.0f}s)")
    if run.get("status") != "completed":
        return failed(f"Oracle check still {run.get('status')} after {waited:.0f}s")
    conclusion = run.get("conclusion")
    if conclusion == "success":
        return passed(f"Oracle check succeeded after {waited:.1f}s")
    return failed(f"Oracle check concluded {conclusion}")


_JSON_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S)


def parse_report(*texts: str | None) -> dict[str, Any] | None:
    """The Oracle report: the first JSON object (fenced ```json or bare) in the check output."""
    for text in texts:
        if not text:
            continue
        candidates = [m.group(1) for m in _JSON_FENCE.finditer(text)]
        start = text.find("{")
        if start >= 0:
            candidates.append(text[start : text.rfind("}") + 1])
        for candidate in candidates:
            try:
                data = json.loads(candidate)
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
    return None


def report_events(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """FP events the report names: ``fpEvents`` [{eventId, findingId, ...}] or ``fpEventIds``."""
    events = report.get("fpEvents") or []
    out = [dict(e) for e in events if isinstance(e, Mapping) and e.get("eventId")]
    out += [{"eventId": str(i)} for i in report.get("fpEventIds") or [] if isinstance(i, str)]
    seen: dict[str, dict[str, Any]] = {}
    for e in out:
        seen.setdefault(e["eventId"], {}).update(e)
    return list(seen.values())
