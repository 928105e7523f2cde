"""Runbook step 0: static guardrails over infra/ before any plan is made."""
