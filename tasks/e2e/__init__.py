"""Runbook step Days 23-24: the E2E cycle (PR -> Oracle -> FP event -> baseline)."""
