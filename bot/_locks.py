"""Per-key FIFO locks that are dropped once nobody holds or waits for them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    owner: asyncio.Task[object] | None = None


class KeyedLocks:
    """One :class:`asyncio.Lock` per key (e.g. per client), created on demand.

    Waiters are served in arrival order, so events of one key keep their order; the lock
    is forgotten when its last user leaves, so memory stays flat in the number of keys. The
    task holding a key may hold it again (the Telegram edge holds a client's turn for the
    whole update, and the service's ``handle`` inside it takes the same turn).
    """

    def __init__(self) -> None:
        self._locks: dict[Hashable, _Entry] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        """Hold the lock of ``key`` for the duration of the ``async with`` block."""
        task = asyncio.current_task()
        entry = self._locks.get(key)
        if entry is not None and task is not None and entry.owner is task:
            yield  # already this task's
            return
        if entry is None:
            entry = self._locks[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                entry.owner = task
                try:
                    yield
                finally:
                    entry.owner = None
        finally:
            entry.users -= 1
            if not entry.users:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)

    def __contains__(self, key: Hashable) -> bool:
        """Whether anyone holds or waits for the lock of ``key``."""
        return key in self._locks
