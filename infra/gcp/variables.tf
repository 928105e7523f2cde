variable "project_id" {
  description = "GCP project that holds this environment's resources."
  type        = string
}

variable "region" {
  description = "GCP region of the key ring, the nonce secret replica and the baselines bucket (they must share a location for CMEK)."
  type        = string
  default     = "us-central1"
}

variable "environment" {
  description = "Deployment environment. Every resource name is derived from it."
  type        = string

  validation {
    condition     = var.environment == "staging" || var.environment == "production"
    error_message = "The environment must be \"staging\" or \"production\"."
  }
}

variable "github_org" {
  description = "GitHub organisation whose repository may impersonate the deploy service account."
  type        = string
}

variable "github_repo" {
  description = "GitHub repository (without the organisation) that may impersonate the deploy service account."
  type        = string
}

variable "kms_deletion_window_days" {
  description = "Days a destroyed Cloud KMS key version stays scheduled for destruction (7 for staging, 30 for production)."
  type        = number

  validation {
    condition     = var.kms_deletion_window_days >= 1 && var.kms_deletion_window_days <= 120
    error_message = "Cloud KMS accepts a scheduled-destruction period between 1 and 120 days."
  }
}

variable "firestore_location" {
  description = "Firestore location (multi-region nam5 by default)."
  type        = string
  default     = "nam5"
}

variable "firestore_database_name" {
  description = "Firestore database id; \"(default)\" when each environment has its own project."
  type        = string
  default     = "(default)"
}

variable "labels" {
  description = "Extra labels merged into the provider's default labels."
  type        = map(string)
  default     = {}
}
