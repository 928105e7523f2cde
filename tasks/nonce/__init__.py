"""Runbook step: redaction nonce bootstrap, rotation with a grace period, cleanup, rollback.

``rules`` is pure (parameter descriptions in, decisions out), ``store`` is the
SSM glue, ``task`` the Prefect tasks. No nonce value ever leaves ``store``.
"""
