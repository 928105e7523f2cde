"""One module per resource family; importing this package registers every guardrail."""

from tasks.guardrails.families import (  # noqa: F401  (imported to register their checks)
    alarms,
    audit,
    backup,
    configuration,
    dashboard,
    dynamodb,
    gcp,
    iam_oidc,
    kms,
    nonce,
    restore_drill,
    s3,
)
