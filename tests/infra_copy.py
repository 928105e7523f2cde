"""A throw-away copy of the project's infra/ that tests can break one edit at a time."""

from __future__ import annotations

import shutil
from pathlib import Path

from mirror_rollout import PROJECT_ROOT


class InfraCopy:
    def __init__(self, root: Path):
        self.root = root
        shutil.copytree(PROJECT_ROOT / "infra", root / "infra")
        # The flow reads who may approve from ROOT/deployments/reviewers.yaml.
        (root / "deployments").mkdir(exist_ok=True)
        shutil.copy2(PROJECT_ROOT / "deployments" / "reviewers.yaml", root / "deployments")

    def path(self, relative: str) -> Path:
        return self.root / "infra" / relative

    def edit(self, relative: str, old: str, new: str, *, within: str | None = None) -> None:
        """Replace the first ``old`` (after the line ``within``, if given) by ``new``.

        Fails loudly when ``old`` is not there, so a test never passes because
        its edit silently did nothing.
        """
        path = self.path(relative)
        text = path.read_text()
        start = 0
        if within is not None:
            start = text.index(within)
        at = text.find(old, start)
        assert at >= 0, f"{old!r} not found in {relative} after {within!r}"
        path.write_text(text[:at] + new + text[at + len(old) :])

    def append(self, relative: str, text: str) -> None:
        path = self.path(relative)
        path.write_text(path.read_text() + "\n" + text)
