"""Jupyter password hashing with a stable salt.

Jupyter accepts `<algorithm>:<salt>:<hexdigest>` with hexdigest = H(password + salt).
A fresh random salt on every run would change the container's inputs and replace the
notebook on every `pulumi up`, so the salt is derived from the stack and the password
(or given in config); it is not a secret, only a guard against precomputed tables.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_SALT_RE = re.compile(r"^[0-9a-zA-Z]{8,64}$")


def derive_salt(password: str, scope: str) -> str:
    """A salt that stays the same for the same password in the same stack."""
    return hmac.new(scope.encode(), password.encode(), hashlib.sha256).hexdigest()[:16]


def valid_salt(salt: str) -> bool:
    return bool(_SALT_RE.match(salt))


def hash_password(password: str, salt: str, algorithm: str = "sha256") -> str:
    """The hashed form Jupyter's `PasswordIdentityProvider.hashed_password` takes."""
    if not password:
        raise ValueError("an empty password cannot be hashed")
    if not valid_salt(salt):
        raise ValueError("the salt must be 8 to 64 letters or digits")
    digest = hashlib.new(algorithm)
    digest.update(password.encode("utf-8") + salt.encode("ascii"))
    return f"{algorithm}:{salt}:{digest.hexdigest()}"


def check_password(hashed: str, password: str) -> bool:
    """Jupyter's check for the salted form (kept here so the tests can compare both)."""
    try:
        algorithm, salt, expected = hashed.split(":", 2)
        digest = hashlib.new(algorithm)
    except ValueError:
        return False
    digest.update(password.encode("utf-8") + salt.encode("ascii"))
    return hmac.compare_digest(digest.hexdigest(), expected)
