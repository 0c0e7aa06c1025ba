"""``rehearse play``: the same engine and store, in a terminal.

Buttons appear as numbered options; type the number to press one (on a 0–10 rating, type
the rating itself). Every command works as in Telegram. ``--watch`` reloads the script when
its file changes and keeps the client's place where the step still exists.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot._files import write_private
from bot.app import Loaded, load_checked
from bot.engine import Button, Command, Event, Start, Text
from bot.render import plain_text
from bot.service import Handled, Rehearsal
from bot.store import Store

WATCH_INTERVAL = 1.0
TIMER_INTERVAL = 5.0


class Terminal:
    """A terminal session for one client.

    Args:
        service: The service the Telegram edge uses too.
        client: The client's name; the store key is ``term:NAME``.
        out: Where to print.
        clock: The current UTC time.
    """

    def __init__(self, service: Rehearsal, client: str, out: TextIO,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.service = service
        self.client_id = f"term:{client}"
        self.name = client
        self.out = out
        self.clock = clock
        self.buttons: list[tuple[str, str]] = []
        self._events = 0

    async def send(self, event: Event) -> Handled:
        """Handle one event and print whatever it produced."""
        self._events += 1
        event_id = f"term:{self.client_id}:{self.clock().isoformat()}:{self._events}"
        handled = await self.service.handle(self.client_id, event_id, event)
        await self.flush()
        if handled.export is not None:
            self._write_export(handled.export)
        if handled.erased:
            self.buttons = []
            self._print(self.service.engine.resources.texts.system(
                "delete.done", deleted_messages=0))
        return handled

    def event_for(self, line: str) -> Event:
        """Turn a typed line into an event: commands, numbered buttons or free text."""
        text = line.rstrip("\n")
        name = self.name
        if text.startswith("/") and len(text) > 1:
            command, _, args = text[1:].partition(" ")
            command = command.split("@")[0].lower()
            if command == "start":
                return Start(payload=args.strip() or None, display_name=name)
            return Command(name=command, args=args.strip(), display_name=name)
        choice = text.strip()
        numeric = all(label.strip().isdigit() for label, _ in self.buttons)
        if choice.isdigit() and self.buttons and not numeric:
            index = int(choice) - 1
            if 0 <= index < len(self.buttons):
                return Button(data=self.buttons[index][1], display_name=name)
        return Text(text=text, display_name=name)

    async def flush(self) -> None:
        """Print and clear every queued message of this client."""
        store = self.service.store
        for row in await store.pending_outbox(self.clock(), limit=1000):
            if row.client_id != self.client_id:
                continue
            self._show(row.payload)
            await store.mark_sent(row.id, self.clock())

    def _show(self, payload: dict[str, object]) -> None:
        text = str(payload.get("text", ""))
        rows = payload.get("buttons") or []
        assert isinstance(rows, list)
        self._print(text)
        flat = [(str(label), str(data)) for row in rows for label, data in row]
        if not flat:
            return
        self.buttons = flat
        if all(label.isdigit() for label, _ in flat):
            self._print("   (type a number from 0 to 10)")
            return
        for number, (label, _) in enumerate(flat, 1):
            self._print(f"   [{number}] {label}")

    def _print(self, text: str) -> None:
        self.out.write(plain_text(text) + "\n")
        self.out.flush()

    def _write_export(self, data: dict[str, object]) -> None:
        path = Path(f"rehearse-export-{self.name}.json")
        write_private(path, json.dumps(data, ensure_ascii=False, indent=2))
        self._print(f"   (your data was written to {path})")


async def play(loaded: Loaded, store: Store, client: str, *, watch: list[Path] | None = None,
               stdin: TextIO = sys.stdin, out: TextIO = sys.stdout,
               watch_interval: float = WATCH_INTERVAL) -> None:
    """Run an interactive terminal session until end of input.

    Args:
        loaded: Engine and scripts.
        store: An opened store.
        client: The client's name.
        watch: Script files to reload when they change (live preview).
        stdin: Where lines are read from.
        out: Where messages are printed.
        watch_interval: Seconds between two looks at the watched files.
    """
    service = Rehearsal(loaded.engine, store, lambda: datetime.now(UTC))
    terminal = Terminal(service, client, out)
    background = [asyncio.create_task(_fire_timers(terminal))]
    if watch:
        background.append(asyncio.create_task(_watch(loaded, watch, terminal, watch_interval)))
    try:
        await terminal.send(Start(display_name=client))
        while True:
            line = await asyncio.to_thread(stdin.readline)
            if not line:
                break
            await terminal.send(terminal.event_for(line))
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)


async def _fire_timers(terminal: Terminal) -> None:
    while True:
        await asyncio.sleep(TIMER_INTERVAL)
        if await terminal.service.fire_due_timers():
            await terminal.flush()


async def _watch(loaded: Loaded, files: list[Path], terminal: Terminal, interval: float) -> None:
    """Reload scripts when they or files beside them (includes) change.

    A script with errors keeps its last good version, so a typo never breaks the preview.
    """
    watched = {f for path in files for f in path.parent.glob("*.yaml")} | set(files)

    def stamp() -> dict[Path, float]:
        return {f: f.stat().st_mtime for f in watched if f.exists()}

    seen = stamp()
    while True:
        await asyncio.sleep(interval)
        now = stamp()
        if now == seen:
            continue
        seen = now
        scripts, findings = load_checked(files, loaded.renderer)
        for finding in findings:
            terminal.out.write(f"   ! {finding}\n")
        loaded.scripts.update(scripts)
        terminal.out.write(f"   (reloaded: {', '.join(sorted(scripts)) or 'nothing'})\n")
        terminal.out.flush()
