output "github_deploy_role_arn" {
  description = "ARN of the role GitHub Actions assumes through OIDC (secret AWS_ROLE_ARN_<ENV>)."
  value       = aws_iam_role.github_deploy.arn
}

output "sns_topic_arn" {
  description = "ARN of the ops-alerts SNS topic every alarm notifies (secret OPS_SNS_TOPIC_ARN_<ENV>)."
  value       = aws_sns_topic.ops_alerts.arn
}

output "baselines_bucket_name" {
  description = "Name of the versioned, KMS-encrypted baselines bucket."
  value       = aws_s3_bucket.baselines.id
}

output "kms_key_arn" {
  description = "ARN of the project CMK."
  value       = aws_kms_key.main.arn
}

output "kms_key_alias" {
  description = "Alias of the project CMK (alias/mirror-dissonance-{env})."
  value       = aws_kms_alias.main.name
}

output "fp_events_table_name" {
  description = "Name of the false-positive events table."
  value       = aws_dynamodb_table.fp_events.name
}

output "consent_table_name" {
  description = "Name of the consent table."
  value       = aws_dynamodb_table.consent.name
}

output "block_counter_table_name" {
  description = "Name of the block-counter table."
  value       = aws_dynamodb_table.block_counter.name
}

output "nonce_parameter_name" {
  description = "SSM SecureString name of redaction nonce v1, which nonce-bootstrap creates (later versions: /guardian/{env}/redaction_nonce_v{N}); not a Terraform resource."
  value       = local.nonce_parameter_name
}

output "nonce_grace_period_seconds" {
  description = "Seconds both nonce versions stay valid after a rotation."
  value       = var.nonce_grace_period_seconds
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.main.dashboard_name
}

output "alarm_names" {
  description = "Names of the 8 CloudWatch alarms."
  value       = local.alarm_names
}

output "audit_trail_arn" {
  description = "ARN of the CloudTrail audit trail."
  value       = aws_cloudtrail.audit.arn
}

output "backup_vault_name" {
  description = "Name of the AWS Backup vault holding the table backups."
  value       = aws_backup_vault.main.name
}

output "state_bucket_name" {
  description = "S3 bucket of the Terraform state backend (secret TERRAFORM_STATE_BUCKET)."
  value       = "mirror-dissonance-terraform-state"
}
