"""Runbook step: a PITR restore drill (restore to T into a copy, compare, delete)."""
