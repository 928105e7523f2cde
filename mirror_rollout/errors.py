"""Errors a person can act on: each names the problem and the fix."""

from __future__ import annotations


class RolloutError(Exception):
    """An error caused by input or environment, shown to the user as one line.

    ``problem`` says what is wrong, ``fix`` says what to do about it. The CLI
    prints both without a traceback and exits non-zero.
    """

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.problem} — {self.fix}" if self.fix else self.problem


class ConfigError(RolloutError):
    """Malformed or inconsistent .tf / .tfvars / options."""


class EndpointError(RolloutError):
    """A server the rollout needs did not answer."""
