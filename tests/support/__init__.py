"""Flows the tests deploy to the sandbox's workers (importable from the project root)."""
