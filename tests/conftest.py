"""Shared fixtures: real config, real scripts and texts, real SQLite, a fake Bot API server.

Nothing of our own is mocked: the engine, renderer, store and python-telegram-bot are the
real ones; only Telegram itself is replaced by :class:`tests.support.fake_bot_api.FakeBotApi`
on 127.0.0.1, and the clock by :class:`Clock` where a test needs to move time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import Loaded, build
from bot.config import Config, load_config
from bot.store import SqliteStore
from bot.telegram import Pacer, TelegramEdge
from tests.support import debian
from tests.support.fake_bot_api import FakeBotApi
from tests.support.telegram_client import Say

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """In the run's first process: start installing missing Debian packages (CI only)."""
    if not hasattr(config, "workerinput"):  # not one of xdist's workers
        debian.start_installing()


@pytest.fixture(autouse=True, scope="session")
def _repo_root() -> Iterator[None]:
    """Run every test from the repository root, where ``scripts/`` and ``prompts/`` live."""
    previous = Path.cwd()
    os.chdir(ROOT)
    yield
    os.chdir(previous)


class Clock:
    """A clock the test moves by hand; starts on a quiet Wednesday morning (UTC)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move time forward, e.g. ``clock.advance(minutes=11)``."""
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A hand-moved clock."""
    return Clock()


def make_config(db: Path, env: dict[str, str] | None = None, **overrides: object) -> Config:
    """The default configuration with a test database and optional section overrides."""
    config = load_config(None, env or {})
    update: dict[str, object] = {"storage": config.storage.model_copy(update={"database": str(db)})}
    for section, values in overrides.items():
        assert isinstance(values, dict)
        update[section] = getattr(config, section).model_copy(update=values)
    copy = config.model_copy(update=update)
    return copy


@pytest.fixture(scope="session")
def loaded() -> Loaded:
    """Engine, renderer and every shipped script, built once from the default config."""
    result = build(load_config(None, {}))
    assert result.scripts, result.findings
    return result


@pytest.fixture
def say(loaded: Loaded) -> Say:
    """``say(key, **values)``: a system text exactly as the bot sends it."""

    def render(key: str, **values: object) -> str:
        return str(loaded.renderer.system(key, **values)).strip()

    return render


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A real SQLite store in a fresh file."""
    async with SqliteStore(tmp_path / "rehearse.db") as opened:
        yield opened


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotApi]:
    """A fake Bot API server on 127.0.0.1 with Telegram's rate limits off."""
    async with FakeBotApi() as api:
        yield api


def edge_config(api: FakeBotApi, db: Path, **overrides: object) -> Config:
    """Configuration pointing the bot at the fake server (token and URL from the env)."""
    env = {"TELEGRAM_BOT_TOKEN": api.token, "TELEGRAM_API_BASE_URL": api.base_url}
    overrides.setdefault("telegram", {"poll_timeout": 1})
    return make_config(db, env, **overrides)


@pytest.fixture
async def edge(
    fake_api: FakeBotApi, store: SqliteStore, loaded: Loaded, tmp_path: Path
) -> AsyncIterator[TelegramEdge]:
    """The real bot (python-telegram-bot ``Application``) running against the fake server."""
    config = edge_config(
        fake_api, tmp_path / "rehearse.db", access={"mode": "allowlist", "allowlist": [1001, 1002]}
    )
    running = TelegramEdge(config, loaded, store, pacer=Pacer(per_chat=0, overall=0))
    await running.start()
    yield running
    await running.stop(drain_seconds=2)
