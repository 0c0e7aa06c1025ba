"""Budgets for people without an invite, so that a flood of strangers holds up no client.

Strangers get crisis lines always (through the outbox, ahead of everything else). Everything
else they are sent — the invite greeting, "that code didn't work" — and every wrong invite
code they try (a disk write) comes out of a budget shared by all strangers; past it they are
not answered, and the bot logs once a minute that it is refusing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.telegram._recent import Recent

log = logging.getLogger(__name__)


@dataclass
class _Bucket:
    """A token bucket of ``per_minute`` tokens a minute, holding at most ``per_minute``."""

    per_minute: int
    clock: Callable[[], float]
    _tokens: float = -1.0
    _at: float = 0.0

    def take(self) -> bool:
        now = self.clock()
        if self._tokens < 0:
            self._tokens, self._at = float(self.per_minute), now
        self._tokens = min(float(self.per_minute),
                           self._tokens + (now - self._at) * self.per_minute / 60)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass
class StrangerGate:
    """What the bot may still do for strangers right now.

    Args:
        replies_per_minute: Replies to strangers (other than crisis lines), all together.
        codes_per_minute: Wrong invite codes recorded, all strangers together.
        greet_every_seconds: A stranger is greeted at most once in this time.
        clock: Monotonic seconds (injected in tests).
    """

    replies_per_minute: int
    codes_per_minute: int
    greet_every_seconds: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    _replies: _Bucket = field(init=False)
    _codes: _Bucket = field(init=False)
    _greeted: Recent[int, float] = field(default_factory=Recent)
    _refusing_since: float | None = None

    def __post_init__(self) -> None:
        self._replies = _Bucket(self.replies_per_minute, self.clock)
        self._codes = _Bucket(self.codes_per_minute, self.clock)

    def may_greet(self, user_id: int, *, asked: bool = False) -> bool:
        """Whether to send this stranger the invite greeting: once an hour, or whenever they
        ask for it (``/start``, ``/help``), within the shared budget."""
        last = self._greeted.get(user_id)
        if not asked and last is not None and self.clock() - last < self.greet_every_seconds:
            return False
        if not self.may_reply():
            return False
        self._greeted.put(user_id, self.clock())
        return True

    def may_reply(self) -> bool:
        """Whether one more non-crisis reply to a stranger fits the shared budget."""
        return self._allowed(self._replies.take(), "replies to people without an invite")

    def may_try_code(self) -> bool:
        """Whether one more invite code from a stranger may be checked and recorded."""
        return self._allowed(self._codes.take(), "invite codes")

    def _allowed(self, ok: bool, what: str) -> bool:
        now = self.clock()
        if ok:
            return True
        if self._refusing_since is None or now - self._refusing_since >= 60:
            self._refusing_since = now
            log.warning("too many %s from strangers: refusing for now (clients are unaffected)",
                        what)
        return False
