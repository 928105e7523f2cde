"""boto3 reads of the project-named resources of one environment (thin)."""

from __future__ import annotations

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from tasks.orphans.checks import LiveResource


def project_resources(environment: str, aws: AwsClients) -> list[LiveResource]:
    """Every resource named ``mirror-dissonance-{env}…`` that a create could leave behind."""
    prefix = contract.name(environment, "")
    dashboard = prefix.rstrip("-")
    found: list[LiveResource] = []
    for page in aws["dynamodb"].get_paginator("list_tables").paginate():
        found += [
            LiveResource("aws_dynamodb_table", t)
            for t in page["TableNames"]
            if t.startswith(prefix)
        ]
    for page in aws["sns"].get_paginator("list_topics").paginate():
        found += [
            LiveResource("aws_sns_topic", t["TopicArn"])
            for t in page["Topics"]
            if t["TopicArn"].rsplit(":", 1)[-1].startswith(prefix)
        ]
    found += [
        LiveResource("aws_s3_bucket", b["Name"])
        for b in aws["s3"].list_buckets()["Buckets"]
        if b["Name"].startswith(prefix)
    ]
    for page in aws["cloudwatch"].get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix):
        found += [
            LiveResource("aws_cloudwatch_metric_alarm", a["AlarmName"])
            for a in page["MetricAlarms"]
        ]
    found += [
        LiveResource("aws_cloudwatch_dashboard", d["DashboardName"])
        for d in aws["cloudwatch"].list_dashboards(DashboardNamePrefix=dashboard)[
            "DashboardEntries"
        ]
        if d["DashboardName"] == dashboard
    ]
    for page in aws["iam"].get_paginator("list_roles").paginate():
        found += [
            LiveResource("aws_iam_role", r["RoleName"])
            for r in page["Roles"]
            if r["RoleName"].startswith(prefix)
        ]
    found += [
        LiveResource("aws_backup_vault", v["BackupVaultName"])
        for v in aws["backup"].list_backup_vaults()["BackupVaultList"]
        if v["BackupVaultName"].startswith(prefix)
    ]
    return sorted(found, key=lambda r: (r.type, r.id))
