"""GCP checks: the Cloud Storage baselines bucket (live), other infra/gcp services (SKIPPED)."""
