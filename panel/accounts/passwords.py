"""Mailbox passwords in a scheme Dovecot verifies: `{ARGON2ID}` (Argon2id through libsodium).

Dovecot 2.4 verifies `{ARGON2ID}$argon2id$v=19$m=...,t=...,p=...$salt$hash` with libsodium;
argon2-cffi writes exactly that encoding. One lane (p=1) is what libsodium computes fastest.
"""

import secrets
import string

from argon2 import PasswordHasher, Type
from django.core.exceptions import ValidationError

SCHEME = "{ARGON2ID}"
MIN_LENGTH = 10
MAX_LENGTH = 1024
TIME_COST = 3
MEMORY_COST_KIB = 64 * 1024

_hasher = PasswordHasher(
    time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=1, type=Type.ID
)
_ALPHABET = string.ascii_letters + string.digits


def check_password(password: str) -> None:
    """Raise ValidationError unless `password` can be stored and typed into mail clients."""
    if len(password) < MIN_LENGTH:
        raise ValidationError(f"must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        raise ValidationError(f"must be at most {MAX_LENGTH} characters long")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise ValidationError("must not contain control characters")


def hash_password(password: str) -> str:
    """The Dovecot password field for `password`, scheme prefix included."""
    check_password(password)
    return SCHEME + _hasher.hash(password)


def generate_password(length: int = 20) -> str:
    """A random password of letters and digits (about 119 bits for 20 characters)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


# A hash of a password nobody has, verified when there is no stored hash, so that a login to
# an unknown address takes as long as one to a known address.
_DUMMY = _hasher.hash(generate_password())


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches a stored `{ARGON2ID}` field; False for other schemes/None."""
    from argon2.exceptions import InvalidHashError, VerificationError

    if stored is None or not stored.startswith(SCHEME):
        stored_hash = _DUMMY
    else:
        stored_hash = stored.removeprefix(SCHEME)
    try:
        return _hasher.verify(stored_hash, password) and stored_hash is not _DUMMY
    except (VerificationError, InvalidHashError):
        return False
