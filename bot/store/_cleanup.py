"""Clean-up of the database files in the background, retried until it succeeds.

Deleting a row removes it from every query at once; old copies of it can remain in the files
(free space, old WAL frames) until a clean-up pass removes them, and another connection that
is reading (a backup, an export) can hold that pass off for as long as it reads. So a pass
is asked for, tried at once or after a short delay, and tried again every few seconds until
it succeeds; nobody waits for it unless they ask to (`settled`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

_LOG = logging.getLogger(__name__)


class Cleanup:
    """Runs `attempt` when a clean-up is owed, and again every `retry` seconds while it fails.

    Args:
        attempt: One pass; True when the files hold no old copy of anything deleted.
        retry: Seconds between passes while they fail.
    """

    def __init__(self, attempt: Callable[[], Awaitable[bool]], retry: float) -> None:
        self._attempt = attempt
        self._retry = retry
        self._due: float | None = None  # loop time of the next pass; None: nothing owed
        self._running = 0
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task (in the running event loop)."""
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="store-cleanup")

    async def stop(self) -> None:
        """Stop the background task; a pass still owed stays owed."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def owed(self) -> bool:
        """Whether a pass is owed or running."""
        return self._due is not None or self._running > 0

    def request(self, delay: float = 0.0) -> None:
        """Owe a pass within `delay` seconds (an earlier one already owed stands)."""
        due = asyncio.get_running_loop().time() + delay
        if self._due is None or due < self._due:
            self._due = due
            self._wake.set()

    async def now(self) -> bool:
        """Run a pass at once; if it fails, the background task retries it."""
        self._due = None
        self._running += 1
        try:
            done = await self._attempt()
        except Exception:
            _LOG.exception("cleaning up the database files failed; trying again")
            done = False
        finally:
            self._running -= 1
        if not done:
            self.request(self._retry)
        self._changed.set()
        return done

    async def settled(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait up to `timeout` seconds until no pass is owed; return whether none is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.owed:
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            if self._due is None:
                await self._wake.wait()
                continue
            delay = self._due - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            await self.now()
