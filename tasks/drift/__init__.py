"""Runbook step drift detection: the live environment against the baseline the last rollout recorded."""
