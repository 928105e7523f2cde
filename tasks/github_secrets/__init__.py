"""Runbook step Day 21: the GitHub Actions secrets of an environment, from its Terraform outputs."""
