"""Update processing: strictly in order per client, concurrently across clients."""

from __future__ import annotations

from collections.abc import Awaitable

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from bot._locks import KeyedLocks


class PerClientProcessor(BaseUpdateProcessor):
    """Runs each client's updates one at a time, in arrival order (FIFO locks).

    Different clients are processed concurrently, so their store commits can share one
    transaction (group commit).
    """

    def __init__(self, max_concurrent_updates: int = 512) -> None:
        super().__init__(max_concurrent_updates)
        self._locks = KeyedLocks()

    async def do_process_update(self, update: object, coroutine: Awaitable[object]) -> None:
        """Process an update once earlier updates of the same client are done."""
        key = 0
        if isinstance(update, Update) and update.effective_user is not None:
            key = update.effective_user.id
        async with self._locks.hold(key):
            await coroutine

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""
