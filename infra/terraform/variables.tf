variable "environment" {
  description = "Deployment environment. Every resource name is derived from it (mirror-dissonance-{environment}-*)."
  type        = string

  validation {
    condition     = var.environment == "staging" || var.environment == "production"
    error_message = "The environment must be \"staging\" or \"production\"."
  }
}

variable "region" {
  description = "AWS region for every regional resource of the stack (the state backend itself stays in us-east-1, see backend.tf)."
  type        = string
  default     = "us-east-1"

  validation {
    # An explicit allow-list of AWS region names stands in for a regex: the
    # sandbox engine evaluates only a small function set (no regex()/can()).
    # Add a region here when the project starts using it.
    condition = lookup({ for r in [
      "us-east-1", "us-east-2", "us-west-1", "us-west-2",
      "ca-central-1", "ca-west-1", "mx-central-1", "sa-east-1",
      "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3",
      "eu-south-1", "eu-south-2", "eu-north-1",
      "ap-east-1", "ap-east-2", "ap-south-1", "ap-south-2",
      "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
      "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
      "ap-southeast-5", "ap-southeast-7",
      "af-south-1", "il-central-1", "me-south-1", "me-central-1",
      "us-gov-east-1", "us-gov-west-1",
    ] : r => true }, var.region, false)
    error_message = "The region must be an AWS region name such as \"us-east-1\" (see the allow-list in variables.tf)."
  }
}

variable "pitr_enabled" {
  description = "Enable DynamoDB point-in-time recovery on the three tables. Must stay true for staging and production (L0 invariant)."
  type        = bool
  default     = true
}

variable "circuit_breaker_threshold" {
  description = "Alarm 8 (circuit-breaker-triggered) fires when CircuitBreakerTriggers is greater than this value in one period."
  type        = number
  default     = 0

  validation {
    condition     = var.circuit_breaker_threshold >= 0
    error_message = "The circuit breaker threshold must be 0 or more."
  }
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the project CMK is deleted once scheduled for deletion (7 for staging, 30 for production)."
  type        = number

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "The KMS deletion window must be between 7 and 30 days."
  }
}

variable "alert_email" {
  description = "E-mail address subscribed to the ops-alerts SNS topic. Empty means no subscription is created."
  type        = string
  default     = ""
}

variable "github_org" {
  description = "GitHub organisation whose repository may assume the deploy role through OIDC."
  type        = string
}

variable "github_repo" {
  description = "GitHub repository (without the organisation) that may assume the deploy role through OIDC."
  type        = string
}

variable "nonce_grace_period_seconds" {
  description = "How long the previous redaction nonce version stays valid after a rotation, in seconds (read by the nonce-rotation flow)."
  type        = number
  default     = 3600

  validation {
    condition     = var.nonce_grace_period_seconds >= 0
    error_message = "The nonce grace period must be 0 or more seconds."
  }
}

variable "throttle_threshold" {
  description = "Alarms 1-6 fire when a table's Read/WriteThrottleEvents sum is greater than this value in one period."
  type        = number
  default     = 10
}

variable "ssm_failure_threshold" {
  description = "Alarm 7 (ssm-parameter-failures) fires when SSMParameterFailures is greater than this value in one period."
  type        = number
  default     = 5
}

variable "alarm_period_seconds" {
  description = "Evaluation period of every CloudWatch alarm, in seconds."
  type        = number
  default     = 300

  validation {
    condition     = var.alarm_period_seconds >= 60
    error_message = "The alarm period must be at least 60 seconds."
  }
}

variable "tags" {
  description = "Extra tags merged into the provider's default tags (Project, Environment, ManagedBy)."
  type        = map(string)
  default     = {}
}
