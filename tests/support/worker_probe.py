"""A tiny flow that tells which sandbox worker ran it and when it held its slot.

Deployed to the `mirror-rollout` work pool by tests/test_sandbox_postgres.py; the
workers run it from the project root (``tests.support.worker_probe``).
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from pathlib import Path

from prefect import flow
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run

from mirror_rollout.rollout_slot import environment_slot
from mirror_rollout.sandbox import WORKER_NAME_ENV

DEPLOYMENT = "worker-probe"


class ResumeNote(RunInput):
    """What the resuming process sends (as an approval would)."""

    note: str


def _parent_command() -> str:
    """The command line of the process that started this flow run (Linux's /proc)."""
    try:
        return Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@flow(name=DEPLOYMENT, persist_result=True)
def worker_probe(
    hold_seconds: float = 3.0,
    slot_environment: str | None = None,
    busy_wait_seconds: float = 60.0,
    wait_for_note: bool = False,
) -> dict:
    """Optionally pause for a ResumeNote, then hold ``slot_environment``'s slot a while."""
    note = None
    if wait_for_note:
        note = pause_flow_run(wait_for_input=ResumeNote, timeout=120, poll_interval=1).note
    slot = (
        environment_slot(slot_environment, busy_wait_seconds, flow_run.get_id())
        if slot_environment
        else nullcontext()
    )
    with slot:
        held_from = time.time()
        time.sleep(hold_seconds)
        held_until = time.time()
    return {
        "worker": os.environ[WORKER_NAME_ENV],
        "started_by": _parent_command(),
        "note": note,
        "held_from": held_from,
        "held_until": held_until,
    }
