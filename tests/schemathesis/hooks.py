"""Schemathesis hooks for Herald's contract run (see run.sh).

Credentials, one per security scheme, by path: the admin token for `/admin`, the tenant's
API key for `/v1`, and for the browser's `/t` a user token minted afresh for every request
and valid for two seconds — a stream is endless by design and ends only when its session
does, so each stream schemathesis opens is answered in full (`retry:`, events,
`session-expired`) and closed within a few seconds.
"""

import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import time

import schemathesis

SECRET = os.environ["HERALD_CONTRACT_SECRET"].encode()
KID = os.environ["HERALD_CONTRACT_KID"]
LIFETIME_SECS = 2


def _segment(value: dict) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def user_token() -> str:
    now = int(time.time())
    header = _segment({"alg": "HS256", "typ": "JWT", "kid": KID})
    claims = _segment(
        {"sub": "contract-user", "aud": "herald", "iat": now, "exp": now + LIFETIME_SECS,
         "topics": ["news", "scores:*"]}
    )
    signature = hmac.new(SECRET, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


class Bearer:
    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.auth(refresh_interval=None).apply_to(path_regex="^/t/")
class UserToken(Bearer):
    def get(self, case, ctx):
        return user_token()


@schemathesis.auth().apply_to(path_regex="^/admin/")
class AdminToken(Bearer):
    def get(self, case, ctx):
        return os.environ["HERALD_ADMIN_TOKEN"]


@schemathesis.auth().apply_to(path_regex="^/v1/")
class ApiKey(Bearer):
    def get(self, case, ctx):
        return os.environ["HERALD_API_KEY"]


IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,200}")
_publishes = itertools.count()


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """Each generated publish gets an Idempotency-Key of its own (a valid generated key
    gets a unique suffix; an invalid one is left invalid). Reusing a key with another body
    is refused with 422 by design, which tests/api/idempotency.rs pins; here it would only
    make a schema-valid publish look refused."""
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = f"{key}-{next(_publishes)}"
