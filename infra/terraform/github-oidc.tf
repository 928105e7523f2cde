# GitHub Actions OIDC. An IAM OIDC provider is unique per URL per AWS account:
# this stack assumes one account per environment. If staging and production
# share an account, import the existing provider into the second workspace
# (terraform import aws_iam_openid_connect_provider.github <arn>).
resource "aws_iam_openid_connect_provider" "github" {
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]

  # GitHub's published intermediate-CA thumbprints. AWS validates this issuer
  # against its own trusted CAs, but the API still requires the list.
  thumbprint_list = [
    "6938fd4d98bab03faadb97b34396831e3780aea1",
    "1c58a3a8518e8759bf075b76b750d4f2df264fcd",
  ]
}

resource "aws_iam_role" "github_deploy" {
  name                 = "${local.prefix}-github-deploy"
  description          = "Assumed by GitHub Actions in ${var.github_org}/${var.github_repo} (OIDC) for the Mirror Dissonance ${var.environment} pipeline"
  max_session_duration = 3600

  # Only workflows of the one repository, any ref; never a wider sub pattern.
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "GitHubActionsOidc"
        Effect    = "Allow"
        Principal = { Federated = aws_iam_openid_connect_provider.github.arn }
        Action    = "sts:AssumeRoleWithWebIdentity"
        Condition = {
          StringEquals = {
            "token.actions.githubusercontent.com:aud" = "sts.amazonaws.com"
          }
          StringLike = {
            "token.actions.githubusercontent.com:sub" = "repo:${var.github_org}/${var.github_repo}:*"
          }
        }
      },
    ]
  })
}

# Least privilege for what the pipeline does from CI: read Terraform state and
# take the state lock (plan/output; infrastructure changes are applied with the
# operator's credentials), read/write the three tables, manage the nonce
# versions, use the CMK through those services, read/write baselines, probe
# alarms and SNS, read the dashboard, trail and backup evidence. Every
# statement names the project's ARNs, except the CloudWatch metric actions
# that have no resource-level permissions (see the comments on them).
resource "aws_iam_role_policy" "github_deploy" {
  name = "${local.prefix}-github-deploy"
  role = aws_iam_role.github_deploy.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "TerraformStateList"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = "arn:${local.partition}:s3:::${local.state_bucket_name}"
        Condition = {
          StringLike = {
            "s3:prefix" = ["env/", "env/${var.environment}/*"]
          }
        }
      },
      {
        Sid      = "TerraformStateRead"
        Effect   = "Allow"
        Action   = "s3:GetObject"
        Resource = "arn:${local.partition}:s3:::${local.state_bucket_name}/env/${var.environment}/*"
      },
      {
        Sid      = "TerraformStateLock"
        Effect   = "Allow"
        Action   = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
        Resource = "arn:${local.partition}:dynamodb:${local.state_region}:${local.account_id}:table/${local.state_lock_table_name}"
      },
      {
        Sid    = "ProjectTables"
        Effect = "Allow"
        Action = [
          "dynamodb:DescribeTable",
          "dynamodb:DescribeTimeToLive",
          "dynamodb:DescribeContinuousBackups",
          "dynamodb:UpdateContinuousBackups",
          "dynamodb:GetItem",
          "dynamodb:BatchGetItem",
          "dynamodb:Query",
          "dynamodb:PutItem",
          "dynamodb:UpdateItem",
          "dynamodb:DeleteItem",
          "dynamodb:ConditionCheckItem",
        ]
        Resource = concat(local.table_arns, ["${aws_dynamodb_table.fp_events.arn}/index/*"])
      },
      {
        # PITR restore drill (tasks/restore_drill): restore from exactly the three
        # tables, and scan them for the items at the drill's time T.
        Sid      = "RestoreDrillSources"
        Effect   = "Allow"
        Action   = ["dynamodb:RestoreTableToPointInTime", "dynamodb:Scan"]
        Resource = local.table_arns
      },
      {
        # The drill's copies only (mirror-dissonance-{env}-{table}-drill-{run}):
        # describe, scan and delete them; the item writes are what DynamoDB needs
        # on a restore's target table. Never the source tables.
        Sid    = "RestoreDrillCopies"
        Effect = "Allow"
        Action = [
          "dynamodb:DescribeTable",
          "dynamodb:Scan",
          "dynamodb:DeleteTable",
          "dynamodb:GetItem",
          "dynamodb:Query",
          "dynamodb:PutItem",
          "dynamodb:UpdateItem",
          "dynamodb:DeleteItem",
          "dynamodb:BatchWriteItem",
        ]
        Resource = "arn:${local.partition}:dynamodb:${var.region}:${local.account_id}:table/${local.prefix}-*-drill-*"
      },
      {
        # A restored copy is encrypted with the source's CMK: DynamoDB takes a grant on it.
        Sid      = "RestoreDrillCmkGrant"
        Effect   = "Allow"
        Action   = "kms:CreateGrant"
        Resource = aws_kms_key.main.arn
        Condition = {
          StringEquals = { "kms:ViaService" = "dynamodb.${var.region}.amazonaws.com" }
          Bool         = { "kms:GrantIsForAWSResource" = "true" }
        }
      },
      {
        Sid    = "NonceParameters"
        Effect = "Allow"
        Action = [
          "ssm:GetParameter",
          "ssm:GetParameters",
          "ssm:GetParameterHistory",
          "ssm:GetParametersByPath",
          "ssm:PutParameter",
          "ssm:DeleteParameter",
          "ssm:AddTagsToResource",
          "ssm:ListTagsForResource",
        ]
        Resource = [
          "arn:${local.partition}:ssm:${var.region}:${local.account_id}:parameter/guardian/${var.environment}",
          "arn:${local.partition}:ssm:${var.region}:${local.account_id}:parameter/guardian/${var.environment}/*",
        ]
      },
      {
        Sid      = "CmkThroughProjectServices"
        Effect   = "Allow"
        Action   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
        Resource = aws_kms_key.main.arn
        Condition = {
          StringEquals = {
            "kms:ViaService" = [
              "ssm.${var.region}.amazonaws.com",
              "dynamodb.${var.region}.amazonaws.com",
              "s3.${var.region}.amazonaws.com",
              "sns.${var.region}.amazonaws.com",
            ]
          }
        }
      },
      {
        Sid      = "CmkEvidence"
        Effect   = "Allow"
        Action   = ["kms:DescribeKey", "kms:GetKeyRotationStatus"]
        Resource = aws_kms_key.main.arn
      },
      {
        Sid      = "BaselinesBucket"
        Effect   = "Allow"
        Action   = ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketVersioning", "s3:GetEncryptionConfiguration", "s3:GetBucketPublicAccessBlock"]
        Resource = aws_s3_bucket.baselines.arn
      },
      {
        Sid      = "BaselinesObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
        Resource = "${aws_s3_bucket.baselines.arn}/*"
      },
      {
        Sid      = "OpsAlertsTopic"
        Effect   = "Allow"
        Action   = ["sns:Publish", "sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic"]
        Resource = aws_sns_topic.ops_alerts.arn
      },
      {
        Sid      = "ProjectAlarms"
        Effect   = "Allow"
        Action   = ["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory", "cloudwatch:SetAlarmState"]
        Resource = local.alarm_arns
      },
      {
        Sid      = "ProjectDashboard"
        Effect   = "Allow"
        Action   = "cloudwatch:GetDashboard"
        Resource = aws_cloudwatch_dashboard.main.dashboard_arn
      },
      {
        # PutMetricData has no resource-level permissions; the namespace
        # condition limits it to this environment's custom metrics.
        Sid      = "PublishProjectMetrics"
        Effect   = "Allow"
        Action   = "cloudwatch:PutMetricData"
        Resource = "*"
        Condition = {
          StringEquals = {
            "cloudwatch:namespace" = local.custom_metric_namespace
          }
        }
      },
      {
        # Read-only metric queries have no resource-level permissions in IAM,
        # so "*" is the only valid resource for them.
        Sid      = "ReadMetrics"
        Effect   = "Allow"
        Action   = ["cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics", "cloudwatch:ListMetrics"]
        Resource = "*"
      },
      {
        Sid      = "AuditTrailEvidence"
        Effect   = "Allow"
        Action   = ["cloudtrail:GetTrail", "cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors"]
        Resource = aws_cloudtrail.audit.arn
      },
      {
        Sid      = "BackupEvidence"
        Effect   = "Allow"
        Action   = ["backup:GetBackupPlan", "backup:ListBackupSelections", "backup:GetBackupSelection"]
        Resource = aws_backup_plan.main.arn
      },
      {
        Sid      = "BackupVaultEvidence"
        Effect   = "Allow"
        Action   = ["backup:DescribeBackupVault", "backup:ListRecoveryPointsByBackupVault"]
        Resource = aws_backup_vault.main.arn
      },
    ]
  })
}
