"""After a full rollout, no nonce value is anywhere but SSM."""

from __future__ import annotations

import uuid
from pathlib import Path

from mirror_rollout import contract
from mirror_rollout.reviewer_keys import read_key
from mirror_rollout.sandbox import auto_reviewer_key_path
from tasks.approval.reviewers import SANDBOX_REVIEWERS_ENV
from tests.applied import nonce_values
from tests.aws_inventory import client
from tests.rollout_run import approve_signed, sandbox_key


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def test_no_nonce_value_leaves_ssm(rollout, sandbox, tmp_path, capfd):
    run = rollout(approve_signed(sandbox_key(1)))  # signed: the key is scanned for below
    assert run.state.is_completed(), run.state.message
    values = nonce_values("staging")
    assert values and all(
        contract.NONCE_VALUE.match(v) for v in values
    )  # bootstrapped, real nonces

    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    run_id = uuid.UUID(run.flow_run_id)
    with get_client(sync_client=True) as api:
        logs = api.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        artifacts = api.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
        flow_run = api.read_flow_run(run_id)
        task_runs = api.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    assert len(logs) > 20 and len(artifacts) > 10 and len(task_runs) > 10  # the scan has material

    places: dict[str, str] = {
        "prefect logs": "\n".join(log.message for log in logs),
        "artifacts": "\n".join(f"{a.key} {a.description} {a.data}" for a in artifacts),
        "flow-run parameters": repr(flow_run.parameters),
        "flow result": repr(run.state.result()),
        "task-run states": "\n".join(
            f"{t.name} {t.state.message if t.state else ''} {t.state.data if t.state else ''}"
            for t in task_runs
        ),
        "terraform state": client("s3")
        .get_object(Bucket=contract.STATE_BUCKET, Key="env/staging/infra/terraform.tfstate")["Body"]
        .read()
        .decode(),
        "captured output": "".join(capfd.readouterr()),
    }
    for path in files_under(tmp_path / "out"):
        places[f"output file {path.name}"] = path.read_bytes().decode("utf-8", "replace")
    prefect_home = Path(sandbox.config.prefect_home)
    for path in files_under(prefect_home):
        places[f"prefect server file {path.name}"] = path.read_bytes().decode("latin-1")
    assert any(name.startswith("prefect server file prefect.db") for name in places)
    # Result storage of this (client) process, where persisted task results would land.
    from prefect.settings import get_current_settings

    storage = Path(get_current_settings().results.local_storage_path).expanduser()
    for path in files_under(storage) if storage.is_dir() else []:
        places[f"result storage {path.name}"] = path.read_bytes().decode("latin-1")

    # The sandbox's own credentials are as secret as a nonce (sandbox.credentials()).
    secret_values = [
        *values,
        sandbox.exports["AWS_ACCESS_KEY_ID"],
        sandbox.exports["AWS_SECRET_ACCESS_KEY"],
        # The Prefect API's auth string and the sandbox reviewers' private keys too.
        sandbox.exports["PREFECT_API_AUTH_STRING"],
        *(
            read_key(
                auto_reviewer_key_path(Path(sandbox.exports[SANDBOX_REVIEWERS_ENV]), n)
            ).private_key.get_secret_value()
            for n in (1, 2)
        ),
    ]
    leaks = [
        (place, value[:6])
        for place, text in places.items()
        for value in secret_values
        if value in text
    ]
    assert leaks == []
