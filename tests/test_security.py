"""Security: templates stay sandboxed, input stays data, secrets and files stay private.

* **Template sandbox:** escape attempts in a script (``''.__class__.__mro__``,
  ``cycler.__init__.__globals__``, ``include '/etc/passwd'``, ``|attr('__class__')``,
  ``range(10**9)|list`` and friends) are errors of ``rehearse check``, and none of them is
  ever executed (a canary command would leave a file; a huge range would take forever).
* **HTML injection:** a client called ``<b>x</b><a href="javascript:…">`` who types
  ``<script>`` sees those characters literally: what the fake Bot API server receives holds
  only their escaped forms and is valid Telegram HTML.
* **SQL metacharacters** (``'; DROP TABLE ledger; --``, ``%``, ``_``, quotes) in names, texts,
  button data, invite codes and client ids on the command line change nothing but what they
  should: tables, other clients and invites stay as they were; typed text is kept verbatim.
* **Invite codes:** ≥ 96 bits from ``secrets``, random-looking, stored only as a hash, and
  guessing is rate-limited per Telegram user.
* **Admin actions:** the therapist's Telegram commands answer only ``telegram.admins``;
  anyone else gets "unknown command", and nothing about another client.
* **The token** never appears in logs (with redaction installed, even with httpx at DEBUG and
  errors on the wire) or in a client's export.
* **Files:** the database, its ``-wal`` and ``-shm``, and ``rehearse play``'s export file are
  owner-only (0600).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import io
import json
import logging
import math
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import Loaded
from bot.cli import main as rehearse
from bot.engine import Start
from bot.service import Rehearsal
from bot.store import Invite, SqliteStore
from bot.telegram import Pacer, TelegramEdge, Waits, code_hash, install_token_redaction, new_code
from bot.telegram._invites import CODE_BYTES
from tests.conftest import edge_config
from tests.support.fake_bot_api import FakeBotApi, _HtmlError, _parse_html
from tests.support.telegram_client import opens

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "scripts"
REPLY_METHODS = ("sendmessage", "editmessagetext")
SQL = ("'; DROP TABLE ledger; --", "%", "_", "' OR '1'='1", '"; DELETE FROM clients; --',
       "tg:%", "\\'", "`", "--", "/*")


# -- helpers ---------------------------------------------------------------------------------

class ShiftedClock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@contextlib.asynccontextmanager
async def running_bot(
    api: FakeBotApi,
    loaded: Loaded,
    db: Path,
    clock: ShiftedClock | None = None,
    waits: Waits | None = None,
    **overrides: object,
) -> AsyncIterator[tuple[TelegramEdge, SqliteStore]]:
    """The real bot on a real store at ``db``, talking to ``api``."""
    config = edge_config(api, db, **overrides)
    async with SqliteStore(db) as store:
        edge = TelegramEdge(config, loaded, store, clock=clock or ShiftedClock(),
                            pacer=Pacer(per_chat=0, overall=0), waits=waits or Waits())
        await edge.start()
        try:
            yield edge, store
        finally:
            await edge.stop(drain_seconds=2)


def allowlist(*users: int) -> dict[str, object]:
    return {"mode": "allowlist", "allowlist": list(users)}


def sent_texts(api: FakeBotApi, chat: int | None = None) -> list[str]:
    """Every text the bot sent or edited in (a chat), as Telegram received it."""
    return [r.params.get("text", "") for r in api.requests
            if r.method.lower() in REPLY_METHODS
            and (chat is None or r.params.get("chat_id") == chat)]


async def settle(api: FakeBotApi, store: SqliteStore) -> None:
    """Until every update is confirmed and every queued message sent."""
    await api.wait_for(lambda: api.pending_updates == 0, timeout=10)
    horizon = datetime.now(UTC) + timedelta(days=30)
    for _ in range(400):
        if not await store.pending_outbox(horizon, 5):
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the outbox did not empty")


async def say(api: FakeBotApi, store: SqliteStore, user: int, text: str, **sender: Any) -> None:
    await api.send_text(user, text, **sender)
    await settle(api, store)


async def press(api: FakeBotApi, store: SqliteStore, user: int,
                prefer: tuple[str, ...] = ("Done",), label: str | None = None) -> bool:
    """Press a button of the latest keyboard: ``label``, else a preferred one, else the first."""
    shown = [m for m in api.messages(user) if not m.deleted]
    keyboard = (shown[-1].reply_markup or {}).get("inline_keyboard") if shown else None
    if not keyboard:
        return False
    buttons = [b for row in keyboard for b in row]
    wanted = [b for b in buttons if b["text"] == label] if label else []
    wanted = wanted or [b for b in buttons if b["text"] in prefer] or buttons
    await api.press_button(user, shown[-1].message_id, wanted[0]["callback_data"])
    await settle(api, store)
    return True


async def consent(api: FakeBotApi, store: SqliteStore, user: int, *, free_text: bool,
                  name: str = "Ada") -> None:
    """``/start`` and the consent questions: yes to all but reminders (and maybe free text)."""
    await say(api, store, user, "/start", first_name=name)
    for answer in ("I agree", "Yes", "Yes, please" if free_text else "No, thanks",
                   "No, thanks", "No, thanks", "No, thanks"):
        assert await press(api, store, user, label=answer), sent_texts(api, user)[-1:]


def raw_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file())


@contextlib.contextmanager
def read_only(db: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def tables(db: Path) -> list[tuple[str, str]]:
    with read_only(db) as conn:
        return conn.execute("SELECT type, name FROM sqlite_master ORDER BY name").fetchall()


def rows_of(db: Path, client: str) -> dict[str, list[tuple[Any, ...]]]:
    with read_only(db) as conn:
        return {table: conn.execute(f"SELECT * FROM {table} WHERE client_id = ?",
                                    (client,)).fetchall()
                for table in ("clients", "ledger", "inbox", "answers", "outbox", "timers")}


# -- template sandbox ----------------------------------------------------------------------

ESCAPES = {
    "mro": "{{ ''.__class__.__mro__ }}",
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "cycler-globals": "{{ cycler.__init__.__globals__ }}",
    "cycler-os": "{{ cycler.__init__.__globals__.os.system('touch CANARY') }}",
    "lipsum-os": "{{ lipsum.__globals__['os'].system('touch CANARY') }}",
    "self": "{{ self.__init__.__globals__ }}",
    "range-globals": "{{ range.__globals__ }}",
    "attr-class": "{{ ''|attr('__class__') }}",
    "attr-chain": "{{ (''|attr('__class__')|attr('__base__')|attr('__subclasses__'))() }}",
    "getitem-private": "{{ ''['__class__'] }}",
    "format": "{{ '{0.__class__}'.format('') }}",
    "include": "{% include '/etc/passwd' %}",
    "import": "{% import '/etc/passwd' as x %}",
    "extends": "{% extends '/etc/passwd' %}",
    "from-import": "{% from 'os' import system %}",
    "huge-range": "{{ range(10**9)|list }}",
    "huge-loop": "{% for i in range(10**5) %}{% for j in range(10**5) %}x{% endfor %}{% endfor %}",
    "huge-power": "{{ (10**10)**(10**10) }}",
    "huge-string": "{{ 'x' * 10**9 }}",
    "safe": "{{ '<b>'|safe }}",
    "autoescape-off": "{% autoescape false %}{{ name }}{% endautoescape %}",
    "macro": "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "recursive": "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}",
    "namespace": "{{ namespace.__init__.__globals__ }}",
    "config": "{{ config.items() }}",
    "request": "{{ request.application.__globals__ }}",
}


def _script_with(text: str) -> str:
    payload = json.dumps(text)  # a YAML double-quoted scalar
    return f"""script:
  id: security-escape
  title: Sandbox escape attempt
  version: 1
  author: Test
  level: 1
  summary: A template reaching outside the sandbox.
  calm: [calm-breath]
includes: [lib.yaml]
steps:
  - id: hello
    say: {payload}
  - id: done
    end: Done.
"""


@pytest.mark.parametrize("payload", ESCAPES.values(), ids=ESCAPES.keys())
def test_sandbox_escapes_are_check_errors_and_never_run(
    payload: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "lib.yaml").write_text((FIXTURES / "lib.yaml").read_text())
    script = tmp_path / "escape.yaml"
    script.write_text(_script_with(payload))
    monkeypatch.chdir(tmp_path)
    started = time.process_time()
    code = rehearse(["check", str(script), "--format", "json"])
    elapsed = time.process_time() - started
    out = capsys.readouterr().out
    findings = json.loads(out)
    errors = [f for f in findings if f["severity"] == "error" and f["file"].endswith("escape.yaml")]
    assert code == 1, out
    assert errors, out
    assert any(f["line"] == 12 for f in errors), errors  # the `say` line
    assert not (tmp_path / "CANARY").exists(), "the template ran a shell command"
    assert "root:" not in out, "a file outside the scripts was read"
    assert elapsed < 10, f"checking took {elapsed:.1f} s: something was evaluated"


# -- HTML injection ------------------------------------------------------------------------

EVIL_NAME = '<b>x</b><a href="javascript:alert(1)">y</a> & Co'
EVIL_TEXT = "<script>alert(1)</script> & <i>not italic</i> &lt; <tg-spoiler>"


async def test_names_and_free_text_reach_telegram_escaped_and_valid(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path
) -> None:
    api, user = fake_api, 4101
    async with running_bot(api, loaded, tmp_path / "bot.db", access=allowlist(user)) as (_, store):
        await consent(api, store, user, free_text=True, name=EVIL_NAME)
        # An exercise that echoes the client's words back ("You noticed: …").
        title = loaded.scripts["noticing-the-body"].meta.title[:40]
        assert await press(api, store, user, label=title)
        for _ in range(80):
            last = sent_texts(api, user)[-1]
            if "what did you notice about your body" in last.lower():
                await say(api, store, user, EVIL_TEXT, first_name=EVIL_NAME)
            elif "finished" in last.lower() and "noticing" in last.lower():
                break
            elif not await press(api, store, user, prefer=("Done", "Go on", "Not much at all")):
                await say(api, store, user, "ok", first_name=EVIL_NAME)
        # An exercise that greets the client by name ("Hi {{ name }}").
        await say(api, store, user, "/start", first_name=EVIL_NAME)
        assert await press(api, store, user, label=loaded.scripts["first-steps"].meta.title[:40])

    texts = sent_texts(api, user)
    joined = "\n".join(texts)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;i&gt;" in joined, "text not echoed"
    assert "&lt;b&gt;x&lt;/b&gt;&lt;a href=" in joined, "name not shown"
    for raw in ("<script", "<b>x</b>", "<a href", "<i>not", "<tg-spoiler>"):
        assert raw not in joined, f"{raw!r} reached Telegram unescaped"
    plain_texts = []
    for text in texts:
        try:
            plain, entities = _parse_html(text)
        except _HtmlError as exc:
            raise AssertionError(f"invalid Telegram HTML: {exc}: {text!r}") from None
        assert all(e["type"] != "text_link" for e in entities), text
        plain_texts.append(plain)
    shown = "\n".join(plain_texts)
    assert "<script>alert(1)</script> & <i>not italic</i>" in shown  # shown literally
    assert '<b>x</b><a href="javascript:alert(1)">y</a> & Co' in shown
    # Every send used HTML parse mode (no fallback to plain text after a 400).
    for request in api.requests:
        if request.method == "sendMessage":
            assert request.params.get("parse_mode") == "HTML"


# -- SQL metacharacters ----------------------------------------------------------------------

async def test_sql_metacharacters_in_every_input_change_nothing_else(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path
) -> None:
    api, db = fake_api, tmp_path / "bot.db"
    user, bystander, stranger = 4201, 4202, 4203
    async with running_bot(api, loaded, db, access=allowlist(user, bystander)) as (_, store):
        await consent(api, store, bystander, free_text=True)
        await consent(api, store, user, free_text=True, name=SQL[0])
        schema = tables(db)
        bystander_rows = rows_of(db, f"tg:{bystander}")

        # Names and texts at a free-text step, where the words are kept verbatim.
        assert await press(api, store, user,
                           label=loaded.scripts["noticing-the-body"].meta.title[:40])
        for _ in range(60):
            last = sent_texts(api, user)[-1].lower()
            if "what did you notice about your body" in last:
                break
            assert await press(api, store, user, prefer=("Done", "Go on", "Not much at all"))
        else:
            pytest.fail("never reached the free-text question")
        typed = " | ".join(SQL)
        await say(api, store, user, typed, first_name=SQL[1])
        for text in SQL:
            await say(api, store, user, text, first_name=SQL[2])
            await say(api, store, user, f"/{text}", first_name=text)
        # Forged button data and an invite code full of SQL, from a client and a stranger.
        message_id = api.messages(user)[-1].message_id
        for data in SQL:
            await api.press_button(user, message_id, data, verify=False)
            await api.press_button(user, message_id, f"99:{data}", verify=False)
        await settle(api, store)
        for text in SQL:
            await say(api, store, stranger, f"/start {text}", first_name=text)
        assert await store.list_invites() == []

        answers = [a.text for a in await store.answers(f"tg:{user}")]
        assert typed in answers, "the typed text was not kept verbatim"
        assert tables(db) == schema
        assert rows_of(db, f"tg:{bystander}") == bystander_rows
        assert await store.load_state(f"tg:{stranger}") is None
        with read_only(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            clients = [row[0] for row in conn.execute("SELECT client_id FROM clients")]
        assert sorted(clients) == [f"tg:{user}", f"tg:{bystander}"]


@pytest.mark.parametrize("client", [*SQL, "tg:4301' OR '1'='1", "tg:4301%", "tg:430_"])
def test_client_ids_on_the_command_line_are_only_ever_one_client(
    client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], loaded: Loaded
) -> None:
    db = tmp_path / "cli.db"

    async def seed() -> None:
        async with SqliteStore(db) as store:
            service = Rehearsal(loaded.engine, store, lambda: datetime.now(UTC))
            for number in (4301, 4302):
                await service.handle(f"tg:{number}", f"seed:{number}", Start())

    asyncio.run(seed())
    before = {c: rows_of(db, c) for c in ("tg:4301", "tg:4302")}
    for command in ("export", "ledger"):
        assert rehearse([command, "--db", str(db), "--", client]) == 1
    assert rehearse(["erase", "--yes", "--db", str(db), "--", client]) == 1
    out, err = capsys.readouterr()
    assert "4301" not in out and "4302" not in out
    assert f"no client {client}" in err
    assert {c: rows_of(db, c) for c in ("tg:4301", "tg:4302")} == before
    with read_only(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


# -- invite codes ----------------------------------------------------------------------------

def test_invite_codes_are_long_random_and_distinct() -> None:
    assert CODE_BYTES * 8 >= 96
    codes = [new_code() for _ in range(2000)]
    assert len(set(codes)) == len(codes)
    assert all(len(code) >= 16 for code in codes)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert all(set(code) <= set(alphabet) for code in codes)  # safe in a t.me link
    # Random-looking: every position uses the whole alphabet about evenly (chi-square,
    # 63 degrees of freedom; 140 is far beyond p = 0.0001, so this never flakes).
    for position in range(16):
        counts = collections.Counter(code[position] for code in codes)
        expected = len(codes) / 64
        chi2 = sum((counts.get(ch, 0) - expected) ** 2 / expected for ch in alphabet)
        assert chi2 < 140, (position, chi2)
    # No shared structure between consecutive codes.
    prefixes = collections.Counter(code[:3] for code in codes)
    assert prefixes.most_common(1)[0][1] < 10
    bits = len(codes[0]) * math.log2(64)
    assert bits >= 96


def test_the_invite_command_stores_only_a_hash_of_the_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    db = tmp_path / "invites.db"
    assert rehearse(["invite", "--script", "first-steps", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    code = out.split("code: ", 1)[1].split()[0]
    assert len(code) >= 16
    raw = raw_bytes(db)
    assert code.encode() not in raw, "the invite code itself is stored"
    with read_only(db) as conn:
        stored = [row[0] for row in conn.execute("SELECT code_hash FROM invites")]
    assert stored == [hashlib.sha256(code.encode()).hexdigest()] == [code_hash(code)]


async def test_guessing_invite_codes_is_rate_limited(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api, db, guesser = fake_api, tmp_path / "bot.db", 4401
    clock = ShiftedClock()
    code = new_code()
    async with running_bot(api, loaded, db, clock, access={"mode": "invite"}) as (edge, store):
        now = clock()
        await store.add_invite(Invite(code_hash=code_hash(code), script_id="first-steps",
                                      max_level=None, expires_at=now + timedelta(days=7),
                                      created_at=now))
        limit = edge.config.access.wrong_code_limit
        bad = loaded.renderer.system("access.bad_code").strip()
        too_many = loaded.renderer.system("access.too_many_codes").strip()
        for attempt in range(limit):
            await say(api, store, guesser, f"/start {new_code()}")
            assert sent_texts(api, guesser)[-1] == bad, attempt
        # Now even the right code is refused, without being tried (and stays unused).
        await say(api, store, guesser, f"/start {code}")
        assert sent_texts(api, guesser)[-1] == too_many
        assert [i.redeemed_at for i in await store.list_invites()] == [None]
        assert await store.load_state(f"tg:{guesser}") is None
        # Another Telegram user is not held back by the guesser.
        await say(api, store, guesser + 1, f"/start {new_code()}")
        assert sent_texts(api, guesser + 1)[-1] == bad
        # Once the window has passed, the right code works.
        clock.offset = timedelta(minutes=edge.config.access.wrong_code_window_minutes + 1)
        await say(api, store, guesser, f"/start {code}")
        assert sent_texts(api, guesser)[-1] != too_many
        assert await store.load_state(f"tg:{guesser}") is not None
        assert code.encode() not in raw_bytes(db)


# -- admin actions -------------------------------------------------------------------------

ADMIN_LOOKING = ("/invite first-steps", "/invite first-steps 5", "/clearhold tg:4502",
                 "/clearhold 4502", "/guardian 4502", "/outcomes 4502 on", "/export tg:4502",
                 "/ledger tg:4502", "/erase tg:4502", "/admin", "/clients", "/setlevel 4502 5",
                 "/broadcast hi")


async def test_clinician_commands_answer_admins_only(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path
) -> None:
    api, db = fake_api, tmp_path / "bot.db"
    client, other, admin = 4501, 4502, 4503
    access = allowlist(client, other)
    telegram = {"poll_timeout": 1, "admins": [admin]}
    async with running_bot(api, loaded, db, access=access, telegram=telegram) as (_, store):
        await consent(api, store, other, free_text=True, name="Secretname")
        await say(api, store, other, "I am the other client, qwertysecret")
        await consent(api, store, client, free_text=False)
        other_rows = rows_of(db, f"tg:{other}")
        unknown = loaded.renderer.system("unexpected.unknown_command").strip()
        for command in ADMIN_LOOKING:
            before = len(sent_texts(api, client))
            await say(api, store, client, command)
            replies = sent_texts(api, client)[before:]
            assert replies and opens(replies[0], unknown), (command, replies)
        told = "\n".join(sent_texts(api, client))
        assert "Secretname" not in told and "qwertysecret" not in told and "4502" not in told
        assert "start=" not in told, "a non-admin got an invite link"
        assert await store.list_invites() == []
        assert rows_of(db, f"tg:{other}") == other_rows

        # The same commands from the admin account do act (the check is not vacuous).
        before = len(api.calls("sendMessage"))
        await say(api, store, admin, "/invite first-steps")
        answer = [c["text"] for c in api.calls("sendMessage")[before:] if c["chat_id"] == admin]
        assert answer and "start=" in answer[-1]
        assert len(await store.list_invites()) == 1
        link_code = answer[-1].rsplit("start=", 1)[1].split()[0]
        assert link_code.encode() not in raw_bytes(db)


# -- the token -------------------------------------------------------------------------------

async def test_the_token_appears_in_no_log_and_no_export(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path
) -> None:
    api, db, user = fake_api, tmp_path / "bot.db", 4601
    token = api.token
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    undo = install_token_redaction(token)
    saved = {name: logging.getLogger(name).level for name in ("", "httpx", "httpcore", "telegram")}
    root.addHandler(handler)
    try:
        for name in saved:  # as talkative as it gets: even httpx's request URLs
            logging.getLogger(name).setLevel(logging.DEBUG)
        async with running_bot(api, loaded, db, access=allowlist(user),
                               sending={"backoff_seconds": [0.2]}) as (_, store):
            await consent(api, store, user, free_text=True)
            api.fail("sendMessage", status=500)  # errors on the wire, retried
            api.drop("sendMessage")
            api.fail("getUpdates", status=502)
            await say(api, store, user, "/help")
            await say(api, store, user, "/mydata")
            await say(api, store, user, "/progress")
            exported = json.dumps(await store.export(f"tg:{user}"))
    finally:
        root.removeHandler(handler)
        undo()
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    logs = stream.getvalue()
    assert "/bot<token>/getUpdates" in logs, "no request URL was logged: a vacuous test"
    assert token not in logs
    assert token.split(":")[1] not in logs
    assert token not in exported
    for request in api.requests:
        if request.method == "sendDocument":  # the /mydata file as Telegram received it
            assert token.encode() not in json.dumps(request.params, default=repr).encode()


def test_an_operator_export_holds_no_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    loaded: Loaded,
) -> None:
    token = "987654:SECRET-token-for-export"
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", token)
    db = tmp_path / "cli.db"

    async def seed() -> None:
        async with SqliteStore(db) as store:
            service = Rehearsal(loaded.engine, store, lambda: datetime.now(UTC))
            await service.handle("tg:4701", "seed", Start(display_name="Ada"))

    asyncio.run(seed())
    assert rehearse(["export", "tg:4701", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["client_id"] == "tg:4701"
    assert token not in out and "SECRET" not in out


# -- files -----------------------------------------------------------------------------------

@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


async def test_database_files_are_owner_only(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path
) -> None:
    api, user = fake_api, 4801
    db = tmp_path / "new-dir" / "bot.db"
    with umask(0o022):
        async with running_bot(api, loaded, db, access=allowlist(user)) as (_, store):
            await consent(api, store, user, free_text=True)
            files = {path.name: stat.S_IMODE(path.stat().st_mode)
                     for path in db.parent.iterdir()}
    assert {"bot.db", "bot.db-wal", "bot.db-shm"} <= set(files), files
    assert all(mode == 0o600 for name, mode in files.items() if name.startswith("bot.db")), files
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700


def _play(tmp_path: Path, lines: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    return subprocess.run(
        [sys.executable, "-c", "import os; os.umask(0o022); from bot.cli import main; "
         f"raise SystemExit(main(['play', '--as', 'ada', '--db', {str(tmp_path / 'p.db')!r}]))"],
        input=lines, capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={**env, "PYTHONPATH": str(ROOT)}, check=False,
    )


def test_the_play_export_is_owner_only(tmp_path: Path) -> None:
    done = _play(tmp_path, "/mydata\n")
    assert done.returncode == 0, done.stderr
    export = tmp_path / "rehearse-export-ada.json"
    assert export.exists(), done.stdout
    assert stat.S_IMODE(export.stat().st_mode) == 0o600
    assert json.loads(export.read_text())["client_id"] == "term:ada"
    for name in ("p.db", "p.db-wal", "p.db-shm"):
        if (tmp_path / name).exists():
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_the_play_export_tightens_an_existing_file(tmp_path: Path) -> None:
    export = tmp_path / "rehearse-export-ada.json"
    export.write_text("{}")
    export.chmod(0o644)
    done = _play(tmp_path, "/mydata\n")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(export.stat().st_mode) == 0o600


async def test_an_invite_with_an_impossible_level_is_refused(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path
) -> None:
    api, db, admin, client = fake_api, tmp_path / "bot.db", 4901, 4902
    telegram = {"poll_timeout": 1, "admins": [admin]}
    async with running_bot(api, loaded, db, access={"mode": "invite"},
                           telegram=telegram) as (_, store):
        for level in ("12", "45", "0", "-1", "3.5"):
            await say(api, store, admin, f"/invite first-steps {level}")
        assert all(i.max_level is None or 1 <= i.max_level <= 5
                   for i in await store.list_invites())
        links = [t for t in sent_texts(api, admin) if "start=" in t]
        for link in links:
            code = link.rsplit("start=", 1)[1].split()[0]
            await say(api, store, client, f"/start {code}")
            await say(api, store, client, "/help")
            raw = await store.load_state(f"tg:{client}")
            assert raw is not None
            assert 1 <= int(raw["contract"]["max_level"]) <= 5  # type: ignore[index]


async def test_an_update_that_always_fails_does_not_hold_up_everyone(
    fake_api: FakeBotApi, loaded: Loaded, tmp_path: Path
) -> None:
    api, db, admin, client = fake_api, tmp_path / "bot.db", 4911, 4912
    telegram = {"poll_timeout": 1, "admins": [admin]}
    # Every wait after a failure is a minute long: had the failing update held the others up
    # behind a backoff or a refetch, the client's replies would not come within 10 s.
    minute = Waits(poll_backoff=(60.0,), refetch_after_failure=60.0)
    async with running_bot(api, loaded, db, waits=minute, access=allowlist(client),
                           telegram=telegram) as (_, store):
        await consent(api, store, client, free_text=False)
        await api.send_text(admin, "/clearhold ²")
        await asyncio.sleep(0.5)
        for _ in range(3):
            before = len(sent_texts(api, client))
            await api.send_text(client, "/help")
            await api.wait_for(lambda b=before: len(sent_texts(api, client)) > b, timeout=10)
        await api.wait_for(lambda: api.pending_updates == 0, timeout=30)
