"""Runbook step Day 22: the CloudWatch dashboard shows what the contract says it shows."""
