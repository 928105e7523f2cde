data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  prefix = "mirror-dissonance-${var.environment}"

  common_tags = merge({
    Project     = "mirror-dissonance"
    Environment = var.environment
    ManagedBy   = "terraform"
  }, var.tags)

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Must match the backend "s3" block in backend.tf (a backend block cannot read locals).
  state_bucket_name     = "mirror-dissonance-terraform-state"
  state_lock_table_name = "mirror-dissonance-terraform-locks"
  state_region          = "us-east-1"

  table_names = {
    fp_events     = "${local.prefix}-fp-events"
    consent       = "${local.prefix}-consent"
    block_counter = "${local.prefix}-block-counter"
  }

  # Table key => the table resource's name attribute (alarm dimensions, dashboard).
  table_resource_names = {
    fp_events     = aws_dynamodb_table.fp_events.name
    consent       = aws_dynamodb_table.consent.name
    block_counter = aws_dynamodb_table.block_counter.name
  }

  table_arns = [
    aws_dynamodb_table.fp_events.arn,
    aws_dynamodb_table.consent.arn,
    aws_dynamodb_table.block_counter.arn,
  ]

  # Alarms 1-6 of DESIGN.md: short name => table key and AWS/DynamoDB metric.
  throttle_alarms = {
    "fp-events-read-throttle"      = { table = "fp_events", metric = "ReadThrottleEvents" }
    "fp-events-write-throttle"     = { table = "fp_events", metric = "WriteThrottleEvents" }
    "consent-read-throttle"        = { table = "consent", metric = "ReadThrottleEvents" }
    "consent-write-throttle"       = { table = "consent", metric = "WriteThrottleEvents" }
    "block-counter-read-throttle"  = { table = "block_counter", metric = "ReadThrottleEvents" }
    "block-counter-write-throttle" = { table = "block_counter", metric = "WriteThrottleEvents" }
  }

  custom_metric_namespace = "MirrorDissonance/${var.environment}"

  # The 8 alarms (6 throttle alarms in key order, then alarms 7 and 8).
  alarm_names = concat(
    [for k in keys(local.throttle_alarms) : aws_cloudwatch_metric_alarm.table_throttle[k].alarm_name],
    [aws_cloudwatch_metric_alarm.ssm_parameter_failures.alarm_name, aws_cloudwatch_metric_alarm.circuit_breaker_triggered.alarm_name],
  )
  alarm_arns = concat(
    [for k in keys(local.throttle_alarms) : aws_cloudwatch_metric_alarm.table_throttle[k].arn],
    [aws_cloudwatch_metric_alarm.ssm_parameter_failures.arn, aws_cloudwatch_metric_alarm.circuit_breaker_triggered.arn],
  )

  # The first version, created by nonce-bootstrap (not by Terraform).
  nonce_parameter_name = "/guardian/${var.environment}/redaction_nonce_v1"

  # Built from its parts (not from aws_cloudtrail.audit.arn) so that the key
  # policy and the bucket policy do not depend on the trail they serve.
  trail_name = "${local.prefix}-audit"
  trail_arn  = "arn:${local.partition}:cloudtrail:${var.region}:${local.account_id}:trail/${local.trail_name}"

  backup_retention_days = var.environment == "production" ? 90 : 35
}

# ---------------------------------------------------------------------------
# KMS: one customer-managed key for every encrypted resource of the stack
# ---------------------------------------------------------------------------

# Key policies always use Resource "*" (it means "this key"), so scanner rules
# about wildcard resources do not apply to the statements below.
resource "aws_kms_key" "main" {
  description             = "Mirror Dissonance ${var.environment} CMK: DynamoDB, SSM nonce, SNS, S3, CloudTrail, Backup"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days

  policy = jsonencode({
    Version = "2012-10-17"
    Id      = "${local.prefix}-cmk"
    Statement = [
      {
        Sid       = "AccountAdministrationThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
      {
        Sid       = "CloudTrailEncryptLogs"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "kms:GenerateDataKey*"
        Resource  = "*"
        Condition = {
          StringEquals = {
            "aws:SourceArn" = local.trail_arn
          }
          StringLike = {
            "kms:EncryptionContext:aws:cloudtrail:arn" = "arn:${local.partition}:cloudtrail:*:${local.account_id}:trail/*"
          }
        }
      },
      {
        Sid       = "CloudTrailDescribeKey"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "kms:DescribeKey"
        Resource  = "*"
        Condition = {
          StringEquals = {
            "aws:SourceArn" = local.trail_arn
          }
        }
      },
      {
        Sid       = "S3ServerAccessLogDelivery"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "kms:GenerateDataKey*"
        Resource  = "*"
        Condition = {
          StringEquals = {
            "aws:SourceAccount" = local.account_id
          }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "main" {
  name          = "alias/${local.prefix}"
  target_key_id = aws_kms_key.main.key_id
}

# ---------------------------------------------------------------------------
# DynamoDB tables
# ---------------------------------------------------------------------------

resource "aws_dynamodb_table" "fp_events" {
  name                        = local.table_names.fp_events
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.environment == "production"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "gsi1pk"
    type = "S"
  }

  attribute {
    name = "gsi1sk"
    type = "S"
  }

  global_secondary_index {
    name            = "FindingIndex"
    hash_key        = "gsi1pk"
    range_key       = "gsi1sk"
    projection_type = "ALL"
  }

  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.pitr_enabled
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

resource "aws_dynamodb_table" "consent" {
  name         = local.table_names.consent
  billing_mode = "PAY_PER_REQUEST"
  # The Oracle's consent adapter keys records on pk = org#{sha256(orgId)},
  # sk = consent#{scope}#... (infra/data-plane.yaml). Changing the keys replaces
  # the table: see the README's consent-table migration before applying.
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.environment == "production"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = var.pitr_enabled
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

resource "aws_dynamodb_table" "block_counter" {
  name                        = local.table_names.block_counter
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "bucketKey"
  deletion_protection_enabled = var.environment == "production"

  attribute {
    name = "bucketKey"
    type = "S"
  }

  # The block-counter adapter writes `ttl` (epoch s, if_not_exists(ttl, now + 24 h)).
  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.pitr_enabled
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

# ---------------------------------------------------------------------------
# Redaction nonce: no parameter is declared here. Nonce versions
# (/guardian/{env}/redaction_nonce_v{N}) are runtime data owned by the
# rollout's nonce-bootstrap and nonce-rotation flows: a Terraform-owned v1
# would be re-created by every plan once a rotation's grace cleanup deletes
# it, and a Terraform-written value would sit in state. Terraform owns what
# surrounds the nonce: the CMK above, IAM read access to
# /guardian/{env}/redaction_nonce_v* and the SSM-failure alarm below.
# ---------------------------------------------------------------------------

# Environments applied before this change have v1 in state: forget it there,
# leaving the live parameter (the nonce flows own it now) untouched.
removed {
  from = aws_ssm_parameter.redaction_nonce

  lifecycle {
    destroy = false
  }
}

# ---------------------------------------------------------------------------
# Alerting: SNS topic + 8 CloudWatch alarms
# ---------------------------------------------------------------------------

resource "aws_sns_topic" "ops_alerts" {
  name              = "${local.prefix}-ops-alerts"
  kms_master_key_id = aws_kms_key.main.arn
}

resource "aws_sns_topic_subscription" "ops_email" {
  count = var.alert_email == "" ? 0 : 1

  topic_arn = aws_sns_topic.ops_alerts.arn
  protocol  = "email"
  endpoint  = var.alert_email
}

resource "aws_cloudwatch_metric_alarm" "table_throttle" {
  for_each = local.throttle_alarms

  alarm_name          = "${local.prefix}-${each.key}"
  alarm_description   = "${each.value.metric} on ${local.table_resource_names[each.value.table]} above ${var.throttle_threshold} in ${var.alarm_period_seconds}s"
  namespace           = "AWS/DynamoDB"
  metric_name         = each.value.metric
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 1
  period              = var.alarm_period_seconds
  statistic           = "Sum"
  threshold           = var.throttle_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.ops_alerts.arn]
  ok_actions          = [aws_sns_topic.ops_alerts.arn]

  dimensions = {
    TableName = local.table_resource_names[each.value.table]
  }
}

resource "aws_cloudwatch_metric_alarm" "ssm_parameter_failures" {
  alarm_name          = "${local.prefix}-ssm-parameter-failures"
  alarm_description   = "SSMParameterFailures (nonce reads) above ${var.ssm_failure_threshold} in ${var.alarm_period_seconds}s"
  namespace           = local.custom_metric_namespace
  metric_name         = "SSMParameterFailures"
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 1
  period              = var.alarm_period_seconds
  statistic           = "Sum"
  threshold           = var.ssm_failure_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.ops_alerts.arn]
  ok_actions          = [aws_sns_topic.ops_alerts.arn]
}

resource "aws_cloudwatch_metric_alarm" "circuit_breaker_triggered" {
  alarm_name          = "${local.prefix}-circuit-breaker-triggered"
  alarm_description   = "CircuitBreakerTriggers above ${var.circuit_breaker_threshold} in ${var.alarm_period_seconds}s"
  namespace           = local.custom_metric_namespace
  metric_name         = "CircuitBreakerTriggers"
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 1
  period              = var.alarm_period_seconds
  statistic           = "Sum"
  threshold           = var.circuit_breaker_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.ops_alerts.arn]
  ok_actions          = [aws_sns_topic.ops_alerts.arn]
}

# ---------------------------------------------------------------------------
# Baselines bucket
# ---------------------------------------------------------------------------

# Access logs go to the audit bucket (aws_s3_bucket_logging.baselines). The
# scanner rules skipped below need resource types outside the sandbox engine's
# set, and do not fit this bucket:
resource "aws_s3_bucket" "baselines" {
  # checkov:skip=CKV_AWS_144:Baselines are small and rebuildable from the repositories; a second-region copy adds cost, not safety.
  # checkov:skip=CKV2_AWS_62:Nothing consumes object events; writes are audited by CloudTrail and S3 access logs.
  # checkov:skip=CKV2_AWS_61:Old versions are the baseline history drift detection compares against; no expiry wanted.
  bucket = "${local.prefix}-baselines"
}

resource "aws_s3_bucket_versioning" "baselines" {
  bucket = aws_s3_bucket.baselines.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "baselines" {
  bucket = aws_s3_bucket.baselines.id

  rule {
    bucket_key_enabled = true

    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.main.arn
    }
  }
}

resource "aws_s3_bucket_public_access_block" "baselines" {
  bucket = aws_s3_bucket.baselines.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_logging" "baselines" {
  bucket        = aws_s3_bucket.baselines.id
  target_bucket = aws_s3_bucket.audit_logs.id
  target_prefix = "s3-access/baselines/"

  depends_on = [aws_s3_bucket_policy.audit_logs]
}

# ---------------------------------------------------------------------------
# Audit trail: CloudTrail + its own private, versioned, encrypted log bucket
# ---------------------------------------------------------------------------

# This bucket is itself the access-log sink, so it has no aws_s3_bucket_logging
# of its own (logging a log bucket into itself loops).
resource "aws_s3_bucket" "audit_logs" {
  # checkov:skip=CKV_AWS_144:Audit records are integrity-protected by CloudTrail log-file validation; single-region copy is accepted for this phase.
  # checkov:skip=CKV2_AWS_62:Nothing consumes object events on the log sink.
  # checkov:skip=CKV2_AWS_61:Audit logs are retained indefinitely until a retention policy is agreed; no expiry rule on purpose.
  bucket = "${local.prefix}-audit-logs"
}

resource "aws_s3_bucket_versioning" "audit_logs" {
  bucket = aws_s3_bucket.audit_logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "audit_logs" {
  bucket = aws_s3_bucket.audit_logs.id

  rule {
    bucket_key_enabled = true

    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.main.arn
    }
  }
}

resource "aws_s3_bucket_public_access_block" "audit_logs" {
  bucket = aws_s3_bucket.audit_logs.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_policy" "audit_logs" {
  bucket = aws_s3_bucket.audit_logs.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "CloudTrailAclCheck"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "s3:GetBucketAcl"
        Resource  = aws_s3_bucket.audit_logs.arn
        Condition = {
          StringEquals = {
            "aws:SourceArn" = local.trail_arn
          }
        }
      },
      {
        Sid       = "CloudTrailWrite"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.audit_logs.arn}/cloudtrail/AWSLogs/${local.account_id}/*"
        Condition = {
          StringEquals = {
            "s3:x-amz-acl"  = "bucket-owner-full-control"
            "aws:SourceArn" = local.trail_arn
          }
        }
      },
      {
        Sid       = "S3ServerAccessLogsWrite"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.audit_logs.arn}/s3-access/*"
        Condition = {
          ArnLike = {
            "aws:SourceArn" = aws_s3_bucket.baselines.arn
          }
          StringEquals = {
            "aws:SourceAccount" = local.account_id
          }
        }
      },
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource = [
          aws_s3_bucket.audit_logs.arn,
          "${aws_s3_bucket.audit_logs.arn}/*",
        ]
        Condition = {
          Bool = {
            "aws:SecureTransport" = "false"
          }
        }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.audit_logs]
}

resource "aws_cloudtrail" "audit" {
  # checkov:skip=CKV2_AWS_10:The audit record is the private bucket with log-file validation; no CloudWatch Logs copy in this phase.
  # checkov:skip=CKV_AWS_252:Ops alerting is the 8 metric alarms on the ops-alerts topic; per-log-file SNS notices would be noise.
  name                          = local.trail_name
  s3_bucket_name                = aws_s3_bucket.audit_logs.id
  s3_key_prefix                 = "cloudtrail"
  kms_key_id                    = aws_kms_key.main.arn
  enable_logging                = true
  enable_log_file_validation    = true
  include_global_service_events = true
  is_multi_region_trail         = true

  event_selector {
    read_write_type           = "All"
    include_management_events = true

    data_resource {
      type   = "AWS::DynamoDB::Table"
      values = local.table_arns
    }
  }

  depends_on = [aws_s3_bucket_policy.audit_logs]
}

# ---------------------------------------------------------------------------
# AWS Backup for the three tables (on top of PITR)
# ---------------------------------------------------------------------------

resource "aws_backup_vault" "main" {
  name        = "${local.prefix}-backup-vault"
  kms_key_arn = aws_kms_key.main.arn
}

resource "aws_backup_plan" "main" {
  name = "${local.prefix}-backup-plan"

  rule {
    rule_name         = "daily"
    target_vault_name = aws_backup_vault.main.name
    schedule          = "cron(0 5 * * ? *)"
    start_window      = 60
    completion_window = 240

    lifecycle {
      delete_after = local.backup_retention_days
    }
  }
}

resource "aws_iam_role" "backup" {
  name        = "${local.prefix}-backup"
  description = "Role AWS Backup assumes to back up the Mirror Dissonance ${var.environment} tables"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "backup.amazonaws.com" }
        Action    = "sts:AssumeRole"
      },
    ]
  })
}

resource "aws_iam_role_policy_attachment" "backup" {
  role       = aws_iam_role.backup.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"
}

resource "aws_backup_selection" "tables" {
  name         = "${local.prefix}-tables"
  plan_id      = aws_backup_plan.main.id
  iam_role_arn = aws_iam_role.backup.arn
  resources    = local.table_arns
}
