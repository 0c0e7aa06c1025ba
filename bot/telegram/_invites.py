"""Invite codes: single-use, unguessable, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

#: 16 URL-safe characters: 96 bits of randomness, well past guessing.
CODE_BYTES = 12


def new_code() -> str:
    """A fresh invite code, safe in a ``t.me/<bot>?start=CODE`` link."""
    return secrets.token_urlsafe(CODE_BYTES)


def code_hash(code: str) -> str:
    """The stored form of a code (the code itself is never stored)."""
    return hashlib.sha256(code.strip().encode("utf-8", "replace")).hexdigest()
