"""Standard Webhooks signatures (https://www.standardwebhooks.com, "Signature scheme").

Each request carries ``webhook-id`` (the event id, the same on every retry: receivers
de-duplicate by it), ``webhook-timestamp`` (Unix seconds of this attempt) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``. Secrets read
``whsec_<base64 of the key>``; a configured secret without that prefix is used as raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64


def generate_secret() -> str:
    """A new random secret in the ``whsec_`` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def parse_secret(secret: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret; ValueError when it is not one, or its key is
    shorter than 24 or longer than 64 bytes (the specification's bounds)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret reads whsec_<base64>")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret reads whsec_<base64>") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"a webhook secret's key has {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes")
    return key


def secret_key(secret: str) -> bytes:
    """The HMAC key of ``secret``: decoded when ``whsec_``-prefixed, its UTF-8 bytes otherwise."""
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX) :] + "==")
    return secret.encode()


def signature(key: bytes, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{msg_id}.{timestamp_s}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(key: bytes | None, msg_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (no signature without a key)."""
    out = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp_s)}
    if key:
        out["webhook-signature"] = signature(key, msg_id, timestamp_s, body)
    return out
