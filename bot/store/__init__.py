"""Persistence: the only package that speaks SQL.

`Store` is the narrow interface the rest of the bot uses; `SqliteStore` implements it.
"""

from bot.store._base import (
    CaseloadEntry,
    Commit,
    DueTimer,
    Invite,
    LedgerRecord,
    LedgerRow,
    OutboxRow,
    OutgoingMessage,
    Store,
    StoredAnswer,
    StoreError,
    Timer,
)
from bot.store._sqlite import SqliteStore

__all__ = [
    "CaseloadEntry",
    "Commit",
    "DueTimer",
    "Invite",
    "LedgerRecord",
    "LedgerRow",
    "OutboxRow",
    "OutgoingMessage",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoredAnswer",
    "Timer",
]
