"""Start a run of a Prefect deployment, follow it from a terminal and turn its outcome into an exit code.

`mirror-rollout run DEPLOYMENT` (and the scripts/ wrappers on top of it) use this:
the run is created on the Prefect API in ``PREFECT_API_URL`` and executed by a
worker of its work pool; this process only watches. Exit codes: 0 when the run
Completed; 1 when it Failed, Crashed or was Cancelled, or did not finish within
the timeout (the run is then cancelled, so the outcome and the exit code agree).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from console.watcher import Echo, OnPause, RunWatcher, run_url, stamp
from mirror_rollout.errors import ConfigError, RolloutError

#: Seconds a cancelled run gets to reach its Cancelled state before we stop waiting.
CANCEL_GRACE_SECONDS = 30.0
#: A run still not started after this many seconds gets a hint about the worker.
NO_WORKER_HINT_SECONDS = 60.0


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``k=v`` pairs as flow parameters; a value that is valid JSON (3, true, null, [..]) is decoded."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--param {pair!r} is not KEY=VALUE", "write it as e.g. --param environment=staging"
            )
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def ui_base_url(env: dict[str, str] | None = None) -> str:
    """The Prefect UI: PREFECT_UI_URL, else PREFECT_API_URL without its trailing /api."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    settings = env is None  # explicit ``env``: only what it says (tests)
    env = os.environ if env is None else env
    ui = env.get("PREFECT_UI_URL") or (PREFECT_UI_URL.value() if settings else "") or ""
    if ui:
        return ui.rstrip("/")
    api = env.get("PREFECT_API_URL") or (PREFECT_API_URL.value() if settings else "") or ""
    api = api.rstrip("/")
    return api.removesuffix("/api") if api else "(no PREFECT_API_URL set)"


def start(deployment: str, parameters: dict[str, Any], tags: Iterable[str] = ()) -> Any:
    """Create a flow run of ``deployment`` ("flow-name/deployment-name"); returns the FlowRun."""
    import httpx
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
    from prefect.settings import PREFECT_API_URL

    if "/" not in deployment:
        raise ConfigError(
            f"{deployment!r} is not FLOW/DEPLOYMENT",
            "name the deployment as in `prefect deployment ls`, e.g. infra-rollout/staging-rollout",
        )
    api = PREFECT_API_URL.value()
    if not api:
        raise RolloutError(
            "PREFECT_API_URL is not set",
            'run `eval "$(mirror-rollout sandbox up)"` or point PREFECT_API_URL at your Prefect server',
        )
    try:
        return run_deployment(
            name=deployment,
            parameters=parameters,
            timeout=0,
            as_subflow=False,
            tags=list(tags) or None,
        )
    except ObjectNotFound:
        raise RolloutError(
            f"deployment {deployment} does not exist on the Prefect API {api}",
            "register the deployments with `prefect --no-prompt deploy --all` from the repository root",
        ) from None
    except PrefectHTTPStatusError as exc:
        detail = exc.response.text[:500] if exc.response is not None else str(exc)
        raise RolloutError(
            f"the Prefect API refused a run of {deployment}: {detail}",
            "check the --param names and values against the flow's parameters",
        ) from None
    except httpx.TransportError as exc:
        raise RolloutError(
            f"cannot reach the Prefect API {api}: {type(exc).__name__}",
            "start the server (mirror-rollout sandbox up) or check PREFECT_API_URL",
        ) from None


@dataclass
class Outcome:
    flow_run_id: str
    state_name: str
    message: str = ""
    completed: bool = False
    timed_out: bool = False

    @property
    def exit_code(self) -> int:
        return 0 if self.completed else 1


def cancel(client: Any, flow_run_id: UUID, reason: str) -> None:
    """Ask Prefect to cancel the run through Cancelling, never by forcing Cancelled.

    The server turns Cancelling into Cancelled at once while no worker has claimed the
    run; once one has (Pending, a process starting), the run stays Cancelling and that
    worker stops the process it started. Forcing Cancelled over a run a worker has just
    claimed lets the process start anyway and take it from Cancelled to Running.
    """
    from prefect.states import Cancelling

    run = client.read_flow_run(flow_run_id)
    if run.state is not None and run.state.is_final():
        return
    client.set_flow_run_state(flow_run_id, Cancelling(message=reason))


def follow(
    flow_run_id: UUID,
    ui: str,
    echo: Echo,
    timeout: float | None = None,
    poll_seconds: float = 1.0,
    on_pause: OnPause | None = None,
) -> Outcome:
    """Poll the run until it is final (or ``timeout`` seconds passed: then cancel it)."""
    from prefect import get_client

    watcher = RunWatcher(ui, echo, on_pause)
    started = time.monotonic()
    deadline = None if not timeout else started + timeout
    hinted = False
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            final = watcher.look(client, run)
            state = run.state
            waiting = state is None or state.is_scheduled() or state.is_pending()
            if waiting and not hinted and time.monotonic() - started > NO_WORKER_HINT_SECONDS:
                hinted = True
                echo(
                    f"[{stamp()}] still {watcher.state} after {NO_WORKER_HINT_SECONDS:g} s: another "
                    "run may hold the deployment's slot, or no worker serves work pool "
                    f"{run.work_pool_name or '?'} (start one: `prefect worker start "
                    f"--pool {run.work_pool_name or 'mirror-rollout'} --type process`)"
                )
            if final:
                assert state is not None
                return Outcome(
                    str(flow_run_id), state.name, state.message or "", state.is_completed()
                )
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(poll_seconds)
        echo(f"[{stamp()}] not finished after {timeout:g} s (still {watcher.state}); cancelling it")
        cancel(client, flow_run_id, f"not finished within {timeout:g} s of `mirror-rollout run`")
        give_up = time.monotonic() + CANCEL_GRACE_SECONDS
        while time.monotonic() < give_up:
            run = client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.is_final():
                break
            time.sleep(poll_seconds)
        else:
            # No worker finished the cancellation (e.g. its process never started):
            # end the run here, so it cannot start later either.
            from prefect.states import Cancelled

            client.set_flow_run_state(
                flow_run_id,
                Cancelled(message=f"cancelled by `mirror-rollout run` after {timeout:g} s"),
                force=True,
            )
            run = client.read_flow_run(flow_run_id)
        state = run.state
        if state is not None and state.is_completed():  # it finished just in time
            return Outcome(str(flow_run_id), state.name, state.message or "", completed=True)
        return Outcome(
            str(flow_run_id),
            state.name if state else "?",
            f"timed out after {timeout:g} s"
            + (f"; {state.message}" if state and state.message else ""),
            completed=False,
            timed_out=True,
        )


def run(
    deployment: str,
    parameters: dict[str, Any],
    echo: Echo,
    wait: bool = True,
    timeout: float | None = None,
    tags: Iterable[str] = (),
) -> int:
    """Start, announce, follow; returns the exit code (0 Completed, 1 anything else).

    Usage and API errors raise ``RolloutError`` (the CLI exits 2 with one line).
    """
    ui = ui_base_url()
    flow_run = start(deployment, parameters, tags)
    echo(f"flow run {flow_run.id} ({flow_run.name}) of {deployment}")
    echo(f"ui: {run_url(ui, str(flow_run.id))}")
    if not wait:
        return 0
    import httpx

    try:
        outcome = follow(flow_run.id, ui, echo, timeout)
    except KeyboardInterrupt:
        echo(f"stopped following; the run goes on: {run_url(ui, str(flow_run.id))}")
        return 130
    except httpx.TransportError as exc:
        raise RolloutError(
            f"lost the Prefect API while following run {flow_run.id} ({type(exc).__name__}); "
            "its outcome is unknown",
            f"see {run_url(ui, str(flow_run.id))}",
        ) from None
    line = f"{deployment}: {outcome.state_name}"
    if outcome.message and not outcome.completed:
        line += f" — {outcome.message}"
    echo(line)
    return outcome.exit_code
