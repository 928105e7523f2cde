"""aws_cloudtrail.

moto 5.2.5 stores everything this handler sets (trail settings, KMS key id, basic
and advanced event selectors, insight selectors, logging status, tags) and
requires the S3 bucket to exist. It does not deliver any log file to the bucket,
does not sign digest files (log-file validation is a stored flag only) and does
not check the bucket policy or the KMS key policy the way CloudTrail does.
"""

from __future__ import annotations

from typing import Any

from mirror_rollout.aws import AwsClients

from .base import ResourceHandler, handler
from .common import (
    blocks,
    changed,
    given,
    ignoring,
    state,
    tag_changes,
    tag_list,
    tags_of,
)

#: Terraform argument -> CreateTrail/UpdateTrail parameter (strings, set when given).
TRAIL_STRINGS = {
    "s3_bucket_name": "S3BucketName",
    "s3_key_prefix": "S3KeyPrefix",
    "sns_topic_name": "SnsTopicName",
    "cloud_watch_logs_group_arn": "CloudWatchLogsLogGroupArn",
    "cloud_watch_logs_role_arn": "CloudWatchLogsRoleArn",
    "kms_key_id": "KmsKeyId",
}

#: Terraform argument -> parameter, provider default.
TRAIL_FLAGS = {
    "include_global_service_events": ("IncludeGlobalServiceEvents", True),
    "is_multi_region_trail": ("IsMultiRegionTrail", False),
    "enable_log_file_validation": ("EnableLogFileValidation", False),
    "is_organization_trail": ("IsOrganizationTrail", False),
}

TRAIL_ARGS = (*TRAIL_STRINGS, *TRAIL_FLAGS)

FIELD_OPERATORS = {
    "equals": "Equals",
    "not_equals": "NotEquals",
    "starts_with": "StartsWith",
    "not_starts_with": "NotStartsWith",
    "ends_with": "EndsWith",
    "not_ends_with": "NotEndsWith",
}


def trail_request(config: dict[str, Any], with_tags: bool = True) -> dict[str, Any]:
    req: dict[str, Any] = {"Name": config["name"]}
    for arg, key in TRAIL_STRINGS.items():
        if given(config.get(arg)):
            req[key] = config[arg]
    for arg, (key, default) in TRAIL_FLAGS.items():
        value = config.get(arg)
        req[key] = default if value is None else bool(value)
    tags = tags_of(config)
    if with_tags and tags:
        req["TagsList"] = tag_list(tags)
    return req


def event_selectors_request(config: dict[str, Any]) -> dict[str, Any] | None:
    """PutEventSelectors arguments (basic or advanced selectors), or None when neither is set."""
    basic = []
    for sel in blocks(config, "event_selector"):
        out: dict[str, Any] = {
            "ReadWriteType": sel.get("read_write_type") or "All",
            "IncludeManagementEvents": sel.get("include_management_events") is not False,
            "DataResources": [
                {"Type": r["type"], "Values": list(r.get("values") or [])}
                for r in blocks(sel, "data_resource")
            ],
        }
        if sel.get("exclude_management_event_sources"):
            out["ExcludeManagementEventSources"] = list(sel["exclude_management_event_sources"])
        basic.append(out)
    advanced = []
    for sel in blocks(config, "advanced_event_selector"):
        fields = []
        for field in blocks(sel, "field_selector"):
            item: dict[str, Any] = {"Field": field["field"]}
            for arg, key in FIELD_OPERATORS.items():
                if field.get(arg):
                    item[key] = list(field[arg])
            fields.append(item)
        entry: dict[str, Any] = {"FieldSelectors": fields}
        if given(sel.get("name")):
            entry["Name"] = sel["name"]
        advanced.append(entry)
    if advanced:
        return {"TrailName": config["name"], "AdvancedEventSelectors": advanced}
    if basic:
        return {"TrailName": config["name"], "EventSelectors": basic}
    return None


def default_event_selectors(name: str) -> dict[str, Any]:
    """What a trail without selectors records: all management events."""
    return {
        "TrailName": name,
        "EventSelectors": [
            {"ReadWriteType": "All", "IncludeManagementEvents": True, "DataResources": []}
        ],
    }


def insight_selectors(config: dict[str, Any]) -> list[dict[str, str]]:
    return [{"InsightType": s["insight_type"]} for s in blocks(config, "insight_selector")]


@handler
class CloudTrail(ResourceHandler):
    type = "aws_cloudtrail"
    force_new = frozenset({"name"})

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        ct = aws.client("cloudtrail")
        name = config["name"]
        arn = ct.create_trail(**trail_request(config))["TrailARN"]
        selectors = event_selectors_request(config)
        if selectors:
            ct.put_event_selectors(**selectors)
        insights = insight_selectors(config)
        if insights:
            ct.put_insight_selectors(TrailName=name, InsightSelectors=insights)
        if config.get("enable_logging") is not False:  # provider default: true
            ct.start_logging(Name=name)
        return state(config, id=name, arn=arn, home_region=aws.region)

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        ct = aws.client("cloudtrail")
        name, arn = prior["id"], prior["arn"]
        if changed(prior, config, *TRAIL_ARGS):
            ct.update_trail(**trail_request(config, with_tags=False))
        if changed(prior, config, "event_selector", "advanced_event_selector"):
            ct.put_event_selectors(
                **(event_selectors_request(config) or default_event_selectors(name))
            )
        if changed(prior, config, "insight_selector"):
            ct.put_insight_selectors(TrailName=name, InsightSelectors=insight_selectors(config))
        if changed(prior, config, "enable_logging"):
            if config.get("enable_logging") is not False:
                ct.start_logging(Name=name)
            else:
                ct.stop_logging(Name=name)
        upsert, remove = tag_changes(prior, config)
        if remove:
            ct.remove_tags(ResourceId=arn, TagsList=[{"Key": k} for k in remove])
        if upsert:
            ct.add_tags(ResourceId=arn, TagsList=tag_list(upsert))
        return state(config, id=name, arn=arn, home_region=prior.get("home_region") or aws.region)

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        with ignoring("TrailNotFoundException"):
            aws.client("cloudtrail").delete_trail(Name=prior["id"])
