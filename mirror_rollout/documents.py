"""Reading decoded documents: HCL bodies (python-hcl2 dicts), JSON policies, dashboard bodies.

Shared by the guardrails (which read what Terraform will write) and the dashboard
checks (which read what AWS holds): both see the same shapes, so one reader serves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


def as_list(value: Any) -> list:
    """A value that may be one item, a list of them, or absent (None), as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def strings(value: Any) -> Iterable[str]:
    """Every string inside a nested structure of dicts and lists."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


_SEARCH = re.compile(
    r"\{(?P<namespace>[^,}]+)[^}]*\}.*?MetricName\s*=\s*\\?\"?(?P<metric>[A-Za-z]+)"
)


def dashboard_metrics(body: Any) -> tuple[set[tuple[str, str, str]], list[dict]]:
    """(namespace, metric, TableName or "") of every metric row, and the alarm widgets."""
    rows: set[tuple[str, str, str]] = set()
    alarm_widgets = []
    for widget in as_list((body or {}).get("widgets")):
        props = widget.get("properties") or {}
        if widget.get("type") == "alarm":
            alarm_widgets.append(props)
        previous: list = []
        for row in as_list(props.get("metrics")):
            if not isinstance(row, list):
                continue
            for options in (v for v in row if isinstance(v, dict)):
                # A SEARCH expression row: SEARCH('{Namespace,Dim,...} MetricName="X" ...')
                search = _SEARCH.search(str(options.get("expression", "")))
                if search:
                    rows.add((search["namespace"], search["metric"], ""))
            # "." repeats the previous row's value at that position (CloudWatch shorthand).
            plain = [v for v in row if not isinstance(v, dict)]
            plain = [
                previous[i] if v == "." and i < len(previous) else v for i, v in enumerate(plain)
            ]
            previous = plain
            if len(plain) >= 2:
                dims = dict(zip(plain[2::2], plain[3::2], strict=False))
                rows.add((str(plain[0]), str(plain[1]), str(dims.get("TableName", ""))))
    return rows, alarm_widgets
