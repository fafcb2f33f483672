"""Short-lived access tokens (JWT, HS256) bound to a revocable device session.

An access token alone is never enough: each request also checks that its
session is still live, so revoking a session takes effect on the next request.
Refresh tokens are opaque ``<session id>.<secret>``; only a SHA-256 of the
secret is stored, and each use rotates it (a replayed old one revokes the session).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import jwt

from tocsin.core.errors import Unauthorized

ALGORITHM = "HS256"


def issue_access(key: bytes, *, user_id: int, session_id: str, ttl: int,
                 now: dt.datetime | None = None) -> tuple[str, int]:
    now = now or dt.datetime.now(dt.timezone.utc)
    claims = {
        "sub": str(user_id), "sid": session_id, "typ": "access",
        "iat": int(now.timestamp()), "exp": int(now.timestamp()) + ttl,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM), ttl


def decode_access(key: bytes, token: str) -> tuple[int, str]:
    """(user id, session id) of a valid token, or Unauthorized with the reason."""
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "sid", "typ"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("access token expired", code="token_expired") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("access token invalid", code="token_invalid") from None
    if claims.get("typ") != "access":
        raise Unauthorized("access token invalid", code="token_invalid")
    try:
        return int(claims["sub"]), str(claims["sid"])
    except (TypeError, ValueError):
        raise Unauthorized("access token invalid", code="token_invalid") from None


def new_refresh_secret() -> tuple[str, str]:
    """(secret to hand out, hash to store)."""
    secret = secrets.token_urlsafe(32)
    return secret, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
