"""boto3 clients for the rollout: one session, standard retries, endpoints from the environment.

Endpoints are never chosen here: boto3 reads AWS_ENDPOINT_URL (the sandbox
exports it) exactly as it reads credentials, so the same code serves moto and AWS.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from functools import cached_property
from typing import Any

DEFAULT_REGION = "us-east-1"
COUNTER_ID = "mirror_rollout.aws.calls"
#: Process-wide listeners told of every API call ("service.Operation"); benchmarks
#: use them to attribute calls to the task that made them.
CALL_LISTENERS: list[Callable[[str], None]] = []


def retry_config(
    max_attempts: int = 5, connect_timeout: float = 5, read_timeout: float = 30
) -> Any:
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


class AwsClients:
    """Lazily created, cached boto3 clients for one region."""

    def __init__(self, region: str | None = None, max_attempts: int = 5):
        self.region = (
            region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or DEFAULT_REGION
        )
        self._max_attempts = max_attempts
        self._clients: dict[str, Any] = {}
        #: API calls made through these clients, "service.Operation" -> count (botocore events).
        self.calls: Counter[str] = Counter()

    @cached_property
    def session(self) -> Any:
        import boto3

        return boto3.session.Session(region_name=self.region)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            client = self.session.client(service, config=retry_config(self._max_attempts))
            # Once per operation (not per HTTP retry): "service.Operation" -> n.
            client.meta.events.register("before-call", self._count, unique_id=COUNTER_ID)
            self._clients[service] = client
        return self._clients[service]

    def _count(self, event_name: str, **_: Any) -> None:
        operation = event_name.split(".", 1)[1]
        self.calls[operation] += 1
        for listener in CALL_LISTENERS:
            listener(operation)

    __getitem__ = client
