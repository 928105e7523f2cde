"""aws_cloudwatch_metric_alarm, aws_cloudwatch_dashboard, aws_cloudwatch_log_group.

moto stores alarms but never evaluates them against metrics or fires their
actions, and keeps no alarm history; the checks report that as SKIPPED.
"""

from __future__ import annotations

from typing import Any

from mirror_rollout.aws import AwsClients

from .base import ResourceHandler, handler
from .common import (
    account_id,
    blocks,
    changed,
    given,
    ignoring,
    partition_of,
    state,
    tag_changes,
    tag_list,
    tags_of,
    unique_name,
)


def dimensions(mapping: dict[str, Any] | None) -> list[dict[str, str]]:
    return [{"Name": str(k), "Value": str(v)} for k, v in (mapping or {}).items()]


def metric_query(query: dict[str, Any]) -> dict[str, Any]:
    """One ``metric_query`` block -> a MetricDataQuery."""
    out: dict[str, Any] = {"Id": query["id"]}
    if given(query.get("expression")):
        out["Expression"] = query["expression"]
    if given(query.get("label")):
        out["Label"] = query["label"]
    if query.get("return_data") is not None:
        out["ReturnData"] = bool(query["return_data"])
    if query.get("period"):
        out["Period"] = int(query["period"])
    if given(query.get("account_id")):
        out["AccountId"] = query["account_id"]
    for metric in blocks(query, "metric"):
        stat: dict[str, Any] = {
            "Metric": {
                "Namespace": metric["namespace"],
                "MetricName": metric["metric_name"],
                "Dimensions": dimensions(metric.get("dimensions")),
            },
            "Period": int(metric["period"]),
            "Stat": metric["stat"],
        }
        if given(metric.get("unit")):
            stat["Unit"] = metric["unit"]
        out["MetricStat"] = stat
    return out


def alarm_request(config: dict[str, Any], with_tags: bool = True) -> dict[str, Any]:
    """PutMetricAlarm arguments for every argument of aws_cloudwatch_metric_alarm.

    PutMetricAlarm replaces the whole alarm, so the same request serves create and
    update; tags go along only on create (they are not changed by PutMetricAlarm)."""
    req: dict[str, Any] = {
        "AlarmName": config["alarm_name"],
        "ComparisonOperator": config["comparison_operator"],
        "EvaluationPeriods": int(config["evaluation_periods"]),
        "ActionsEnabled": config.get("actions_enabled") is not False,
        "AlarmActions": list(config.get("alarm_actions") or []),
        "OKActions": list(config.get("ok_actions") or []),
        "InsufficientDataActions": list(config.get("insufficient_data_actions") or []),
        "TreatMissingData": config.get("treat_missing_data") or "missing",
    }
    optional = {
        "alarm_description": "AlarmDescription",
        "namespace": "Namespace",
        "metric_name": "MetricName",
        "statistic": "Statistic",
        "extended_statistic": "ExtendedStatistic",
        "unit": "Unit",
        "threshold_metric_id": "ThresholdMetricId",
        "evaluate_low_sample_count_percentiles": "EvaluateLowSampleCountPercentile",
    }
    for arg, key in optional.items():
        if given(config.get(arg)):
            req[key] = config[arg]
    if config.get("threshold") is not None:
        req["Threshold"] = float(config["threshold"])
    if config.get("period") is not None:
        req["Period"] = int(config["period"])
    if config.get("datapoints_to_alarm") is not None:
        req["DatapointsToAlarm"] = int(config["datapoints_to_alarm"])
    if config.get("dimensions"):
        req["Dimensions"] = dimensions(config["dimensions"])
    queries = [metric_query(q) for q in blocks(config, "metric_query")]
    if queries:
        req["Metrics"] = queries
    tags = tags_of(config)
    if with_tags and tags:
        req["Tags"] = tag_list(tags)
    return req


@handler
class MetricAlarm(ResourceHandler):
    type = "aws_cloudwatch_metric_alarm"
    force_new = frozenset({"alarm_name"})

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        cw = aws.client("cloudwatch")
        cw.put_metric_alarm(**alarm_request(config))
        return state(config, **self._computed(cw, config["alarm_name"]))

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        cw = aws.client("cloudwatch")
        cw.put_metric_alarm(**alarm_request(config, with_tags=False))
        computed = self._computed(cw, config["alarm_name"])
        upsert, remove = tag_changes(prior, config)
        if remove:
            cw.untag_resource(ResourceARN=computed["arn"], TagKeys=remove)
        if upsert:
            cw.tag_resource(ResourceARN=computed["arn"], Tags=tag_list(upsert))
        return state(config, **computed)

    @staticmethod
    def _computed(cw: Any, name: str) -> dict[str, Any]:
        alarm = cw.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"])["MetricAlarms"][0]
        return {"id": name, "arn": alarm["AlarmArn"]}

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        with ignoring("ResourceNotFound", "ResourceNotFoundException"):
            aws.client("cloudwatch").delete_alarms(AlarmNames=[prior["id"]])


@handler
class Dashboard(ResourceHandler):
    type = "aws_cloudwatch_dashboard"
    force_new = frozenset({"dashboard_name"})

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        cw = aws.client("cloudwatch")
        name = config["dashboard_name"]
        cw.put_dashboard(DashboardName=name, DashboardBody=config["dashboard_body"])
        arn = cw.get_dashboard(DashboardName=name)["DashboardArn"]
        return state(config, id=name, dashboard_arn=arn)

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        return self.create(aws, config)  # PutDashboard replaces the body

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        with ignoring("ResourceNotFound", "DashboardNotFoundError", "ResourceNotFoundException"):
            aws.client("cloudwatch").delete_dashboards(DashboardNames=[prior["id"]])


def log_group_request(config: dict[str, Any], name: str) -> dict[str, Any]:
    req: dict[str, Any] = {"logGroupName": name}
    if given(config.get("kms_key_id")):
        req["kmsKeyId"] = config["kms_key_id"]
    if given(config.get("log_group_class")):
        req["logGroupClass"] = config["log_group_class"]
    tags = tags_of(config)
    if tags:
        req["tags"] = tags
    return req


def log_group_arn(region: str, account: str, name: str) -> str:
    return f"arn:{partition_of(region)}:logs:{region}:{account}:log-group:{name}"


@handler
class LogGroup(ResourceHandler):
    type = "aws_cloudwatch_log_group"
    force_new = frozenset({"name", "name_prefix", "log_group_class"})

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        logs = aws.client("logs")
        name = config.get("name") or unique_name(config.get("name_prefix"))
        logs.create_log_group(**log_group_request(config, name))
        if config.get("retention_in_days"):
            logs.put_retention_policy(
                logGroupName=name, retentionInDays=int(config["retention_in_days"])
            )
        arn = log_group_arn(aws.region, account_id(aws), name)
        return state(config, id=name, name=name, arn=arn)

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        logs = aws.client("logs")
        name, arn = prior["id"], prior["arn"]
        if changed(prior, config, "retention_in_days"):
            if config.get("retention_in_days"):
                logs.put_retention_policy(
                    logGroupName=name, retentionInDays=int(config["retention_in_days"])
                )
            else:
                logs.delete_retention_policy(logGroupName=name)
        if changed(prior, config, "kms_key_id"):
            if given(config.get("kms_key_id")):
                logs.associate_kms_key(logGroupName=name, kmsKeyId=config["kms_key_id"])
            else:
                logs.disassociate_kms_key(logGroupName=name)
        upsert, remove = tag_changes(prior, config)
        if remove:
            logs.untag_resource(resourceArn=arn, tagKeys=remove)
        if upsert:
            logs.tag_resource(resourceArn=arn, tags=upsert)
        return state(config, id=name, name=name, arn=arn)

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        if prior.get("skip_destroy"):
            return  # the provider only forgets such a log group
        with ignoring("ResourceNotFoundException"):
            aws.client("logs").delete_log_group(logGroupName=prior["id"])
