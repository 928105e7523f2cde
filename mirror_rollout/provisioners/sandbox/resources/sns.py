"""aws_sns_topic, aws_sns_topic_subscription."""

from __future__ import annotations

from typing import Any

from mirror_rollout.aws import AwsClients

from .base import ResourceHandler, handler
from .common import (
    arn_account,
    changed,
    given,
    ignoring,
    state,
    tag_changes,
    tag_list,
    tags_of,
    unique_name,
)

#: Terraform argument -> SNS topic attribute.
TOPIC_ATTRIBUTES = {
    "display_name": "DisplayName",
    "policy": "Policy",
    "delivery_policy": "DeliveryPolicy",
    "kms_master_key_id": "KmsMasterKeyId",
    "fifo_topic": "FifoTopic",
    "content_based_deduplication": "ContentBasedDeduplication",
    "signature_version": "SignatureVersion",
    "tracing_config": "TracingConfig",
    "archive_policy": "ArchivePolicy",
    "application_success_feedback_role_arn": "ApplicationSuccessFeedbackRoleArn",
    "application_success_feedback_sample_rate": "ApplicationSuccessFeedbackSampleRate",
    "application_failure_feedback_role_arn": "ApplicationFailureFeedbackRoleArn",
    "http_success_feedback_role_arn": "HTTPSuccessFeedbackRoleArn",
    "http_success_feedback_sample_rate": "HTTPSuccessFeedbackSampleRate",
    "http_failure_feedback_role_arn": "HTTPFailureFeedbackRoleArn",
    "lambda_success_feedback_role_arn": "LambdaSuccessFeedbackRoleArn",
    "lambda_success_feedback_sample_rate": "LambdaSuccessFeedbackSampleRate",
    "lambda_failure_feedback_role_arn": "LambdaFailureFeedbackRoleArn",
    "sqs_success_feedback_role_arn": "SQSSuccessFeedbackRoleArn",
    "sqs_success_feedback_sample_rate": "SQSSuccessFeedbackSampleRate",
    "sqs_failure_feedback_role_arn": "SQSFailureFeedbackRoleArn",
    "firehose_success_feedback_role_arn": "FirehoseSuccessFeedbackRoleArn",
    "firehose_success_feedback_sample_rate": "FirehoseSuccessFeedbackSampleRate",
    "firehose_failure_feedback_role_arn": "FirehoseFailureFeedbackRoleArn",
}

#: Terraform argument -> SNS subscription attribute.
SUBSCRIPTION_ATTRIBUTES = {
    "raw_message_delivery": "RawMessageDelivery",
    "filter_policy": "FilterPolicy",
    "filter_policy_scope": "FilterPolicyScope",
    "delivery_policy": "DeliveryPolicy",
    "redrive_policy": "RedrivePolicy",
    "replay_policy": "ReplayPolicy",
    "subscription_role_arn": "SubscriptionRoleArn",
}


def attribute_value(value: Any) -> str:
    """SNS attributes are strings: booleans as true/false, numbers as digits."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _attributes(config: dict[str, Any], mapping: dict[str, str]) -> dict[str, str]:
    attrs = {}
    for arg, attr in mapping.items():
        value = config.get(arg)
        if given(value) and value is not False:
            attrs[attr] = attribute_value(value)
    return attrs


def topic_name(config: dict[str, Any]) -> str:
    if given(config.get("name")):
        return str(config["name"])
    name = unique_name(config.get("name_prefix"))
    return f"{name}.fifo" if config.get("fifo_topic") else name


def topic_request(config: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    req: dict[str, Any] = {"Name": name or topic_name(config)}
    attrs = _attributes(config, TOPIC_ATTRIBUTES)
    if attrs:
        req["Attributes"] = attrs
    tags = tags_of(config)
    if tags:
        req["Tags"] = tag_list(tags)
    return req


@handler
class SnsTopic(ResourceHandler):
    type = "aws_sns_topic"
    force_new = frozenset({"name", "name_prefix", "fifo_topic"})

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        name = topic_name(config)
        arn = aws.client("sns").create_topic(**topic_request(config, name))["TopicArn"]
        return state(config, **_topic_computed(arn, name))

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        sns = aws.client("sns")
        arn = prior["arn"]
        for arg, attr in TOPIC_ATTRIBUTES.items():
            if arg != "fifo_topic" and changed(prior, config, arg):
                value = config.get(arg)
                sns.set_topic_attributes(
                    TopicArn=arn,
                    AttributeName=attr,
                    AttributeValue=attribute_value(value) if given(value) else "",
                )
        upsert, remove = tag_changes(prior, config)
        if remove:
            sns.untag_resource(ResourceArn=arn, TagKeys=remove)
        if upsert:
            sns.tag_resource(ResourceArn=arn, Tags=tag_list(upsert))
        return state(config, **_topic_computed(arn, arn.rsplit(":", 1)[-1]))

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        with ignoring("NotFound", "NotFoundException"):
            aws.client("sns").delete_topic(TopicArn=prior["arn"])


def _topic_computed(arn: str, name: str) -> dict[str, Any]:
    return {"id": arn, "arn": arn, "name": name, "owner": arn_account(arn)}


def subscription_request(config: dict[str, Any]) -> dict[str, Any]:
    req: dict[str, Any] = {
        "TopicArn": config["topic_arn"],
        "Protocol": config["protocol"],
        "Endpoint": config["endpoint"],
        # Without it, an unconfirmed (e-mail) subscription answers "pending confirmation".
        "ReturnSubscriptionArn": True,
    }
    attrs = _attributes(config, SUBSCRIPTION_ATTRIBUTES)
    if attrs:
        req["Attributes"] = attrs
    return req


@handler
class SnsTopicSubscription(ResourceHandler):
    type = "aws_sns_topic_subscription"
    force_new = frozenset(
        {
            "topic_arn",
            "protocol",
            "endpoint",
            "endpoint_auto_confirms",
            "confirmation_timeout_in_minutes",
        }
    )

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        # E-mail subscriptions stay pending confirmation (moto does not confirm them either).
        arn = aws.client("sns").subscribe(**subscription_request(config))["SubscriptionArn"]
        return state(config, **self._computed(aws, arn, config))

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        sns = aws.client("sns")
        arn = prior["arn"]
        for arg, attr in SUBSCRIPTION_ATTRIBUTES.items():
            if changed(prior, config, arg):
                value = config.get(arg)
                sns.set_subscription_attributes(
                    SubscriptionArn=arn,
                    AttributeName=attr,
                    AttributeValue=attribute_value(value) if given(value) else "",
                )
        return state(config, **self._computed(aws, arn, config))

    @staticmethod
    def _computed(aws: AwsClients, arn: str, config: dict[str, Any]) -> dict[str, Any]:
        pending = config["protocol"] in ("email", "email-json", "http", "https")
        with ignoring("NotFound", "NotFoundException", "InvalidParameter"):
            attrs = aws.client("sns").get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
            pending = attrs.get("PendingConfirmation", attribute_value(pending)) == "true"
        return {
            "id": arn,
            "arn": arn,
            "owner_id": arn_account(arn),
            "pending_confirmation": pending,
        }

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        # AWS refuses to unsubscribe a subscription still pending confirmation
        # (InvalidParameter); it expires by itself, as the provider notes.
        with ignoring("NotFound", "NotFoundException", "InvalidParameter"):
            aws.client("sns").unsubscribe(SubscriptionArn=prior["arn"])
