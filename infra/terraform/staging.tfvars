environment               = "staging"
region                    = "us-east-1"
kms_deletion_window_days  = 7
pitr_enabled              = true
alert_email               = ""
github_org                = "PhaseMirror"
github_repo               = "Phase-Mirror"
circuit_breaker_threshold = 0
