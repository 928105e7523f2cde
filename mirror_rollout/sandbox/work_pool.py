"""The sandbox's work pool: a process pool whose flow runs start the engine directly.

Left to its default, a Prefect 3.9 process worker starts each flow run through a
workspace supervisor: one more Python process per run that imports Prefect (about
0.9 CPU s) before the engine process does the same. The sandbox runs from this checkout
with no pull step beyond the working directory, which the engine runs itself, so its
pool's template names the engine command: ``<this python> -m prefect.engine``.

:func:`pool_template` is pure; :func:`use_engine_command` reads and updates the pool over
HTTP (importing Prefect here would fix its settings before `activate` sets them).
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import httpx

from mirror_rollout.errors import EndpointError
from mirror_rollout.sandbox.access import api_headers
from mirror_rollout.sandbox.config import WORK_POOL, SandboxConfig


def pool_template(current: dict[str, Any], python: str) -> dict[str, Any]:
    """``current`` (a process pool's base job template) with ``command`` defaulting to the engine."""
    template = copy.deepcopy(current)
    command = template["variables"]["properties"]["command"]
    command["default"] = f"{python} -m prefect.engine"
    return template


def use_engine_command(config: SandboxConfig) -> None:
    """Give WORK_POOL (which the first worker created) :func:`pool_template`, if it lacks it."""
    url = f"{config.url('prefect')}/work_pools/{WORK_POOL}"
    try:
        with httpx.Client(timeout=10.0, trust_env=False, headers=api_headers(config)) as http:
            answer = http.get(url)
            if answer.status_code == 200:
                current = answer.json()["base_job_template"]
                template = pool_template(current, sys.executable)
                if template == current:
                    return
                answer = http.patch(url, json={"base_job_template": template})
    except httpx.HTTPError as exc:
        raise EndpointError(
            f"the sandbox's Prefect server at {url} did not answer ({type(exc).__name__})",
            "see prefect.log in the sandbox's state directory (`mirror-rollout sandbox status`)",
        ) from None
    if answer.status_code >= 400:
        raise EndpointError(
            f"the sandbox's Prefect server answered HTTP {answer.status_code} for work pool "
            f"{WORK_POOL}: {answer.text[:200]}",
            "see prefect.log in the sandbox's state directory (`mirror-rollout sandbox status`)",
        )
