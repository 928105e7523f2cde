"""Runbook step 2 (Day 19): nobody applies a plan that nobody reviewed."""
