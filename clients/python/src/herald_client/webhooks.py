"""Checking that a webhook message is Herald's: Standard Webhooks signatures.

Herald signs `"{webhook-id}.{webhook-timestamp}.{body}"` with HMAC-SHA256 under the
endpoint's secret (`whsec_` and the key in base64) and sends `webhook-signature: v1,<base64>`
— two of them, space-separated, for 24 hours after a rotation (the new secret's and the
old one's), so a receiver holding either secret accepts the message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Mapping, Optional, Sequence, Union

from .errors import WebhookVerificationError

TOLERANCE_SECS = 300


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"no {name} header")


def _key(secret: str) -> bytes:
    encoded = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError as bad:
        raise WebhookVerificationError("the secret is not `whsec_` and base64") from bad


def verify_webhook(
    headers: Mapping[str, str],
    body: Union[bytes, str],
    secret: Union[str, Sequence[str]],
    *,
    tolerance: int = TOLERANCE_SECS,
    now: Optional[float] = None,
) -> Any:
    """The message (parsed JSON) if `body` with `headers` is signed with `secret` (or any of
    several secrets) and was sent within `tolerance` seconds of now; else raises
    WebhookVerificationError. Pass the raw body as received, before any JSON parsing."""
    message_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        sent = int(timestamp)
    except ValueError as bad:
        raise WebhookVerificationError("webhook-timestamp is not a number") from bad
    if abs((time.time() if now is None else now) - sent) > tolerance:
        raise WebhookVerificationError("the message's timestamp is outside the tolerance")
    raw = body.encode() if isinstance(body, str) else body
    signed = b".".join([message_id.encode(), timestamp.encode(), raw])
    secrets = [secret] if isinstance(secret, str) else list(secret)
    expected = [
        base64.b64encode(hmac.new(_key(s), signed, hashlib.sha256).digest()) for s in secrets
    ]
    for signature in signatures.split(" "):
        version, _, value = signature.partition(",")
        if version != "v1":
            continue
        # Every candidate is compared, in constant time, whatever matched before.
        if any([hmac.compare_digest(value.encode(), e) for e in expected]):
            return json.loads(raw)
    raise WebhookVerificationError("no signature matches the secret")
