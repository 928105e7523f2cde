"""Which failures are worth another attempt: the one predicate every task retries by.

botocore's standard retry mode already retries each call; a Prefect task retry is the
step's second chance after those gave up. It is taken only for failures that a later
attempt may not meet again: throttling, a 5xx, no answer at all. A refusal, a
validation failure or a definite AWS answer ("no such table") is never retried: it
would fail the same way, later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mirror_rollout.errors import EndpointError

#: Error codes botocore's standard retry mode treats as throttling or transient.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "TooManyUpdates",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "KMSInternalException",
        "ServiceUnavailable",
    }
)


def error_code(err: BaseException | None) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_transient(exc: BaseException | None) -> bool:
    """An AWS or Prefect call that may succeed later: throttled, a 5xx, or no valid response.

    An error that wraps another (``raise ... from``) is judged by what it wraps when it
    carries no AWS code itself, so a step's own error type does not hide a throttled call;
    a refusal or a bug (nothing transient underneath) is not retried.
    """
    if exc is None:
        return False
    import httpx
    from botocore.exceptions import ConnectionError, HTTPClientError

    if isinstance(exc, ConnectionError | HTTPClientError | EndpointError | httpx.TransportError):
        return True
    code = error_code(exc) or str(getattr(exc, "code", "") or "")
    if code:
        status = int(
            (getattr(exc, "response", None) or {})
            .get("ResponseMetadata", {})
            .get("HTTPStatusCode", 0)
            or 0
        )
        return code in TRANSIENT_CODES or status >= 500
    return is_transient(exc.__cause__)


def failed_with(state: Any) -> BaseException | None:
    """The exception of a failed Prefect state."""
    if isinstance(state.data, BaseException):
        return state.data
    try:
        state.result(raise_on_failure=True)
    except BaseException as raised:
        return raised
    return None


RetryCondition = Callable[[Any, Any, Any], bool]


def retry_when(worth_retrying: Callable[[BaseException | None], bool]) -> RetryCondition:
    """A Prefect ``retry_condition_fn`` from a predicate over the task's exception."""

    def condition(_task: Any, _task_run: Any, state: Any) -> bool:
        return worth_retrying(failed_with(state))

    return condition


#: The default for every task that calls AWS.
retry_if_transient = retry_when(is_transient)
