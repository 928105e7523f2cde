environment               = "production"
region                    = "us-east-1"
kms_deletion_window_days  = 30
pitr_enabled              = true
alert_email               = "ops@phasemirror.example.com"
github_org                = "PhaseMirror"
github_repo               = "Phase-Mirror"
circuit_breaker_threshold = 0
