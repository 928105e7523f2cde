project_id               = "phase-mirror-staging"
region                   = "us-central1"
environment              = "staging"
github_org               = "PhaseMirror"
github_repo              = "Phase-Mirror"
kms_deletion_window_days = 7
