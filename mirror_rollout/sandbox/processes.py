"""The sandbox's detached server processes, seen through their pid records and ``/proc``.

A ``.pid`` file holds one JSON object: pid, process group, port and the exact argv
we started. Only a pid whose ``/proc/<pid>/cmdline`` still matches that argv is
signalled, so a recycled pid is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
LOG_TAIL_LINES = 15


@dataclass
class PidRecord:
    pid: int
    pgid: int
    port: int
    cmd: list[str]

    @classmethod
    def load(cls, path: Path) -> PidRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(int(data["pid"]), int(data["pgid"]), int(data["port"]), list(data["cmd"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__) + "\n")
        tmp.replace(path)


# Popen objects of servers started by this process, so they can be reaped.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def alive(pid: int) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def process_env(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with (empty when it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (a.decode(errors="replace").partition("=") for a in raw.split(b"\0") if a)
    return {key: value for key, _, value in pairs}


def is_ours(record: PidRecord) -> bool:
    """The recorded pid is alive and still runs the argv we started."""
    if not alive(record.pid):
        return False
    tail = record.cmd[1:]  # the interpreter path may be shown resolved
    return cmdline(record.pid)[-len(tail) :] == tail


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _proc_stat(int(entry.name))
            if st and st[1] == pgid and st[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def port_in_use(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = [ln for ln in text.splitlines() if ln.strip()][-lines:]
    return "\n".join("    " + ln for ln in tail) or "(log is empty)"


def launch(cmd: list[str], env: dict[str, str], cwd: Path, log_file: Path) -> subprocess.Popen:
    """Start ``cmd`` in its own session, appending its output to ``log_file``."""
    log = open(  # noqa: SIM115 - handed to the child
        os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab"
    )
    try:
        log.write(f"\n--- {time.strftime('%F %T')} {shlex.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            # The Prefect database, result storage and run outputs are for this user only.
            umask=0o077,
        )
    finally:
        log.close()
    _CHILDREN[proc.pid] = proc
    return proc


def stop_group(
    record: PidRecord, timeout: float = STOP_TIMEOUT, first: signal.Signals = signal.SIGTERM
) -> None:
    """Signal the whole group with ``first`` (SIGTERM), SIGKILL what is left after ``timeout``."""
    for sig, wait in ((first, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            reap(record.pid)
            if not alive(record.pid) and not group_members(record.pgid):
                return
            time.sleep(0.1)
    reap(record.pid)


def kill_leftovers(record: PidRecord) -> bool:
    """The leader is gone: SIGKILL what is left of its group running our interpreter."""
    killed = False
    for pid in group_members(record.pgid):
        if cmdline(pid)[:1] == record.cmd[:1]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed = True
    return killed


def reap(pid: int) -> None:
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        _CHILDREN.pop(pid, None)
