"""Workers of the real bot in child processes (``tests.support.worker_child``), for tests that
kill them: start one, wait until it is up, kill it with SIGKILL or stop it with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from bot.config import WEBHOOK_SECRET_ENV
from tests.support.fake_bot_api import FakeBotApi

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-token_for-the-webhook"


@dataclass
class Worker:
    """One worker process."""

    process: asyncio.subprocess.Process
    log: Path

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> int:
        """SIGTERM, and wait for the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.process.wait()

    def tail(self, size: int = 3000) -> str:
        """The end of the worker's log."""
        return self.log.read_bytes()[-size:].decode("utf-8", "replace") if self.log.exists() \
            else ""


async def start_worker(
    api: FakeBotApi, database: str, log: Path, allow: tuple[int, ...], *,
    port: int | None = None, claim: float = 3.0, leader: float = 3.0,
) -> Worker:
    """Start a worker and wait until it published its commands (it is then up).

    Args:
        api: The fake Bot API.
        database: A SQLite file or a PostgreSQL URL.
        log: Where its stderr goes (appended).
        allow: The allowlisted users.
        port: Webhook mode on this port; None: polling.
        claim: Its claims' lease, seconds.
        leader: Its leader lease, seconds.
    """
    [worker] = await start_workers(api, database, [log], allow, port=port, claim=claim,
                                   leader=leader)
    return worker


async def start_workers(
    api: FakeBotApi, database: str, logs: list[Path], allow: tuple[int, ...], *,
    port: int | None = None, claim: float = 3.0, leader: float = 3.0,
) -> list[Worker]:
    """Start a worker per log at once (see `start_worker`); return once all are up."""
    before = len(api.calls("setMyCommands"))
    arguments = ["--db", database, "--base-url", api.base_url, "--token", api.token,
                 "--allow", ",".join(map(str, allow)), "--claim", str(claim),
                 "--leader", str(leader)]
    if port is not None:
        arguments += ["--webhook-port", str(port)]
    workers = []
    for log in logs:
        with log.open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.support.worker_child", *arguments,
                cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr, env={**os.environ, WEBHOOK_SECRET_ENV: SECRET})
        workers.append(Worker(process, log))

    def up() -> bool:
        exited = any(worker.process.returncode is not None for worker in workers)
        return exited or len(api.calls("setMyCommands")) >= before + len(workers)

    try:
        await api.wait_for(up, timeout=60)
    except TimeoutError:
        for worker in workers:
            worker.kill()
            await worker.process.wait()
        raise AssertionError("the workers did not start:\n"
                             + "\n".join(worker.tail() for worker in workers)) from None
    for worker in workers:
        if worker.process.returncode is not None:
            raise AssertionError(f"a worker exited with {worker.process.returncode}:\n"
                                 f"{worker.tail()}")
    return workers
