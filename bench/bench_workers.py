"""Scaling: 1, 2 and 4 workers on PostgreSQL against the single SQLite process.

Run ``python -m bench.bench_workers`` (a few minutes) or ``--quick`` (a smoke run). The
parent process runs the fake Bot API server (Telegram's rate limits off) and the simulated
clients of ``bench.bench_e2e`` (each presses a button of every message with buttons and
types a short answer after one without; the next input as soon as the reply is complete);
the bots run in child processes, as in production, started fresh for every run:

* **sqlite** — ``TelegramEdge`` polling, on a ``SqliteStore`` (WAL, ``synchronous=FULL``),
  the default deployment;
* **sqlite, webhook** — one ``QueuedEdge`` in webhook mode on the same store: what storing
  each update first and claiming it back costs, without PostgreSQL;
* **postgresql × N** — N ``QueuedEdge`` workers in webhook mode on one port (the kernel
  spreads Telegram's connections among them), each with its own connection pool, on one
  PostgreSQL server on the same machine, ``fsync`` on (``REHEARSE_BENCH_POSTGRES_URL`` to
  use another server; it must allow creating schemas).

Pacing is off in every bot (``Pacer(per_chat=0, overall=0)``): the figures are what the
bot itself can do; Telegram's own limit (about 30 messages a second per bot) is what caps a
real deployment, and docs/scaling.md reasons from both.

Measured per run: updates per second (all inputs / wall time), p50 and p99 latency from the
fake server queuing an input to the bot's first message in reply (each client's first two
inputs left out), CPU time per update of the bot processes together and of PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.bench_e2e import FIRST_USER, Harness, Run, _cpu_seconds, _logging
from bot.app import build, store_from
from bot.config import (
    API_BASE_URL_ENV,
    TOKEN_ENV,
    WEBHOOK_SECRET_ENV,
    WebhookConfig,
    load_config,
)
from bot.telegram import Pacer, QueuedEdge, TelegramEdge
from bot.telegram._edge import freeze_startup_objects
from tests.support.bot_crash_child import exit_with_parent
from tests.support.fake_bot_api import FakeBotApi
from tests.support.postgres import free_port, throwaway_cluster

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-of-the-webhook"
POSTGRES_URL_ENV = "REHEARSE_BENCH_POSTGRES_URL"


# -- the bots (child processes) --------------------------------------------------------------

async def _serve(args: argparse.Namespace) -> None:
    env = {TOKEN_ENV: args.token, API_BASE_URL_ENV: args.base_url, WEBHOOK_SECRET_ENV: SECRET}
    config = load_config(None, env)

    def section(name: str, **values: object) -> object:
        return getattr(config, name).model_copy(update=values)

    telegram: dict[str, object] = {"poll_timeout": 10}
    if args.port:
        telegram |= {"mode": "webhook", "webhook": WebhookConfig(
            url=f"http://127.0.0.1:{args.port}/updates", port=args.port, max_connections=100)}
    config = config.model_copy(update={
        "storage": section("storage", database=args.db),
        "access": section("access", mode="allowlist",
                          allowlist=list(range(args.first, args.first + args.count))),
        "telegram": section("telegram", **telegram),
        "contract_defaults": section("contract_defaults", sessions_per_day=10),
    })
    loaded = build(config)
    async with store_from(config) as store:
        edge_class = QueuedEdge if args.port else TelegramEdge
        edge = edge_class(config, loaded, store, pacer=Pacer(per_chat=0, overall=0))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, edge.request_stop)
        await edge.start()
        freeze_startup_objects()  # as `rehearse run` does
        await edge.wait()
        await edge.stop()


def serve(args: argparse.Namespace) -> None:
    """A child process: one bot, or one worker, until SIGTERM."""
    exit_with_parent()
    _logging(Path(args.log), args.token)
    asyncio.run(_serve(args))


# -- orchestration ---------------------------------------------------------------------------

@dataclass
class Postgres:
    """The server the PostgreSQL runs use; ``postmaster`` when this benchmark started it."""

    url: str
    postmaster: int | None

    def cpu_seconds(self) -> float:
        """The server's CPU time so far: the postmaster, its children gone and alive."""
        if self.postmaster is None:
            return 0.0
        total = _cpu_seconds(self.postmaster) + _children_cpu(self.postmaster)
        with open(f"/proc/{self.postmaster}/task/{self.postmaster}/children",
                  encoding="ascii") as listing:
            total += sum(_cpu_seconds(int(child)) for child in listing.read().split())
        return total

    def schema(self) -> str:
        """A URL whose search_path is a new, empty schema."""
        import psycopg  # noqa: PLC0415

        name = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        joiner = "&" if "?" in self.url else "?"
        return f"{self.url}{joiner}options=-csearch_path%3D{name}"


def _children_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    given = os.environ.get(POSTGRES_URL_ENV)
    if given:
        yield Postgres(given, None)
        return
    with throwaway_cluster(durable=True) as cluster:  # in the system's temporary folder
        pid = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
        yield Postgres(cluster.url(), pid)


async def start_bots(api: FakeBotApi, database: str, workers: int, users: int,
                     workdir: Path, port: int | None) -> list[asyncio.subprocess.Process]:
    """Start the bot (or its workers) and return once every one published its commands."""
    before = len(api.calls("setMyCommands"))
    processes = []
    for number in range(workers):
        processes.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.bench_workers", "--serve", "--db", database,
            "--log", str(workdir / f"bot-{number}.log"), "--base-url", api.base_url,
            "--token", api.token, "--first", str(FIRST_USER), "--count", str(users),
            *(["--port", str(port)] if port else []),
            cwd=ROOT, stdin=asyncio.subprocess.DEVNULL))
    await api.wait_for(lambda: len(api.calls("setMyCommands")) >= before + workers, timeout=90)
    return processes


async def stop_bots(processes: Sequence[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


@dataclass
class Measured:
    run: Run
    workers: int
    database_cpu: float


async def measure(backend: str, workers: int, clients: int, inputs: int, workdir: Path,
                  server: Postgres | None) -> Measured:
    """One closed-loop run of `clients` clients with `inputs` inputs each."""
    async with FakeBotApi() as api:
        harness = Harness(api, text_gap=0.03)
        harness.hook()
        if backend.startswith("sqlite"):
            database = str(workdir / f"bench-{uuid.uuid4().hex[:6]}.db")
            port = free_port() if backend == "sqlite+webhook" else None
        else:
            assert server is not None
            database, port = server.schema(), free_port()
        bots = await start_bots(api, database, workers, clients, workdir, port)
        watchdog = asyncio.create_task(harness.watchdog())
        try:
            cpu_before = sum(_cpu_seconds(p.pid) for p in bots)
            database_before = server.cpu_seconds() if server else 0.0
            started = time.perf_counter()
            harness.start(range(FIRST_USER, FIRST_USER + clients), inputs)
            await harness.finished.wait()
            seconds = time.perf_counter() - started
            run = Run(bot=backend, clients=clients, paced=False, updates=harness.updates,
                      seconds=seconds, latencies=list(harness.latencies), peak_rss_kb=0,
                      cpu_seconds=sum(_cpu_seconds(p.pid) for p in bots) - cpu_before,
                      parent_cpu_seconds=0.0, typed=harness.typed, timeouts=harness.timeouts)
            database_cpu = (server.cpu_seconds() - database_before) if server else 0.0
        finally:
            watchdog.cancel()
            await stop_bots(bots)
    return Measured(run, workers, database_cpu)


def report(results: list[Measured]) -> None:
    print()
    print(f"{'database':>14} {'workers':>7} {'clients':>7} {'updates':>7} {'upd/s':>6} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'bots CPU ms/upd':>15} {'db CPU ms/upd':>13}"
          f" {'vs sqlite':>9}")
    base = next((r.run.rate for r in results if r.run.bot == "sqlite"), None)
    for result in results:
        run = result.run
        ratio = f"{run.rate / base:.2f}" if base else "-"
        database_cpu = (f"{result.database_cpu / run.updates * 1000:.2f}"
                        if run.bot == "postgresql" else "-")
        print(f"{run.bot:>14} {result.workers:>7} {run.clients:>7} {run.updates:>7} "
              f"{run.rate:>6.0f} {run.percentile(50):>7.1f} {run.percentile(99):>7.1f} "
              f"{run.cpu_seconds / run.updates * 1000:>15.2f} {database_cpu:>13} {ratio:>9}"
              + (f"  ({run.timeouts} stuck inputs)" if run.timeouts else ""))


async def bench(quick: bool, clients: int, inputs: int, workdir: Path) -> None:
    if quick:
        clients, inputs = 6, 5
    plan = [("sqlite", 1), ("sqlite+webhook", 1),
            *(("postgresql", n) for n in ((2,) if quick else (1, 2, 4)))]
    results = []
    with postgres() as server:
        for backend, workers in plan:
            result = await measure(backend, workers, clients, inputs, workdir,
                                   server if backend == "postgresql" else None)
            results.append(result)
            print(f"{backend:>14} x{workers}: {result.run.updates} updates in "
                  f"{result.run.seconds:.1f} s", flush=True)
    report(results)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--inputs", type=int, default=15, help="inputs per client")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where databases go (default: a temporary directory)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--db", "--log", "--base-url", "--token"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=FIRST_USER, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args)
        return
    with (tempfile.TemporaryDirectory(prefix="bench-workers-", dir=args.dir) as tmp,
          contextlib.suppress(KeyboardInterrupt)):
        asyncio.run(bench(args.quick, args.clients, args.inputs, Path(tmp)))


if __name__ == "__main__":
    main()
