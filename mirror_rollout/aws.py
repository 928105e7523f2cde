"""boto3 clients for the rollout: one session, standard retries, endpoints from the environment.

Endpoints are never chosen here: boto3 reads AWS_ENDPOINT_URL (the sandbox
exports it) exactly as it reads credentials, so the same code serves moto and AWS.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mirror_rollout.target import DEFAULT_REGION

if TYPE_CHECKING:
    from mirror_rollout.target import RolloutTarget

#: Hosts that mean "the local sandbox", never a real AWS endpoint.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
COUNTER_ID = "mirror_rollout.aws.calls"
UNREACHABLE_ID = "mirror_rollout.aws.unreachable"
ACCOUNT_ID = "mirror_rollout.aws.sandbox_account"
MOTO_ACCOUNT_HEADER = "x-moto-account-id"
#: The account moto uses when a request names none: staging's, and the state backend's.
SANDBOX_DEFAULT_ACCOUNT = "123456789012"
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


def sandbox_account(environment: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The moto account of ``environment`` when talking to the local sandbox, else None.

    As in a real organisation, each environment lives in an account of its own (the
    GitHub OIDC provider, for one, exists once per account); staging and the state
    backend stay in moto's default account. Real AWS accounts come from credentials.
    """
    env = os.environ if env is None else env
    host = urlparse(env.get("AWS_ENDPOINT_URL", "")).hostname
    if not environment or environment == "staging" or host not in LOOPBACK:
        return None
    digest = int(hashlib.sha256(environment.encode()).hexdigest(), 16)
    return f"{digest % 10**12:012d}"


_LOADER_LOCK = threading.Lock()
_loader: Any = None


def new_session(region: str | None = None, **kwargs: Any) -> Any:
    """A boto3 Session that shares this process's botocore data loader.

    The loader caches the parsed service models; a Session of its own would parse
    them again for every task (a third of a second of CPU per task, seconds when the
    validations start together). Sessions themselves stay per caller: they are not
    thread-safe, and each resolves credentials and endpoints from the environment.
    """
    import boto3
    import botocore.session

    global _loader
    with _LOADER_LOCK:
        core = botocore.session.Session()
        if _loader is None:
            _loader = core.get_component("data_loader")
        else:
            core.register_component("data_loader", _loader)
        session = boto3.session.Session(botocore_session=core, region_name=region, **kwargs)
        # boto3 appends its own data path to the loader on every Session; keep it once.
        _loader.search_paths[:] = list(dict.fromkeys(_loader.search_paths))
    return session


class AwsClients:
    """Lazily created, cached boto3 clients for one region."""

    def __init__(
        self, region: str | None = None, max_attempts: int = 5, environment: str | None = None
    ):
        #: On the sandbox, the moto account that holds ``environment`` (None: the default one).
        self.sandbox_account = sandbox_account(environment)
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

    @classmethod
    def of(cls, target: RolloutTarget, max_attempts: int = 5) -> AwsClients:
        """The clients of a rollout target: its region, and its account on the sandbox."""
        clients = cls(target.region, max_attempts)
        clients.sandbox_account = target.account
        return clients

    @cached_property
    def session(self) -> Any:
        return new_session(self.region)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            client = self.session.client(service, config=retry_config(self._max_attempts))
            # Once per operation (not per HTTP retry): "service.Operation" -> n.
            client.meta.events.register("before-call", self._count, unique_id=COUNTER_ID)
            client.meta.events.register(
                "after-call-error", self._name_unreachable, unique_id=UNREACHABLE_ID
            )
            if self.sandbox_account:
                client.meta.events.register(
                    "before-sign", self._to_sandbox_account, unique_id=ACCOUNT_ID
                )
            self._clients[service] = client
        return self._clients[service]

    def _to_sandbox_account(self, request: Any, **_: Any) -> None:
        request.headers[MOTO_ACCOUNT_HEADER] = self.sandbox_account

    def _count(self, event_name: str, **_: Any) -> None:
        operation = event_name.split(".", 1)[1]
        self.calls[operation] += 1
        for listener in CALL_LISTENERS:
            listener(operation)

    def _name_unreachable(self, event_name: str, exception: BaseException, **_: Any) -> None:
        """Give "no valid response" errors the service and operation they came from.

        botocore's connection errors and timeouts name only the endpoint URL; after the
        standard retries gave up, the message says which call could not get through.
        """
        from botocore.exceptions import ConnectionError, HTTPClientError

        if not isinstance(exception, ConnectionError | HTTPClientError):
            return
        if len(exception.args) != 1 or getattr(exception, "_named", False):
            return
        service, operation = [*event_name.split(".", 2), "?", "?"][1:3]
        exception.args = (
            f"AWS {service} {operation}: no valid response after up to "
            f"{self._max_attempts + 1} attempts (unreachable or not answering): {exception.args[0]}",
        )
        exception._named = True

    __getitem__ = client
