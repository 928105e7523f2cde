"""Errors from the libraries under the CLI, turned into mirror-rollout's one-line errors."""

from __future__ import annotations

from mirror_rollout.errors import RolloutError


def as_rollout_error(exc: Exception) -> Exception:
    """The library errors a command meets most (no credentials, a server down) as one actionable line."""
    import httpx
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return RolloutError(
            "no AWS credentials found",
            'for the sandbox run `eval "$(mirror-rollout sandbox up)"`; for AWS configure a profile or role',
        )
    if isinstance(exc, EndpointConnectionError):
        return RolloutError(
            f"cannot reach the AWS endpoint {exc.kwargs.get('endpoint_url', '')}",
            "start the sandbox (mirror-rollout sandbox up) or check AWS_ENDPOINT_URL",
        )
    if isinstance(exc, httpx.TransportError):
        from prefect.settings import PREFECT_API_URL

        return RolloutError(
            f"cannot reach the Prefect API at {PREFECT_API_URL.value()} ({type(exc).__name__})",
            "start the sandbox (mirror-rollout sandbox up) or set PREFECT_API_URL",
        )
    return exc
