"""End to end: simulated clients walk the shipped scripts through the real bot, against a baseline.

Run ``python -m bench.bench_e2e`` (a few minutes) or ``python -m bench.bench_e2e --quick``
(a smoke run, < 30 s); ``--runs`` chooses some of the runs (comma-separated, in any order;
they run in this order): ``1``, ``10``, ``100`` (closed runs of that many clients, echo and
ours), ``paced`` (100 paced clients, echo and ours), ``shipped`` (the same clients, shipped
pacing), ``1000`` and ``idle`` (the memory check below); ``--quick`` has no ``100`` or
``1000``. The report shows only what ran. The parent process runs the fake Bot API server
(``tests.support.fake_bot_api``, Telegram's rate limits off) and the simulated clients; the bot
runs in a child process, as in production:

* **ours** — ``TelegramEdge`` on a ``SqliteStore`` in a temporary file (WAL,
  ``synchronous=FULL``: every update's state, ledger rows and outbox are durable before a
  reply goes out), logging at INFO to a file with token redaction installed, pacing off
  (``Pacer(per_chat=0, overall=0)``); **shipped** is the same bot with the shipped pacing
  (``sending``: a burst of 3 per chat, then 1 a second; 30 a second in all), run with the
  paced run's clients only, for how long a reply of several messages takes to arrive in full;
* **echo** — a plain python-telegram-bot ``Application`` with a ``concurrent_updates``
  limit of 512 (ours handles a polled batch concurrently): one ``MessageHandler`` that
  echoes a text and one ``CallbackQueryHandler`` that answers the query and replies, each
  reply carrying one button, so the same clients can drive it.

Each client (its own user id, allowlisted) starts with ``/start`` and reacts to the bot:
when a message with buttons arrives it presses one (the first, or "Done"/"Go on" where the
first would only toggle), when a message without buttons arrives and nothing follows within
``--text-gap`` ms it types a short answer. In the closed runs (1, 10, 100 and 1,000 clients)
its next input goes out as soon as its reply is complete; in the paced run (100 clients) it
first pauses 0.5–1.5 s, like someone reading. Measured per run: updates per second (all
clients' inputs / wall time), the latency from the moment the fake server queued a client's
update to the bot's first message in reply (p50, p99; each client's first two inputs left
out), the bot process's peak RSS and its CPU time per update; and for every reply of more
than one message, how long its last message trailed its first (p50, p99).

Afterwards (``idle``), in the child of the last run of ours (1,000 clients when all run):
RSS and Python's allocated blocks once they finished, then after 10,000 and after 20,000 more
clients started (``/start`` through Telegram and the service, the consent question, nothing
else) and went idle. The first 10,000 fill the edge's bounded caches of recent chats; over
the second 10,000 memory should not grow with idle clients.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import itertools
import json
import logging
import math
import os
import random
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.app import build
from bot.config import API_BASE_URL_ENV, TOKEN_ENV, load_config
from bot.store import SqliteStore
from bot.telegram import Pacer, TelegramEdge, install_token_redaction
from bot.telegram._edge import freeze_startup_objects
from bot.telegram._recent import RECENT_CHATS
from tests.support.bot_crash_child import exit_with_parent
from tests.support.fake_bot_api import FakeBotApi

ROOT = Path(__file__).resolve().parents[1]
FIRST_USER = 100_000
TEXTS = ("UTC", "19:00", "I like tea")
PREFERRED = ("Done", "Go on", "I said it", "I shared it", "Not much at all")
CONCURRENT_UPDATES = 512
PROFILE: Path | None = None  # set by --profile
_RUNS = itertools.count(1)
POLL_TIMEOUT = 10


# -- the bots (child process) ----------------------------------------------------------------

def _proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in kB."""
    values: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def _install_stats(stats: Path, extra: Callable[[], dict[str, int]]) -> None:
    """On SIGUSR1: collect garbage, then write memory figures to ``stats`` (JSON)."""

    def dump() -> None:
        gc.collect()
        figures = {**_proc_status(), "blocks": sys.getallocatedblocks(), **extra()}
        stats.with_suffix(".tmp").write_text(json.dumps(figures))
        stats.with_suffix(".tmp").replace(stats)

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)


def _logging(log: Path, token: str) -> None:
    """Production-like logging: INFO to a file, the token redacted."""
    install_token_redaction(token)
    logging.basicConfig(filename=log, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def _serve_ours(args: argparse.Namespace) -> None:
    config = load_config(None, {TOKEN_ENV: args.token, API_BASE_URL_ENV: args.base_url})

    def section(name: str, **values: object) -> object:
        return getattr(config, name).model_copy(update=values)

    allow = list(range(args.first, args.first + args.count))
    config = config.model_copy(update={
        "storage": section("storage", database=Path(args.db)),
        "access": section("access", mode="allowlist", allowlist=allow),
        "telegram": section("telegram", poll_timeout=POLL_TIMEOUT),
        "contract_defaults": section("contract_defaults", sessions_per_day=10),
    })
    loaded = build(config)
    async with SqliteStore(config.storage.database) as store:
        pacer = (Pacer.configured(config.sending) if args.serve == "shipped"
                 else Pacer(per_chat=0, overall=0))
        edge = TelegramEdge(config, loaded, store, pacer=pacer)
        _install_stats(Path(args.stats), lambda: {
            "admitted": len(edge.handlers._admitted),
            "keyboards": len(edge.sender._keyboards),
        })
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, edge.request_stop)
        await edge.start()
        freeze_startup_objects()  # as `rehearse run` does
        await edge.wait()
        await edge.stop()


async def _serve_echo(args: argparse.Namespace) -> None:
    counter = iter(range(10**12))

    def keyboard() -> InlineKeyboardMarkup:
        button = InlineKeyboardButton("Again", callback_data=f"e:{next(counter)}")
        return InlineKeyboardMarkup([[button]])

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(update.effective_message.text or "",
                                                  reply_markup=keyboard())

    async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and update.effective_chat is not None
        await query.answer()
        await context.bot.send_message(update.effective_chat.id, query.data or "",
                                       reply_markup=keyboard())

    app = (ApplicationBuilder().token(args.token).base_url(args.base_url)
           .concurrent_updates(CONCURRENT_UPDATES)
           .get_updates_read_timeout(POLL_TIMEOUT + 10).build())
    app.add_handler(MessageHandler(filters.TEXT, echo))
    app.add_handler(CallbackQueryHandler(answer))
    stop = asyncio.Event()
    _install_stats(Path(args.stats), dict)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=POLL_TIMEOUT)
        await stop.wait()
        await app.updater.stop()
        await app.stop()


def serve(args: argparse.Namespace) -> None:
    """The child process: run one bot until SIGTERM (under cProfile with ``--profile``)."""
    exit_with_parent()
    _logging(Path(args.log), args.token)
    run = _serve_echo if args.serve == "echo" else _serve_ours
    if not args.profile:
        asyncio.run(run(args))
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(run(args))
    finally:
        profiler.disable()
        profiler.dump_stats(f"{args.profile}-{args.serve}-{args.count}.prof")


# -- the clients (parent process) ------------------------------------------------------------

@dataclass
class Client:
    user: int
    inputs: int  # still to send
    sent_at: float | None = None  # when the latest input was queued, until its first reply
    reacted: tuple[int, str] | None = None  # the keyboard last pressed
    texts: int = 0
    sent: int = 0  # inputs sent so far
    gap: asyncio.TimerHandle | None = None
    done: bool = False
    reply: list[float] = field(default_factory=list)  # when each message of the reply came


@dataclass
class Run:
    """One measured run: figures of the clients and of the bot process."""

    bot: str
    clients: int
    paced: bool
    updates: int
    seconds: float
    latencies: list[float]
    peak_rss_kb: int
    cpu_seconds: float
    parent_cpu_seconds: float
    typed: int
    timeouts: int
    trails: list[float] = field(default_factory=list)
    #: Bot API requests the bot made during the run, by method.
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.updates / self.seconds

    def percentile(self, p: float, of: list[float] | None = None) -> float:
        ordered = sorted(self.latencies if of is None else of)
        if not ordered:
            return math.nan
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


@dataclass
class Harness:
    """Simulated clients driven by what the bot sends them."""

    api: FakeBotApi
    text_gap: float
    think: tuple[float, float] | None = None  # seconds a client pauses before each input
    random: random.Random = field(default_factory=lambda: random.Random(7))
    clients: dict[int, Client] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    trails: list[float] = field(default_factory=list)  # last message of a reply after its first
    updates: int = 0
    typed: int = 0  # inputs typed after a message without buttons (each after text_gap)
    timeouts: int = 0
    warmup: int = 2  # first inputs of each client left out of the latency figures
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def hook(self) -> None:
        """See every message the bot sends or edits, as the fake server handles it."""
        for method in ("sendmessage", "editmessagetext"):
            name, handler = self.api._methods[method]
            self.api._methods[method] = (name, self._watching(handler))

    def _watching(
        self, handler: Callable[[dict[str, Any]], Awaitable[Any]]
    ) -> Callable[[dict[str, Any]], Awaitable[Any]]:
        async def watched(params: dict[str, Any]) -> Any:
            result = await handler(params)
            client = self.clients.get(params.get("chat_id"))  # type: ignore[arg-type]
            if client is not None:
                self._on_message(client, params, result)
            return result

        return watched

    def start(self, users: Sequence[int], inputs: int) -> None:
        self.finished.clear()
        for user in users:
            self.api.add_user(user, "Bench")
            client = Client(user, inputs)
            self.clients[user] = client
            self._input(client, lambda u=user: self.api.send_text(u, "/start", first_name="Bench"))

    def _input(self, client: Client, send: Callable[[], Coroutine[Any, Any, int]]) -> None:
        if client.inputs <= 0:
            self._finish(client)
            return
        client.inputs -= 1
        if self.think is None:
            self._send(client, send)
        else:
            delay = self.random.uniform(*self.think)
            asyncio.get_running_loop().call_later(delay, self._send, client, send)

    def _send(self, client: Client, send: Callable[[], Coroutine[Any, Any, int]]) -> None:
        self._reply_done(client)
        client.sent += 1
        client.sent_at = time.perf_counter()
        self.updates += 1
        task = asyncio.get_running_loop().create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reply_done(self, client: Client) -> None:
        if len(client.reply) > 1:
            self.trails.append(client.reply[-1] - client.reply[0])
        client.reply.clear()

    def _finish(self, client: Client) -> None:
        self._reply_done(client)
        if not client.done:
            client.done = True
            if all(c.done for c in self.clients.values()):
                self.finished.set()

    def _on_message(self, client: Client, params: dict[str, Any], result: Any) -> None:
        client.reply.append(time.perf_counter())
        if client.sent_at is not None:
            if client.sent > self.warmup:
                self.latencies.append(time.perf_counter() - client.sent_at)
            client.sent_at = None
        if client.gap is not None:
            client.gap.cancel()
            client.gap = None
        markup = params.get("reply_markup") or {}
        rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
        if rows:
            buttons = [b for row in rows for b in row]
            chosen = next((b for b in buttons if b.get("text") in PREFERRED), buttons[0])
            data, message_id = chosen["callback_data"], result["message_id"]
            if client.reacted == (message_id, data):
                return
            client.reacted = (message_id, data)
            self._input(client, lambda: self.api.press_button(
                client.user, message_id, data, verify=False))
            return
        loop = asyncio.get_running_loop()
        client.gap = loop.call_later(self.text_gap, self._type, client)

    def _type(self, client: Client) -> None:
        client.gap = None
        text = TEXTS[client.texts % len(TEXTS)]
        client.texts += 1
        self.typed += 1
        self._input(client, lambda: self.api.send_text(client.user, text, first_name="Bench"))

    async def watchdog(self, stuck_after: float = 60.0) -> None:
        """Unstick a client whose input got no reply for a long time (counted, reported)."""
        while True:
            await asyncio.sleep(1.0)
            now = time.perf_counter()
            for client in self.clients.values():
                if client.sent_at is not None and now - client.sent_at > stuck_after:
                    self.timeouts += 1
                    client.sent_at = None
                    self._type(client)


# -- orchestration ---------------------------------------------------------------------------

def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


@dataclass
class Child:
    process: asyncio.subprocess.Process
    stats: Path

    async def memory(self) -> dict[str, int]:
        """Ask the bot for its memory figures (after a garbage collection)."""
        before = self.stats.stat().st_mtime_ns if self.stats.exists() else 0
        self.process.send_signal(signal.SIGUSR1)
        for _ in range(200):
            await asyncio.sleep(0.05)
            if self.stats.exists() and self.stats.stat().st_mtime_ns != before:
                figures: dict[str, int] = json.loads(self.stats.read_text())
                return figures
        raise RuntimeError("the bot did not report its memory")

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def start_bot(api: FakeBotApi, bot: str, workdir: Path, users: int) -> Child:
    """Start a bot in a child process, on a new database; return once it polls.

    Every run gets a new database: a new fake server numbers its updates from 1 again, and
    an old database would take them all for duplicates.
    """
    first = len(api.requests)
    name = f"{bot}-{users}-{next(_RUNS)}"
    stats = workdir / f"{name}.stats"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bench_e2e", "--serve", bot,
        "--db", str(workdir / f"{name}.db"), "--log", str(workdir / f"{bot}.log"),
        "--stats", str(stats), "--base-url", api.base_url, "--token", api.token,
        "--first", str(FIRST_USER), "--count", str(users),
        *(["--profile", str(PROFILE)] if PROFILE else []),
        cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
    )
    await api.wait_for(lambda: any(r.method == "getUpdates" for r in api.requests[first:]),
                       timeout=60)
    return Child(process, stats)


async def measure(bot: str, clients: int, inputs: int, text_gap: float, workdir: Path,
                  idle: int = 0, think: tuple[float, float] | None = None,
                  ) -> tuple[Run, dict[str, dict[str, int]]]:
    """One run of ``clients`` clients with ``inputs`` inputs each; idle clients afterwards."""
    memory: dict[str, dict[str, int]] = {}
    async with FakeBotApi() as api:
        harness = Harness(api, text_gap, think)
        harness.hook()
        child = await start_bot(api, bot, workdir, clients + idle)
        watchdog = asyncio.create_task(harness.watchdog())
        try:
            requests_before = len(api.requests)
            cpu_before = _cpu_seconds(child.process.pid)
            parent_before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            harness.start(range(FIRST_USER, FIRST_USER + clients), inputs)
            await harness.finished.wait()
            seconds = time.perf_counter() - started
            parent_after = resource.getrusage(resource.RUSAGE_SELF)
            run = Run(
                bot=bot, clients=clients, paced=think is not None, updates=harness.updates,
                seconds=seconds,
                latencies=list(harness.latencies),
                peak_rss_kb=_status(child.process.pid)["VmHWM"],
                cpu_seconds=_cpu_seconds(child.process.pid) - cpu_before,
                parent_cpu_seconds=(parent_after.ru_utime + parent_after.ru_stime
                                    - parent_before.ru_utime - parent_before.ru_stime),
                typed=harness.typed, timeouts=harness.timeouts, trails=list(harness.trails),
                requests=dict(Counter(r.method for r in api.requests[requests_before:])),
            )
            if idle:
                await asyncio.sleep(1.0)  # let the last sends finish
                memory["after_active"] = await child.memory()
                harness.think = None
                first, half = FIRST_USER + clients, idle // 2
                for key, users in (("after_half_idle", range(first, first + half)),
                                   ("after_idle", range(first + half, first + idle))):
                    harness.start(users, 1)
                    await harness.finished.wait()
                    await asyncio.sleep(1.0)
                    memory[key] = await child.memory()
        finally:
            watchdog.cancel()
            await child.stop()
    return run, memory


def _label(run: Run) -> str:
    return f"{run.clients} paced" if run.paced else str(run.clients)


def report(runs: list[Run], memory: dict[str, dict[str, int]], idle: int) -> None:
    """Print every run, our figures as ratios to the echo bot's, and the memory check."""
    print()
    print(f"{'clients':>10} {'bot':>5} {'updates':>8} {'typed':>6} {'upd/s':>7} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'peak RSS MB':>11} {'bot CPU ms/upd':>14} {'harness CPU ms/upd':>18}")
    for run in runs:
        print(f"{_label(run):>10} {run.bot:>5} {run.updates:>8} {run.typed:>6} {run.rate:>7.0f} "
              f"{run.percentile(50):>7.1f} {run.percentile(99):>7.1f} "
              f"{run.peak_rss_kb / 1024:>11.1f} {run.cpu_seconds / run.updates * 1000:>14.2f} "
              f"{run.parent_cpu_seconds / run.updates * 1000:>18.2f}"
              + (f"  ({run.timeouts} stuck inputs)" if run.timeouts else ""))
    by = {(r.bot, _label(r)): r for r in runs}
    pairs = [(by[("ours", label)], by[("echo", label)])
             for label in dict.fromkeys(_label(r) for r in runs)
             if ("ours", label) in by and ("echo", label) in by]
    if pairs:
        print()
        print(f"{'clients':>10} {'throughput vs echo':>19} {'CPU/upd vs echo':>16} "
              f"{'p50 added ms':>13} {'p99 added ms':>13}")
    for ours, echo in pairs:
        label = _label(ours)
        cpu = (ours.cpu_seconds / ours.updates) / (echo.cpu_seconds / echo.updates)
        print(f"{label:>10} {ours.rate / echo.rate:>19.2f} {cpu:>16.2f} "
              f"{ours.percentile(50) - echo.percentile(50):>13.1f} "
              f"{ours.percentile(99) - echo.percentile(99):>13.1f}")
    print()
    print(f"{'clients':>10} {'bot':>7} {'requests/upd':>12}  by method")
    for run in runs:
        per = {m: n / run.updates for m, n in sorted(run.requests.items(), key=lambda i: -i[1])}
        print(f"{_label(run):>10} {run.bot:>7} {sum(per.values()):>12.2f}  "
              + ", ".join(f"{m} {n:.2f}" for m, n in per.items()))
    for run in runs:
        if run.bot == "shipped":
            print(f"\nshipped pacing, {_label(run)} clients: {len(run.trails)} replies of "
                  f"several messages; the last trailed the first by "
                  f"{run.percentile(50, run.trails):.1f} ms (p50), "
                  f"{run.percentile(99, run.trails):.1f} ms (p99)")
    if memory:
        active, half, after = (memory[key] for key in ("after_active", "after_half_idle",
                                                       "after_idle"))
        host = next(run for run in reversed(runs) if run.bot == "ours")
        print()
        print(f"memory of ours (RSS, Python blocks) once the {_label(host)} clients of its last "
              f"run finished: {active['VmRSS'] / 1024:.1f} MB, {active['blocks']:,}")
        print(f"after {idle // 2:,} more clients started and went idle: "
              f"{half['VmRSS'] / 1024:.1f} MB, {half['blocks']:,}")
        print(f"after {idle:,}: {after['VmRSS'] / 1024:.1f} MB, {after['blocks']:,}; "
              f"in-memory caches: {after.get('admitted', 0):,} admitted ids, "
              f"{after.get('keyboards', 0):,} keyboard message ids")
        second = idle - idle // 2
        print(f"growth per idle client over the second {second:,}: "
              f"{(after['VmRSS'] - half['VmRSS']) * 1024 / second:+.0f} bytes RSS, "
              f"{(after['blocks'] - half['blocks']) / second:+.2f} Python blocks")


@dataclass(frozen=True, slots=True)
class Step:
    """One bot measured with one group of clients: part of the run named `run`."""

    run: str
    bot: str
    clients: int
    inputs: int  # per client
    think: tuple[float, float] | None = None  # the paced runs' pause before each input


READING = (0.5, 1.5)
"""Seconds a client of a paced run pauses before each input, like someone reading."""

RUN_NAMES = ("1", "10", "100", "paced", "shipped", "1000", "idle")
"""The runs ``--runs`` chooses from, in the order they run."""

QUICK_RUNS = ("1", "10", "paced", "shipped", "idle")
"""The runs ``--quick`` has (smaller)."""


def plan(quick: bool, runs: Collection[str]) -> list[Step]:
    """The steps of the chosen runs, in `RUN_NAMES` order (``idle`` is no step of its own:
    it follows the last step of ours, see `bench`)."""
    closed = ((("1", 1, 20), ("10", 10, 30)) if quick
              else (("1", 1, 100), ("10", 10, 150), ("100", 100, 30)))
    paced = 3 if quick else 15
    every = [Step(name, bot, clients, inputs)
             for name, clients, inputs in closed for bot in ("echo", "ours")]
    every += [Step("paced", "echo", 100, paced, READING),
              Step("paced", "ours", 100, paced, READING),
              Step("shipped", "shipped", 100, paced, READING)]
    if not quick:
        every += [Step("1000", bot, 1000, 8) for bot in ("echo", "ours")]
    return [step for step in every if step.run in runs]


async def bench(quick: bool, runs: Collection[str], text_gap: float, workdir: Path) -> None:
    """Run the chosen runs in order; the idle-memory check (``idle``) follows the last step
    of ours, in the same child process."""
    steps = plan(quick, runs)
    # 2 x 10,000: the first half fills the edge's caches of recent chats (RECENT_CHATS), so
    # the second shows what an idle client costs once they are full.
    idle = (300 if quick else 2 * RECENT_CHATS) if "idle" in runs else 0
    host = max((n for n, step in enumerate(steps) if step.bot == "ours"), default=None)
    measured: list[Run] = []
    memory: dict[str, dict[str, int]] = {}
    for n, step in enumerate(steps):
        run, found = await measure(step.bot, step.clients, step.inputs, text_gap, workdir,
                                   idle=idle if n == host else 0, think=step.think)
        measured.append(run)
        memory.update(found)
        print(f"{step.bot:>5} {_label(run):>10} clients: {run.updates} updates in "
              f"{run.seconds:.1f} s", flush=True)
    report(measured, memory, idle)


def _runs(text: str) -> frozenset[str]:
    """``--runs``: comma-separated run names."""
    names = frozenset(name.strip() for name in text.split(","))
    unknown = names - set(RUN_NAMES)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown run {', '.join(map(repr, sorted(unknown)))} "
                                         f"(choose from {', '.join(RUN_NAMES)})")
    return names


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (< 30 s)")
    parser.add_argument("--runs", type=_runs, default=None, metavar="RUN,RUN,...",
                        help=f"only these runs, of {', '.join(RUN_NAMES)} (default: all; "
                             f"--quick has {', '.join(QUICK_RUNS)}); idle needs a run of "
                             "ours (1, 10, 100, paced or 1000) to follow")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the database goes (default: a temporary directory)")
    parser.add_argument("--text-gap", type=float, default=30.0,
                        help="ms a client waits after a message without buttons before typing")
    parser.add_argument("--profile", type=Path, default=None,
                        help="profile the bots with cProfile into PROFILE-BOT-USERS.prof")
    parser.add_argument("--serve", choices=("ours", "shipped", "echo"), help=argparse.SUPPRESS)
    for hidden in ("--db", "--log", "--stats", "--base-url", "--token"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=FIRST_USER, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args)
        return
    runs = args.runs or frozenset(QUICK_RUNS if args.quick else RUN_NAMES)
    if args.quick and runs - set(QUICK_RUNS):
        parser.error(f"--quick has no run {', '.join(sorted(runs - set(QUICK_RUNS)))}")
    if "idle" in runs and not any(step.bot == "ours" for step in plan(args.quick, runs)):
        parser.error("idle measures the bot of the last run of ours: add 1, 10, 100, paced "
                     "or 1000")
    global PROFILE  # noqa: PLW0603 - one setting for the children this run starts
    PROFILE = args.profile.resolve() if args.profile else None
    with (tempfile.TemporaryDirectory(prefix="bench-e2e-", dir=args.dir) as tmp,
          contextlib.suppress(KeyboardInterrupt)):
        asyncio.run(bench(args.quick, runs, args.text_gap / 1000, Path(tmp)))


if __name__ == "__main__":
    main()
