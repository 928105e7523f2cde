"""Runbook steps Day 20/22: the 8 alarms as the contract says, driven through ALARM and back, and the
ops topic delivering a test alert to a temporary probe queue."""
