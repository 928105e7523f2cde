"""Pure: what Terraform's human output says (errors, apply progress, a held lock's ID)."""

from __future__ import annotations

import re
import signal

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BOX = "╷│╵ \t"
_COMPLETE = re.compile(
    r"^(?P<address>.+?): (?:Creation|Modifications|Destruction) complete after "
    r"(?P<duration>(?:\d+h)?(?:\d+m)?\d+s)\b"
)
_STARTED = re.compile(r"^(?P<address>.+?): (?:Creating|Modifying|Destroying)\.\.\.")
#: A line about one resource: ``address: Refreshing state...``, ``address: Creating...``.
_PROGRESS = re.compile(
    r"^(?:module\.[^ :]+\.)?(?:data\.)?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?:\[[^\]]*\])?: "
)
_LOCK_ID = re.compile(r"^\s*ID:\s+(?P<id>\S+)")
_WITH = re.compile(r"^\s*with (?P<address>[^,]+),\s*$")


def first_error_line(text: str, *, fallback: bool = True) -> str | None:
    """The first ``Error:`` line of Terraform's output (boxes and colours removed).

    With ``fallback``, the first non-empty line when there is no ``Error:`` (some
    failures, e.g. of ``workspace select``, print none); None for empty output.
    Progress output (apply's stdout) is read without it: its first line is no error.
    """
    lines = [_ANSI.sub("", line).strip(_BOX).rstrip() for line in text.splitlines()]
    for line in lines:
        if line.startswith("Error:"):
            return line
    return next((line for line in lines if line), None) if fallback else None


def is_lock_failure(stderr: str) -> bool:
    """Terraform failed to take (or read) the state lock."""
    return "Error acquiring the state lock" in stderr or "failed to lock" in stderr


def held_lock_id(stderr: str) -> str:
    """The ID of the lock a command failed against, ``<ID>`` when Terraform printed none."""
    lines = stderr.replace("│", " ").splitlines()
    return next((m["id"] for m in map(_LOCK_ID.match, lines) if m), "<ID>")


def parse_duration(text: str) -> float:
    """Terraform's ``1h2m3s`` / ``45s`` as seconds."""
    seconds = 0.0
    for amount, unit in re.findall(r"(\d+)([hms])", text):
        seconds += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return seconds


def parse_apply_timings(stdout: str) -> dict[str, float]:
    """Seconds per address from apply's ``…: Creation complete after 12s`` lines (a replace sums both)."""
    timings: dict[str, float] = {}
    for line in stdout.splitlines():
        match = _COMPLETE.match(line.strip())
        if match:
            address = match["address"]
            timings[address] = timings.get(address, 0.0) + parse_duration(match["duration"])
    return timings


def applied_addresses(stdout: str) -> list[str]:
    """Addresses apply finished (created, changed or destroyed), in order, each once.

    A replace prints two completions (destroy, then create) for one change.
    """
    done = [m["address"] for m in map(_COMPLETE.match, map(str.strip, stdout.splitlines())) if m]
    return list(dict.fromkeys(done))


def in_flight_addresses(stdout: str) -> list[str]:
    """Addresses apply had started (``Creating...`` ...) and not finished, in order."""
    started = [m["address"] for m in map(_STARTED.match, map(str.strip, stdout.splitlines())) if m]
    done = set(applied_addresses(stdout))
    return [a for a in dict.fromkeys(started) if a not in done]


def failed_addresses(output: str) -> list[str]:
    """Addresses named by apply's errors (``with aws_x.y,`` under each ``Error:``), in order."""
    found = []
    for line in output.splitlines():
        match = _WITH.match(_ANSI.sub("", line).strip(_BOX))
        if match and match["address"] not in found:
            found.append(match["address"])
    return found


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; the number when the platform has no name for it."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Paragraphs:
    """Terraform's output as log messages: a resource's progress line alone, the rest by paragraph.

    A plan prints some thirty lines per resource; one message per paragraph reads the
    same in a run's log and is a fraction of the records the Prefect API has to store.
    """

    def __init__(self) -> None:
        self._held: list[str] = []

    def feed(self, line: str) -> list[str]:
        """The messages complete once ``line`` is read (none while a paragraph goes on)."""
        line = line.rstrip("\n")
        if not line.strip():
            return self.flush()
        if _PROGRESS.match(line):
            return [*self.flush(), line]
        self._held.append(line)
        return []

    def flush(self) -> list[str]:
        """The paragraph read so far as one message, if any (at a blank line and at the end)."""
        held, self._held = self._held, []
        return ["\n".join(held)] if held else []
