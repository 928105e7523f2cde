"""The Kubernetes work pool's base job template (deployments/kubernetes/) against Prefect's schema.

No cluster and no Kubernetes worker (prefect-kubernetes) exist here, so no Job is started:
the template is checked by the Prefect server's own work-pool validation (over HTTP, on
the sandbox server), by rendering its defaults the way a worker does, and by validating
deployment job variables against its variables schema as `prefect deploy` does.
"""

from __future__ import annotations

import json
import uuid

import jsonschema
import pytest

from mirror_rollout import PROJECT_ROOT

TEMPLATE_PATH = PROJECT_ROOT / "deployments" / "kubernetes" / "base-job-template.json"


def template() -> dict:
    return json.loads(TEMPLATE_PATH.read_text())


def defaults(base: dict) -> dict:
    return {k: v["default"] for k, v in base["variables"]["properties"].items() if "default" in v}


def test_every_placeholder_is_a_declared_variable_and_every_variable_is_used():
    from prefect.server.schemas.actions import validate_base_job_template
    from prefect.utilities.templating import find_placeholders

    base = template()
    assert validate_base_job_template(base) == base  # raises on an undeclared placeholder
    used = {p.name for p in find_placeholders(json.dumps(base["job_configuration"]))}
    assert used == set(base["variables"]["properties"])


def test_the_defaults_render_a_job_that_runs_one_rollout_with_workload_credentials():
    from prefect.utilities.templating import apply_values

    base = template()
    config = apply_values(base["job_configuration"], defaults(base))
    job = config["job_manifest"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/phasemirror/mirror-rollout:0.1.0"
    # Kubernetes never re-runs a rollout on its own: Prefect's retries and the
    # environment slot decide what runs again.
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    # Cloud credentials come from the service account (IRSA / Workload Identity) only.
    assert pod["serviceAccountName"] == "mirror-rollout"
    assert not [k for k in container["env"] if "SECRET" in k or "KEY" in k or "TOKEN" in k]
    assert container["env"]["MIRROR_ROLLOUT_ROOT"] == "/opt/mirror-rollout"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    # A run paused for approval must not be cut off by the worker's watch.
    assert "job_watch_timeout_seconds" not in config or config["job_watch_timeout_seconds"] is None
    assert "cluster_config" not in config  # the worker's in-cluster configuration


def test_deployment_job_variables_are_validated_against_the_template():
    from prefect.client.schemas.actions import DeploymentCreate

    base = template()

    def deployment(job_variables: dict) -> DeploymentCreate:
        return DeploymentCreate(
            name="staging-rollout",
            flow_id=uuid.uuid4(),
            work_pool_name="mirror-rollout-k8s",
            job_variables=job_variables,
        )

    # What the README tells an operator to override per deployment.
    deployment(
        {"image": "registry.example/mirror-rollout:1.2.3", "namespace": "platform"}
    ).check_valid_configuration(base)
    with pytest.raises(jsonschema.ValidationError):
        deployment({"image_pull_policy": "Sometimes"}).check_valid_configuration(base)
    with pytest.raises(jsonschema.ValidationError):
        deployment({"finished_job_ttl": "an hour"}).check_valid_configuration(base)


def test_the_prefect_server_accepts_the_kubernetes_pool(prefect_api):
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    name = f"mirror-rollout-k8s-{uuid.uuid4().hex[:8]}"
    base = template()
    with get_client(sync_client=True) as client:
        created = client.create_work_pool(
            WorkPoolCreate(name=name, type="kubernetes", base_job_template=base)
        )
        try:
            assert created.type == "kubernetes"
            assert client.read_work_pool(name).base_job_template == base
        finally:
            client.delete_work_pool(name)


def test_the_server_refuses_a_template_with_an_undeclared_variable(prefect_api):
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import PrefectHTTPStatusError

    broken = template()
    broken["job_configuration"]["namespace"] = "{{ namespace_typo }}"
    with (
        get_client(sync_client=True) as client,
        pytest.raises(PrefectHTTPStatusError, match="namespace_typo"),
    ):
        client.create_work_pool(
            WorkPoolCreate(
                name=f"broken-k8s-{uuid.uuid4().hex[:8]}",
                type="kubernetes",
                base_job_template=broken,
            )
        )
