"""HMAC-SHA256 signatures over "<timestamp>.<body>", both ways: in and out."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"
SECRET_PREFIX = "whsec_"
SCHEME = "sha256="


class SignatureMissing(Exception):
    """A header is absent or empty."""


class SignatureInvalid(Exception):
    """The signature does not match the body and the secret."""


class TimestampOutsideWindow(Exception):
    """The signature matches, but it was made too long ago (or in the future)."""


def new_secret() -> str:
    """A fresh signing secret: 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for a body sent at `timestamp` (Unix seconds)."""
    message = str(timestamp).encode() + b"." + body
    return SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def verify(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    now: float,
    tolerance_seconds: float,
) -> None:
    """Raise unless the signature matches and was made within the tolerance."""
    if not timestamp_header or not signature_header:
        raise SignatureMissing()
    try:
        timestamp = int(timestamp_header.strip())
    except ValueError:
        raise SignatureInvalid() from None
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature_header.strip().encode()):
        raise SignatureInvalid()
    # Checked after the HMAC: a stale but genuine signature is a replay.
    if abs(now - timestamp) > tolerance_seconds:
        raise TimestampOutsideWindow()
