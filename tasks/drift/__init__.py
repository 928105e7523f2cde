"""Runbook step drift detection: the live environment against the last rollout's baseline."""
