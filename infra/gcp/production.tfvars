project_id               = "phase-mirror-production"
region                   = "us-central1"
environment              = "production"
github_org               = "PhaseMirror"
github_repo              = "Phase-Mirror"
kms_deletion_window_days = 30
