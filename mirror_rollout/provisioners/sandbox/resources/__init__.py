"""Resource handlers and data sources of the sandbox engine, one module per AWS service.

Importing this package registers every handler in ``HANDLERS`` and every data
source in ``DATA_SOURCES`` (see base.py for the contract).

Tags: a handler applies ``tags_all`` (the provider's default_tags merged with the
resource's tags, when the engine supplies it) overlaid with ``tags``.

Besides the types with ``provisionable = False``, a provisionable type's
create/update raises NotProvisionable where moto lacks one operation or one case
(verified against moto 5.2.5): aws_backup_plan updates (no UpdateBackupPlan),
aws_iam_openid_connect_provider client-id changes (no Add/RemoveClientID),
aws_iam_role_policy_attachment of an AWS-managed policy moto does not load, and
aws_s3_bucket_logging whose target bucket policy moto's check cannot evaluate.
"""

from __future__ import annotations

from . import backup, cloudtrail, cloudwatch, data, dynamodb, iam, kms, s3, sns, ssm
from .base import (
    DATA_SOURCES,
    HANDLERS,
    DataSource,
    NotProvisionable,
    ResourceHandler,
    data_source,
    handler,
)

__all__ = [
    "DATA_SOURCES",
    "HANDLERS",
    "DataSource",
    "NotProvisionable",
    "ResourceHandler",
    "backup",
    "cloudtrail",
    "cloudwatch",
    "data",
    "data_source",
    "dynamodb",
    "handler",
    "iam",
    "kms",
    "s3",
    "sns",
    "ssm",
]
