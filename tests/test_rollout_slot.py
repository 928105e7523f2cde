"""The environment slot on its own: who holds it is read from the server, never guessed.

The unit tests need no server. The others take `environment_slot` from several
threads at once against the sandbox's real Prefect server, reached through a
proxy that delays every request (a loaded server) while a thread keeps the
CPU busy; every refusal must name the one run that holds the slot.
"""

from __future__ import annotations

import contextvars
import http.client
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

from mirror_rollout.rollout_slot import (
    RolloutBusy,
    SlotState,
    busy_message,
    describe_holders,
    environment_slot,
    holder_limit_name,
    holder_run_id,
    limit_name,
    slot_state,
    stale_holder_limits,
    unnamed_holder,
)

# ---------------------------------------------------------------- pure parts


def gcl(name: str, active_slots: int, limit: int = 1, active: bool = True):
    from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse

    return GlobalConcurrencyLimitResponse(
        name=name, limit=limit, active_slots=active_slots, active=active, slot_decay_per_second=0
    )


def flow_run(name: str, state) -> object:
    from prefect.client.schemas.objects import FlowRun

    return FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), name=name, state=state)


def test_holder_limit_names_round_trip_and_belong_to_one_environment():
    run_id = uuid.uuid4()
    name = holder_limit_name("staging", run_id)
    assert name == f"rollout-staging:flow-run:{run_id}"
    assert holder_run_id("staging", name) == run_id
    assert holder_run_id("staging-eu", name) is None
    assert holder_run_id("staging", holder_limit_name("staging-eu", run_id)) is None
    assert holder_run_id("staging", "rollout-staging") is None
    assert holder_run_id("staging", "rollout-staging:flow-run:not-a-uuid") is None


def test_slot_state_names_only_runs_whose_holder_limit_is_occupied():
    holder, waiting, other_env = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    limits = [
        gcl("rollout-staging", 1),
        gcl(holder_limit_name("staging", holder), 1),
        gcl(holder_limit_name("staging", waiting), 0),  # created, not (yet) taken
        gcl(holder_limit_name("production", other_env), 1),
        gcl("rollout-production", 1),
    ]
    assert slot_state("staging", limits) == SlotState(free=0, holders=(holder,))
    assert slot_state("staging", [gcl("rollout-staging", 0)]) == SlotState(free=1, holders=())
    assert slot_state("staging", []) == SlotState(free=0, holders=())
    assert slot_state("staging", [gcl("rollout-staging", 0, active=False)]).free == 1


def test_stale_holder_limits_are_free_ones_of_finished_or_vanished_runs():
    from prefect.states import Completed, Crashed, Paused, Running

    done, crashed, running, paused, gone, busy = (
        flow_run("done", Completed()),
        flow_run("crashed", Crashed()),
        flow_run("running", Running()),
        flow_run("paused", Paused()),
        uuid.uuid4(),
        flow_run("busy-but-crashed", Crashed()),
    )
    limits = [
        gcl("rollout-staging", 1),
        *(gcl(holder_limit_name("staging", r.id), 0) for r in (done, crashed, running, paused)),
        gcl(holder_limit_name("staging", gone), 0),
        gcl(holder_limit_name("staging", busy.id), 1),  # its lease still holds: not stale
        gcl(holder_limit_name("production", done.id), 0),  # another environment's
    ]
    own = uuid.uuid4()  # its run was not asked for: it is taking the slot
    limits.append(gcl(holder_limit_name("staging", own), 0))
    runs = {r.id: r for r in (done, crashed, running, paused, busy)}
    assert stale_holder_limits("staging", limits, runs, own) == [
        holder_limit_name("staging", done.id),
        holder_limit_name("staging", crashed.id),
        holder_limit_name("staging", gone),
    ]


def test_holders_are_described_by_name_id_and_state_or_said_to_be_gone():
    from prefect.states import Paused

    own, gone = uuid.uuid4(), uuid.uuid4()
    run = flow_run("brave-otter", Paused())
    described = describe_holders([run.id, gone, own], {run.id: run}, own)
    assert described[0] == f"flow run brave-otter ({run.id}, Paused)"
    assert str(gone) in described[1] and "no longer in Prefect" in described[1]
    assert str(own) in described[2] and "this flow run" in described[2]


def test_busy_message_names_the_holders_or_says_it_could_not():
    named = busy_message("staging", ["flow run a (1, Running)"], 0)
    assert str(named).startswith(
        "another rollout of staging is in progress (flow run a (1, Running)); did not wait"
    )
    assert named.fix and "busy_wait_seconds" in named.fix
    unnamed = busy_message("production", [], 30, unnamed_holder(SlotState(free=0, holders=())))
    assert "its holder could not be read" in str(unnamed)
    assert "names no flow run" in str(unnamed) and "waited 30 s" in str(unnamed)
    assert "freed" in unnamed_holder(SlotState(free=1, holders=()))


# ---------------------------------------------------------- against the server


class DelayingProxy(BaseHTTPRequestHandler):
    """Forwards each request to the Prefect server after `delay` seconds."""

    protocol_version = "HTTP/1.1"
    upstream: tuple[str, int]
    delay: float

    def log_message(self, *args):
        pass

    def forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(self.delay)
        skip = {"host", "connection", "keep-alive", "transfer-encoding"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        upstream = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        self.send_response(response.status)
        skip |= {"content-length", "server", "date"}
        for key, value in response.getheaders():
            if key.lower() not in skip:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward


@contextmanager
def loaded_server(api_url: str, delay: float = 0.25) -> Iterator[str]:
    """Prefect's API behind a delaying proxy, with a thread hogging the CPU meanwhile."""
    target = urlparse(api_url)
    handler = type(
        "Proxy", (DelayingProxy,), {"upstream": (target.hostname, target.port), "delay": delay}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    stop = threading.Event()

    def burn() -> None:
        while not stop.is_set():
            sum(i * i for i in range(10_000))

    threads = [threading.Thread(target=server.serve_forever, daemon=True)]
    threads.append(threading.Thread(target=burn, daemon=True))
    for thread in threads:
        thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{target.path}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def make_runs(prefect_api):
    """Real flow runs (Running) of infra-rollout; finished when the test ends."""
    from prefect import flow, get_client
    from prefect.states import Completed, Running

    @flow(name="infra-rollout")
    def stand_in(environment: str = "staging") -> None: ...

    made = []

    def make(count: int, environment: str) -> list:
        with get_client(sync_client=True) as client:
            runs = [
                client.create_flow_run(
                    stand_in,
                    name=f"slot-{environment}-{i}-{uuid.uuid4().hex[:6]}",
                    parameters={"environment": environment},
                    state=Running(),
                )
                for i in range(count)
            ]
        made.extend(runs)
        return runs

    yield make
    with get_client(sync_client=True) as client:
        for run in made:
            client.set_flow_run_state(run.id, Completed(), force=True)


def read_slot(environment: str) -> tuple[int, list[str]]:
    """Active slots of the environment's limit, and the names of its holder limits."""
    from prefect import get_client

    from mirror_rollout.rollout_slot import read_limits

    with get_client(sync_client=True) as client:
        limits = read_limits(client)
    active = next(x.active_slots for x in limits if x.name == limit_name(environment))
    return active, [x.name for x in limits if holder_run_id(environment, x.name)]


def take_together(
    environment: str, run_ids: list[str | None], busy_wait: float, hold_for: float | None = None
) -> dict[int, object]:
    """Each thread takes the slot at once; a holder keeps it until all the others are done
    (or for `hold_for` seconds). Returns per thread "held" or its exception."""
    outcome: dict[int, object] = {}
    start = threading.Barrier(len(run_ids))
    others_done = threading.Event()
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            start.wait()
            with environment_slot(environment, busy_wait, run_ids[i]):
                outcome[i] = "held"
                if hold_for is None:
                    others_done.wait(timeout=60)
                else:
                    time.sleep(hold_for)
        except BaseException as exc:
            outcome[i] = exc
        with lock:
            if sum(1 for v in outcome.values() if v != "held") == len(run_ids) - 1:
                others_done.set()

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(one, i))
        for i in range(len(run_ids))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(outcome) == len(run_ids), "a thread did not finish"
    return outcome


def test_fail_fast_under_load_one_holds_and_every_refusal_names_it(prefect_api, make_runs):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    runs = make_runs(5, "staging")
    with (
        loaded_server(prefect_api) as slow_api,
        temporary_settings(updates={PREFECT_API_URL: slow_api}),
    ):
        outcome = take_together("staging", [str(r.id) for r in runs], busy_wait=0)

    held = [i for i, v in outcome.items() if v == "held"]
    assert len(held) == 1, outcome
    holder = runs[held[0]]
    for i, refusal in outcome.items():
        if i == held[0]:
            continue
        assert isinstance(refusal, RolloutBusy), refusal
        message = str(refusal)
        assert "another rollout of staging is in progress" in message
        assert f"flow run {holder.name} ({holder.id}, Running)" in message
        # No one else is named: not the refused runs, not the run itself.
        assert [str(r.id) in message for r in runs].count(True) == 1, message
        assert "did not wait" in message
    # Released, and the holder limits are gone with it.
    assert read_slot("staging") == (0, [])


def test_waiting_run_takes_the_slot_when_the_holder_lets_go(prefect_api, make_runs):
    first, second = make_runs(2, "slot-wait")
    started = time.monotonic()
    outcome = take_together("slot-wait", [str(first.id), str(second.id)], 8, hold_for=1.0)
    assert list(outcome.values()) == ["held", "held"], outcome
    assert time.monotonic() - started < 15
    assert read_slot("slot-wait") == (0, [])


def test_waiting_run_gives_up_after_busy_wait_naming_the_holder(prefect_api, make_runs):
    holder, waiter = make_runs(2, "slot-timeout")
    outcome: dict[str, object] = {}
    held = threading.Event()
    done = threading.Event()

    def hold() -> None:
        with environment_slot("slot-timeout", 0, str(holder.id)):
            held.set()
            done.wait(timeout=60)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(hold,))
    thread.start()
    try:
        assert held.wait(timeout=30)
        started = time.monotonic()
        with (
            pytest.raises(RolloutBusy) as refused,
            environment_slot("slot-timeout", 1.5, str(waiter.id)),
        ):
            outcome["waiter"] = "held"
        waited = time.monotonic() - started
    finally:
        done.set()
        thread.join(timeout=30)
    assert "waiter" not in outcome
    assert waited >= 1.5
    message = str(refused.value)
    assert f"flow run {holder.name} ({holder.id}, Running)" in message
    assert str(waiter.id) not in message and "waited 1.5 s" in message
    assert read_slot("slot-timeout") == (0, [])


def test_a_holder_outside_a_flow_run_is_not_named(prefect_api, make_runs):
    (refused_run,) = make_runs(1, "slot-anonymous")
    with (
        environment_slot("slot-anonymous", 0, None),
        pytest.raises(RolloutBusy) as refused,
        environment_slot("slot-anonymous", 0, str(refused_run.id)),
    ):
        pass
    message = str(refused.value)
    assert "its holder could not be read" in message and "names no flow run" in message
    assert str(refused_run.id) not in message
    assert read_slot("slot-anonymous") == (0, [])


def test_the_slot_is_released_when_the_body_fails(prefect_api, make_runs):
    (run,) = make_runs(1, "slot-error")
    with pytest.raises(ZeroDivisionError), environment_slot("slot-error", 0, str(run.id)):
        assert read_slot("slot-error") == (1, [holder_limit_name("slot-error", run.id)])
        1 / 0  # noqa: B018
    assert read_slot("slot-error") == (0, [])
