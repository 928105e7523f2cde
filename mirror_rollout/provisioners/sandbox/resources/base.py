"""How the sandbox engine creates, updates and deletes one resource type through boto3."""

from __future__ import annotations

from typing import Any, ClassVar

from mirror_rollout.aws import AwsClients


class NotProvisionable(Exception):
    """The sandbox (moto) cannot provision this resource type; the plan keeps it visible."""


class ResourceHandler:
    """One managed resource type.

    ``config`` is the resource's evaluated arguments in Terraform state shape
    (nested blocks are lists of dicts), all values known. ``create``/``update``
    return the full state attributes: the configured arguments exactly as given
    (so that a re-plan compares equal) plus computed ones (id, arn, ...).
    """

    type: ClassVar[str]
    #: Arguments whose change forces a replacement (delete + create).
    force_new: ClassVar[frozenset[str]] = frozenset()
    #: False when moto cannot provision the type at all.
    provisionable: ClassVar[bool] = True
    #: Why not, shown in the plan artifact and the checklist.
    not_provisionable_reason: ClassVar[str] = ""

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        raise NotImplementedError

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        raise NotImplementedError


HANDLERS: dict[str, type[ResourceHandler]] = {}


def handler(cls: type[ResourceHandler]) -> type[ResourceHandler]:
    HANDLERS[cls.type] = cls
    return cls


class DataSource:
    """One data source type (read-only)."""

    type: ClassVar[str]

    def read(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


DATA_SOURCES: dict[str, type[DataSource]] = {}


def data_source(cls: type[DataSource]) -> type[DataSource]:
    DATA_SOURCES[cls.type] = cls
    return cls
