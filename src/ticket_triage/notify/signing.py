"""The ``X-Triage-Signature`` header: an HMAC-SHA256 over the send time and the exact body bytes.

``t=<unix seconds>,v1=<hex digest>`` with the digest of ``f"{t}.".encode() + body``. The time is signed
too, so a receiver can refuse an old request replayed by someone who captured it.
"""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_HEADER = "X-Triage-Signature"
_HEADER = re.compile(r"t=(\d{1,12}),v1=([0-9a-f]{64})")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance_seconds: float = 300.0) -> bool:
    """What a receiver does: the digest matches (compared in constant time) and the time is recent."""
    found = _HEADER.fullmatch(header.strip())
    if found is None:
        return False
    timestamp = int(found.group(1))
    if abs(now - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), f"t={timestamp},v1={found.group(2)}")
