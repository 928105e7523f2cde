"""Nonce values: generated with the secrets module and never printable."""

from __future__ import annotations

import secrets

from pydantic import SecretStr

NONCE_BYTES = 32  # 64 lowercase hex characters


def new_nonce() -> SecretStr:
    """A fresh nonce; its repr and str are masked, only get_secret_value() reveals it."""
    return SecretStr(secrets.token_hex(NONCE_BYTES))
