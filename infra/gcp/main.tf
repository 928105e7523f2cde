# GCP equivalent of infra/terraform: Firestore (PITR), Secret Manager nonce,
# Cloud Storage baselines, Cloud KMS with rotation, and Workload Identity
# Federation restricted to one GitHub repository.

terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 5.0"
    }
  }

  # Each workspace (staging, production) keeps its state under
  # infra/gcp/<workspace>.tfstate; the bucket is bootstrapped once, by hand.
  backend "gcs" {
    bucket = "mirror-dissonance-terraform-state"
    prefix = "infra/gcp"
  }
}

provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = local.labels
}

data "google_project" "current" {
  project_id = var.project_id
}

locals {
  prefix = "mirror-dissonance-${var.environment}"

  labels = merge({
    project     = "mirror-dissonance"
    environment = var.environment
    managed-by  = "terraform"
  }, var.labels)

  repository = "${var.github_org}/${var.github_repo}"
}

resource "google_project_service" "apis" {
  for_each = toset([
    "cloudkms.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    "sts.googleapis.com",
  ])

  project            = var.project_id
  service            = each.key
  disable_on_destroy = false
}

# ---------------------------------------------------------------------------
# Cloud KMS
# ---------------------------------------------------------------------------

resource "google_kms_key_ring" "main" {
  name     = local.prefix
  location = var.region

  depends_on = [google_project_service.apis]
}

# prevent_destroy would suit production, but lifecycle arguments must be
# literals and cannot differ per environment; destroying this key is guarded by
# the plan review gate and the scheduled-destruction window instead.
resource "google_kms_crypto_key" "main" {
  # checkov:skip=CKV_GCP_82:prevent_destroy must be a literal and cannot differ per environment; see the comment above.
  name                       = local.prefix
  key_ring                   = google_kms_key_ring.main.id
  purpose                    = "ENCRYPT_DECRYPT"
  rotation_period            = "7776000s"
  destroy_scheduled_duration = "${var.kms_deletion_window_days * 86400}s"
}

# The Cloud Storage and Secret Manager service agents encrypt with the key on
# the project's behalf. The Secret Manager agent must exist before apply:
# gcloud beta services identity create --service=secretmanager.googleapis.com
resource "google_kms_crypto_key_iam_member" "service_agents" {
  for_each = toset(["gs-project-accounts", "gcp-sa-secretmanager"])

  crypto_key_id = google_kms_crypto_key.main.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.current.number}@${each.key}.iam.gserviceaccount.com"
}

# ---------------------------------------------------------------------------
# Firestore
# ---------------------------------------------------------------------------

# Encrypted with Google-managed keys (scanner CMEK rules): Firestore CMEK can
# only be chosen when a database is created and only in some locations, and
# DESIGN.md asks for CMEK on the bucket and the secret; PITR is the control here.
resource "google_firestore_database" "main" {
  project                           = var.project_id
  name                              = var.firestore_database_name
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.environment == "production" ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.environment == "production" ? "ABANDON" : "DELETE"

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------------------
# Secret Manager: the redaction nonce. Terraform creates the secret only; the
# nonce-rotation flow adds versions, so no value ever sits in Terraform state.
# ---------------------------------------------------------------------------

resource "google_secret_manager_secret" "redaction_nonce" {
  secret_id = "redaction-nonce-${var.environment}"

  replication {
    user_managed {
      replicas {
        location = var.region

        customer_managed_encryption {
          kms_key_name = google_kms_crypto_key.main.id
        }
      }
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.service_agents]
}

# ---------------------------------------------------------------------------
# Cloud Storage: baselines
# ---------------------------------------------------------------------------

resource "google_storage_bucket" "baselines" {
  # checkov:skip=CKV_GCP_62:Cloud Audit Logs (Data Access) record object access; a usage-log bucket is not part of the phase plan.
  name                        = "${local.prefix}-baselines"
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  force_destroy               = false
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.main.id
  }

  depends_on = [google_kms_crypto_key_iam_member.service_agents]
}

# ---------------------------------------------------------------------------
# Workload Identity Federation for GitHub Actions
# ---------------------------------------------------------------------------

resource "google_iam_workload_identity_pool" "github" {
  workload_identity_pool_id = "md-${var.environment}-github"
  display_name              = "GitHub Actions (${var.environment})"
  description               = "GitHub Actions OIDC for the Mirror Dissonance ${var.environment} pipeline"

  depends_on = [google_project_service.apis]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  # checkov:skip=CKV_GCP_125:The condition pins assertion.repository (Google's documented restriction) rather than one exact sub claim.
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github-actions"
  display_name                       = "GitHub Actions"

  attribute_mapping = {
    "google.subject"             = "assertion.sub"
    "attribute.repository"       = "assertion.repository"
    "attribute.repository_owner" = "assertion.repository_owner"
    "attribute.ref"              = "assertion.ref"
    "attribute.actor"            = "assertion.actor"
  }

  # Tokens from any other repository are rejected at the provider.
  attribute_condition = "assertion.repository == \"${local.repository}\""

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account" "deploy" {
  account_id   = "md-${var.environment}-github-deploy"
  display_name = "Mirror Dissonance ${var.environment} GitHub deploy"
  description  = "Impersonated by GitHub Actions in ${local.repository} through Workload Identity Federation"
}

# Only principals whose token names the one repository may impersonate it.
resource "google_service_account_iam_member" "github_wif" {
  service_account_id = google_service_account.deploy.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.repository/${local.repository}"
}

# Least privilege for the pipeline: the nonce secret, the baselines objects and
# this environment's Firestore database only.
resource "google_secret_manager_secret_iam_member" "deploy_nonce_accessor" {
  secret_id = google_secret_manager_secret.redaction_nonce.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.deploy.email}"
}

resource "google_secret_manager_secret_iam_member" "deploy_nonce_versions" {
  secret_id = google_secret_manager_secret.redaction_nonce.id
  role      = "roles/secretmanager.secretVersionManager"
  member    = "serviceAccount:${google_service_account.deploy.email}"
}

resource "google_storage_bucket_iam_member" "deploy_baselines" {
  bucket = google_storage_bucket.baselines.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.deploy.email}"
}

resource "google_project_iam_member" "deploy_firestore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.deploy.email}"

  condition {
    title       = "only-${var.environment}-database"
    description = "Limits Firestore access to this environment's database"
    expression  = "resource.name.startsWith(\"projects/${var.project_id}/databases/${var.firestore_database_name}\")"
  }
}

# ---------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------

output "baselines_bucket_name" {
  description = "Name of the versioned, CMEK-encrypted baselines bucket."
  value       = google_storage_bucket.baselines.name
}

output "kms_crypto_key_id" {
  description = "Id of the project Cloud KMS key (projects/.../cryptoKeys/...)."
  value       = google_kms_crypto_key.main.id
}

output "nonce_secret_id" {
  description = "Id of the Secret Manager secret holding the redaction nonce versions."
  value       = google_secret_manager_secret.redaction_nonce.id
}

output "workload_identity_provider_name" {
  description = "Full resource name of the WIF provider (the workload_identity_provider input of google-github-actions/auth)."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "deploy_service_account_email" {
  description = "E-mail of the service account GitHub Actions impersonates."
  value       = google_service_account.deploy.email
}

output "firestore_database_name" {
  description = "Firestore database id."
  value       = google_firestore_database.main.name
}
