"""Runbook step 3 (Day 19): apply exactly the reviewed plan file, then prove a re-plan is empty."""
