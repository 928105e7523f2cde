"""boto3 reads of the project's resources of one environment (thin).

Every type the root creates with a call that fails when the resource exists already
(CreateTable, CreateRole, CreateBucket, CreateAlias, CreateTrail, CreateBackupVault,
CreateBackupPlan, CreateOpenIDConnectProvider), and the ones a create can leave
behind unnamed (a CMK, found by the project's default tags). A resource of these
types that state does not track makes the next apply fail, or is a duplicate.
"""

from __future__ import annotations

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from tasks.orphans.checks import LiveResource

#: The GitHub Actions OIDC provider's URL (one per account; this root owns it).
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
#: KMS key states that are not a live key to adopt.
GONE_KEY_STATES = frozenset({"PendingDeletion", "PendingReplicaDeletion"})


def project_resources(environment: str, aws: AwsClients) -> list[LiveResource]:
    """Every resource of ``environment`` (named ``mirror-dissonance-{env}…``) a create could leave behind."""
    prefix = contract.name(environment, "")
    stem = prefix.rstrip("-")  # the dashboard's and the KMS alias's name
    found: list[LiveResource] = []
    for page in aws["dynamodb"].get_paginator("list_tables").paginate():
        found += [
            LiveResource("aws_dynamodb_table", t)
            for t in page["TableNames"]
            if t.startswith(prefix)
        ]
    for page in aws["sns"].get_paginator("list_topics").paginate():
        found += [
            LiveResource("aws_sns_topic", t["TopicArn"], t["TopicArn"].rsplit(":", 1)[-1])
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
        for d in aws["cloudwatch"].list_dashboards(DashboardNamePrefix=stem)["DashboardEntries"]
        if d["DashboardName"] == stem
    ]
    for page in aws["iam"].get_paginator("list_roles").paginate():
        found += [
            LiveResource("aws_iam_role", r["RoleName"])
            for r in page["Roles"]
            if r["RoleName"].startswith(prefix)
        ]
    found += [
        LiveResource("aws_iam_openid_connect_provider", p["Arn"], GITHUB_OIDC_HOST)
        for p in aws["iam"].list_open_id_connect_providers()["OpenIDConnectProviderList"]
        if p["Arn"].endswith(f":oidc-provider/{GITHUB_OIDC_HOST}")
    ]
    for page in aws["backup"].get_paginator("list_backup_vaults").paginate():
        found += [
            LiveResource("aws_backup_vault", v["BackupVaultName"])
            for v in page["BackupVaultList"]
            if v["BackupVaultName"].startswith(prefix)
        ]
    for page in aws["backup"].get_paginator("list_backup_plans").paginate():
        found += [
            LiveResource("aws_backup_plan", p["BackupPlanId"], p["BackupPlanName"])
            for p in page["BackupPlansList"]
            if p["BackupPlanName"].startswith(prefix)
        ]
    found += [
        LiveResource("aws_cloudtrail", t["TrailARN"], t["Name"])
        for t in aws["cloudtrail"].describe_trails(includeShadowTrails=False)["trailList"]
        if t["Name"].startswith(prefix)
    ]
    for page in aws["kms"].get_paginator("list_aliases").paginate():
        found += [
            LiveResource("aws_kms_alias", a["AliasName"])
            for a in page["Aliases"]
            if a["AliasName"] == f"alias/{stem}" or a["AliasName"].startswith(f"alias/{prefix}")
        ]
    found += _project_keys(environment, aws)
    return sorted(found, key=lambda r: (r.type, r.id))


def _project_keys(environment: str, aws: AwsClients) -> list[LiveResource]:
    """Customer-managed keys carrying the root's default tags for ``environment`` (keys have no name)."""
    kms = aws["kms"]
    found = []
    for page in kms.get_paginator("list_keys").paginate():
        for key in page["Keys"]:
            meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
            if meta.get("KeyManager") != "CUSTOMER" or meta.get("KeyState") in GONE_KEY_STATES:
                continue
            tags = {
                t["TagKey"]: t["TagValue"]
                for t in kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])
            }
            if tags.get("Project") == contract.PREFIX and tags.get("Environment") == environment:
                found.append(LiveResource("aws_kms_key", key["KeyId"]))
    return found
