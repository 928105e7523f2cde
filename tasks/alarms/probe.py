"""A temporary SQS queue subscribed to the ops topic, removed again whatever happens."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from mirror_rollout.results import Evidence
from mirror_rollout.retries import error_code
from tasks.common import now

PROBE_QUEUE_PREFIX = "mirror-rollout-probe-"
#: Long polls never exceed SQS's 20 s maximum (below the clients' 30 s read timeout).
MAX_WAIT_SECONDS = 20
#: Error codes of a queue that does not exist (query-compatible and JSON SQS).
GONE_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
GONE_SUBSCRIPTION = ("NotFound",)


def probe_queue_name(environment: str, probe_id: str) -> str:
    return f"{PROBE_QUEUE_PREFIX}{environment}-{probe_id}"


def queue_policy(queue_arn: str, topic_arn: str) -> str:
    """Only the ops topic may send to the probe queue."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "OpsTopicToProbeQueue",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )


class ProbeQueue:
    """Create with ``open``; ``receive`` collects bodies; ``close`` always (call it in finally)."""

    def __init__(self, sqs: Any, sns: Any, topic_arn: str, environment: str, probe_id: str):
        self.sqs, self.sns = sqs, sns
        self.topic_arn = topic_arn
        self.name = probe_queue_name(environment, probe_id)
        self.probe_id = probe_id
        self.queue_url: str | None = None
        self.queue_arn: str | None = None
        self.subscription_arn: str | None = None
        self.bodies: list[str] = []
        self._seen: set[str] = set()
        self._opening = False  # CreateQueue was sent (its response may have been lost)

    def open(self) -> Evidence:
        """Queue + policy + subscription; raises the API error if any step fails."""
        self._opening = True
        self.queue_url = self.sqs.create_queue(
            QueueName=self.name,
            Attributes={"MessageRetentionPeriod": "900", "ReceiveMessageWaitTimeSeconds": "0"},
            tags={"mirror-rollout": "probe", "probe-id": self.probe_id},
        )["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.sqs.set_queue_attributes(
            QueueUrl=self.queue_url,
            Attributes={"Policy": queue_policy(self.queue_arn, self.topic_arn)},
        )
        self.subscription_arn = self.sns.subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=self.queue_arn,
            Attributes={"RawMessageDelivery": "false"},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return Evidence(
            source=f"sns:Subscribe {self.topic_arn}",
            observed={
                "queue": self.queue_arn,
                "subscription": self.subscription_arn,
                "probe_id": self.probe_id,
            },
        )

    def receive(
        self, done: Callable[[list[str]], bool], timeout_seconds: float
    ) -> tuple[list[str], float]:
        """Long-poll until ``done(bodies)`` or the deadline; returns (all bodies so far, seconds waited)."""
        started = time.monotonic()
        deadline = started + timeout_seconds
        while not done(self.bodies):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=max(1, min(MAX_WAIT_SECONDS, int(remaining))),
                VisibilityTimeout=600,
            )
            for message in response.get("Messages", []):
                if message["MessageId"] not in self._seen:
                    self._seen.add(message["MessageId"])
                    self.bodies.append(message["Body"])
        return self.bodies, time.monotonic() - started

    def close(self) -> Evidence:
        """Unsubscribe and delete the queue; every step is attempted, errors are collected.

        A queue or subscription whose creating call lost its response (so its URL/ARN
        is unknown here) is found by name / endpoint and removed too.
        """
        errors: dict[str, str] = {}
        if self._opening and self.queue_url is None:
            _cleanup_step(errors, "get_queue_url", GONE_QUEUE, self._find_queue_url)
        if self.queue_arn and self.subscription_arn is None:
            _cleanup_step(errors, "find_subscription", GONE_SUBSCRIPTION, self._find_subscription)
        if self.subscription_arn and self.subscription_arn != "PendingConfirmation":
            _cleanup_step(
                errors,
                "unsubscribe",
                GONE_SUBSCRIPTION,
                lambda: self.sns.unsubscribe(SubscriptionArn=self.subscription_arn),
            )
        if self.queue_url:
            _cleanup_step(
                errors,
                "delete_queue",
                GONE_QUEUE,
                lambda: self.sqs.delete_queue(QueueUrl=self.queue_url),
            )
        return Evidence(
            source=f"sqs:DeleteQueue {self.name}",
            observed={
                "queue_url": self.queue_url,
                "subscription": self.subscription_arn,
                "errors": errors,
            },
            at=now(),
        )

    def _find_queue_url(self) -> None:
        self.queue_url = self.sqs.get_queue_url(QueueName=self.name)["QueueUrl"]

    def _find_subscription(self) -> None:
        self.subscription_arn = next(
            (
                s["SubscriptionArn"]
                for page in self.sns.get_paginator("list_subscriptions_by_topic").paginate(
                    TopicArn=self.topic_arn
                )
                for s in page.get("Subscriptions", [])
                if s.get("Endpoint") == self.queue_arn
            ),
            None,
        )


def _cleanup_step(
    errors: dict[str, str], step: str, gone: tuple[str, ...], call: Callable[[], Any]
) -> None:
    """One cleanup call; its error is kept under ``step`` unless it says the thing is gone already."""
    try:
        call()
    except Exception as exc:
        if error_code(exc) not in gone:
            errors[step] = f"{error_code(exc) or type(exc).__name__}: {exc}"
