"""What a run published to the Prefect API, as the tests read it back."""

from __future__ import annotations


def latest_artifact(key: str) -> str:
    """The description and data of the newest artifact ``key`` (asserted to exist)."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key}"
    return f"{found[0].description}\n{found[0].data}"
