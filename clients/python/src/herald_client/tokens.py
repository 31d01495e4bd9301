"""User tokens: the JWT a tenant's backend gives a user's page, signed with one of the
tenant's signing keys (on PyJWT: `pip install herald-client[jwt]`, or `[crypto]` for ES256,
EdDSA and RS256)."""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Sequence, Union

ALGORITHMS = ("HS256", "ES256", "EdDSA", "RS256")


def mint_user_token(
    *,
    kid: str,
    sub: str,
    secret: Optional[str] = None,
    private_key: Union[str, bytes, None] = None,
    alg: str = "HS256",
    topics: Optional[Sequence[str]] = None,
    ttl: int = 3600,
    audience: str = "herald",
    now: Optional[int] = None,
) -> str:
    """A user token for user `sub`, valid `ttl` seconds, for `topics` (names or `prefix:*`
    patterns). HS256 signs with `secret` (the key's text, exactly as Herald showed it); the
    others with `private_key` (PEM) whose public half Herald holds under `kid`."""
    try:
        import jwt
    except ImportError as missing:  # pragma: no cover - depends on the extras installed
        raise ImportError("minting tokens needs PyJWT: pip install 'herald-client[jwt]'") from missing
    if alg not in ALGORITHMS:
        raise ValueError(f"alg is one of {', '.join(ALGORITHMS)}, not {alg!r}")
    key: Any
    if alg == "HS256":
        if secret is None:
            raise ValueError("HS256 signs with the key's `secret`")
        key = secret.encode()
    else:
        if private_key is None:
            raise ValueError(f"{alg} signs with a `private_key` (PEM)")
        key = private_key
    issued = int(time.time()) if now is None else now
    claims: Dict[str, Any] = {"sub": sub, "aud": audience, "iat": issued, "exp": issued + ttl}
    if topics is not None:
        claims["topics"] = list(topics)
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})
