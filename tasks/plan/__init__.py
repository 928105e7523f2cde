"""Runbook step 1 (Day 19): plan, and the review artifact a reviewer approves from."""
