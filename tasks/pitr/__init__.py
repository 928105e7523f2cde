"""Runbook step Day 20: point-in-time recovery enabled and verified on the three tables."""
