"""Passwords for the people's web pages: argon2id hashes, set by an admin, checked at sign-in.

Only the hash is stored (``passwords`` table); a password is never logged or
shown. A reset replaces the hash, which ends every session signed in with the
old one (:func:`fingerprint` is kept in the session). The region's identity
provider (OIDC) can replace this module: sign-in needs only "this person is
user X" (see docs/web.md).
"""

import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from schema.errors import InvalidRecord

from . import audit
from .errors import NotFound

__all__ = ["MIN_LENGTH", "set_password", "verify", "fingerprint"]

#: Shortest password accepted: a phrase, not a PIN.
MIN_LENGTH = 12
# argon2-cffi's defaults (RFC 9106's second recommended profile: 64 MiB, 3 passes).
_HASHER = PasswordHasher()
# Checked when no such user exists, so a wrong HSA-id takes as long as a wrong password.
_DUMMY = _HASHER.hash("no such user, no such password")


def set_password(store, user_id, password, admin):
    """Set (or reset) ``user_id``'s password as ``admin``; audited without the password."""
    user = store.get_user(user_id)
    if user is None:
        raise NotFound(f"no user {user_id}: give the id add-user printed", details={"user": [user_id]})
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise InvalidRecord(f"a password needs at least {MIN_LENGTH} characters: use a phrase of several words",
                            details={"password": ["too_short"]})
    with store.transaction():
        store.set_password_hash(user_id, _HASHER.hash(password))
        store.audit([audit.admin("set_password", {"user": user_id}, user=admin)])
    return user


def verify(store, hsa_id, password):
    """The user with this HSA-id and password, or None (the same time spent either way)."""
    wanted = (hsa_id or "").strip().upper()
    user = next((u for u in store.users() if (u.get("hsa_id") or "").upper() == wanted and wanted), None)
    stored = store.password_hash(user["id"]) if user else None
    try:
        _HASHER.verify(stored or _DUMMY, password or "")
    except (VerificationError, InvalidHashError):
        return None
    return user if stored else None


def fingerprint(store, user_id):
    """A short digest of the user's current hash: a session made before a reset no longer matches it."""
    stored = store.password_hash(user_id)
    return hashlib.sha256(stored.encode()).hexdigest()[:16] if stored else None
