"""Google Cloud credentials files for tests: real keys, a token endpoint on loopback."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["new_private_key", "write_service_account"]


def new_private_key() -> str:
    """A fresh RSA key in PEM, as Google puts in a service account's JSON key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def write_service_account(
    path: Path, *, pem: str, email: str, project: str, token_uri: str, key_id: str = "k1"
) -> Path:
    """A service account key file whose token exchange goes to `token_uri`
    (the emulator's `/token`), so the real SDK authenticates offline."""
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": email,
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info), encoding="utf-8")
    return path
