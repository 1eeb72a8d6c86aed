"""Jupyter password hashing: argon2id with a random per-stack salt.

Jupyter Server writes `argon2:<PHC string>` (`passwd()`, argon2-cffi's PasswordHasher with
m=10240 KiB, t=10, p=8) and `passwd_check` verifies any argon2 PHC string with argon2-cffi.
PasswordHasher picks a fresh random salt on every call, which would change the uploaded
config and replace the notebook on every `pulumi up`; so the salt is made once per stack
(`python -m components.password salt`, done by `make up` and `make machine`), kept in the
stack config as `tfbox:passwordSalt`, and given to argon2-cffi's low-level API here. The
salt is random, never derived from the password: it is public, and learning it tells an
attacker nothing without running argon2id once per guess.
"""

from __future__ import annotations

import re
import secrets
import sys

# Jupyter Server's own cost (jupyter_server.auth.security.passwd); any stronger setting also verifies.
MEMORY_COST_KIB = 10240
TIME_COST = 10
PARALLELISM = 8
HASH_LEN = 32  # argon2-cffi's PasswordHasher default, as Jupyter's hashes have

MIN_PASSWORD_LENGTH = 12
SALT_BYTES = 16
_SALT_RE = re.compile(r"^[0-9a-zA-Z]{16,64}$")


def new_salt() -> str:
    """A random salt for a new stack: 128 bits as 32 hex digits (letters and digits only, YAML-safe)."""
    return secrets.token_hex(SALT_BYTES)


def valid_salt(salt: str) -> bool:
    """16 to 64 letters or digits: at least as long as argon2-cffi's own 16-byte salts."""
    return bool(_SALT_RE.match(salt))


def password_problem(password: str) -> str | None:
    """Why a user-chosen password is refused, or None; the message never contains the password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"is shorter than {MIN_PASSWORD_LENGTH} characters"
    return None


def hash_password(password: str, salt: str) -> str:
    """The `argon2:$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>` form Jupyter's `passwd_check` accepts.

    Deterministic for a given password and salt, so a second `up` uploads the same config.
    """
    if not password:
        raise ValueError("an empty password cannot be hashed")
    if not valid_salt(salt):
        raise ValueError("the salt must be 16 to 64 letters or digits")
    # imported here: the stack-file readers (scripts/affected-stacks.py in CI's `affected` job) run with PyYAML alone
    from argon2.low_level import Type, hash_secret

    encoded = hash_secret(
        password.encode("utf-8"), salt.encode("ascii"), time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB,
        parallelism=PARALLELISM, hash_len=HASH_LEN, type=Type.ID,
    )
    return "argon2:" + encoded.decode("ascii")


def main(argv: list[str] | None = None) -> int:
    """`python -m components.password salt`: print a new salt for `pulumi config set tfbox:passwordSalt`."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["salt"]:
        print("usage: python -m components.password salt   (prints a new random tfbox:passwordSalt)", file=sys.stderr)
        return 2
    print(new_salt())
    return 0


if __name__ == "__main__":
    sys.exit(main())
