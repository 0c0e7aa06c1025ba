"""Persistence: the only package that speaks SQL.

`Store` is the narrow interface the rest of the bot uses; `SqliteStore` implements it on a
file, `PostgresStore` (``bot.store._postgres``, needing the ``postgresql`` extra) on a server
shared by several workers. `store_for` picks one from ``storage.database``.
"""

from bot.store._base import (
    CaseloadEntry,
    Commit,
    DataRefused,
    DueTimer,
    Invite,
    LedgerRecord,
    LedgerRow,
    OutboxRow,
    OutgoingMessage,
    PlanRecord,
    QueuedUpdate,
    StaleState,
    Store,
    StoredAnswer,
    StoreError,
    Timer,
)
from bot.store._open import PASSWORD_ENV, database_problem, is_postgres, store_for
from bot.store._sqlite import SqliteStore

__all__ = [
    "PASSWORD_ENV",
    "CaseloadEntry",
    "Commit",
    "DataRefused",
    "DueTimer",
    "Invite",
    "LedgerRecord",
    "LedgerRow",
    "OutboxRow",
    "OutgoingMessage",
    "PlanRecord",
    "QueuedUpdate",
    "SqliteStore",
    "StaleState",
    "Store",
    "StoreError",
    "StoredAnswer",
    "Timer",
    "database_problem",
    "is_postgres",
    "store_for",
]
