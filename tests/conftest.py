"""Shared fixtures: real config, real scripts and texts, real databases, a fake Bot API server.

Nothing of our own is mocked: the engine, renderer, store and python-telegram-bot are the
real ones; only Telegram itself is replaced by :class:`tests.support.fake_bot_api.FakeBotApi`
on 127.0.0.1, and the clock by :class:`Clock` where a test needs to move time.

Backends: ``store`` and ``database`` are a SQLite file, unless a module is marked
``pytestmark = pytest.mark.backends``: then each of its tests that uses them runs twice, on
SQLite and on a real PostgreSQL server, each test in a schema of its own. The server is
``REHEARSE_TEST_POSTGRES_URL`` when set (a role that may create databases; each test
process then uses a database of its own), else a throwaway cluster each test process starts
when its first such test needs it, on a port of its own, and stops at its end
(``tests/support/postgres.py``). Without PostgreSQL those tests are skipped, saying why —
except in CI (``CI=true``), where Debian's ``postgresql`` is installed if missing (by the
run's background install, ``tests/support/debian.py``) and a test that cannot have it fails.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from bot.app import Loaded, build
from bot.config import Config, load_config
from bot.store import Store, store_for
from bot.telegram import Pacer, TelegramEdge
from tests.support import debian
from tests.support.fake_bot_api import FakeBotApi
from tests.support.postgres import Cluster, Unavailable, throwaway_cluster
from tests.support.telegram_client import Say

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("sqlite", "postgresql")
POSTGRES_URL_ENV = "REHEARSE_TEST_POSTGRES_URL"
#: The test database: one per test process (xdist's workers share a given server).
_TEST_DATABASE = f"rehearse_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def in_ci() -> bool:
    """Whether the tests run in CI, where nothing that needs PostgreSQL may be skipped."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers; in the run's first process, start installing missing Debian
    packages (CI only)."""
    config.addinivalue_line(
        "markers", "backends: run the module's store-using tests on SQLite and PostgreSQL")
    if not hasattr(config, "workerinput"):  # not one of xdist's workers
        debian.start_installing()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, each else in its order: xdist hands the tests out one at a
    time (``--maxschedchunk 1`` in pyproject.toml), so the long ones start on every worker at
    once instead of leaving one worker with the last of them while the others idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@dataclass(frozen=True)
class PostgresServer:
    """The PostgreSQL server of this test session.

    Attributes:
        url: A URL of the test database, for a role that may create schemas.
        database: The test database's name (this test process's own).
        cluster: The throwaway cluster, when this session started it (None for a server
            given by ``REHEARSE_TEST_POSTGRES_URL``): tests that restart the server need it.
    """

    url: str
    database: str
    cluster: Cluster | None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server with an empty test database (skipped when there is none, but
    never in CI)."""
    import psycopg  # noqa: PLC0415

    given = os.environ.get(POSTGRES_URL_ENV)
    with contextlib.ExitStack() as stack:
        try:
            cluster = None if given else stack.enter_context(throwaway_cluster())
            admin = given or cluster.url()  # type: ignore[union-attr]
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {_TEST_DATABASE} WITH (FORCE)")
                conn.execute(f"CREATE DATABASE {_TEST_DATABASE}")
        except (Unavailable, psycopg.OperationalError) as exc:
            reason = f"PostgreSQL is not available: {exc}"
            if in_ci():
                pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)", pytrace=False)
            pytest.skip(reason)
        yield PostgresServer(_with_database(admin, _TEST_DATABASE), _TEST_DATABASE, cluster)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {_TEST_DATABASE} WITH (FORCE)")


def _with_database(url: str, database: str) -> str:
    base, _, query = url.partition("?")
    root = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{root}/{database}" + (f"?{query}" if query else "")


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A URL whose ``search_path`` is a fresh, empty schema, dropped after the test."""
    import psycopg  # noqa: PLC0415

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    joiner = "&" if "?" in postgres_server.url else "?"
    yield f"{postgres_server.url}{joiner}options={quote(f'-c search_path={name}')}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend of the test: SQLite unless the module is marked ``backends``."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """``storage.database`` of a fresh database on the test's backend."""
    if backend == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "rehearse.db")


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


def make_config(
    db: Path | str, env: dict[str, str] | None = None, **overrides: object
) -> Config:
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
async def store(database: str) -> AsyncIterator[Store]:
    """A real store on a fresh database (a SQLite file unless the module is marked)."""
    async with store_for(database) as opened:
        yield opened


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotApi]:
    """A fake Bot API server on 127.0.0.1 with Telegram's rate limits off."""
    async with FakeBotApi() as api:
        yield api


def edge_config(api: FakeBotApi, db: Path | str, **overrides: object) -> Config:
    """Configuration pointing the bot at the fake server (token and URL from the env)."""
    env = {"TELEGRAM_BOT_TOKEN": api.token, "TELEGRAM_API_BASE_URL": api.base_url}
    overrides.setdefault("telegram", {"poll_timeout": 1})
    return make_config(db, env, **overrides)


@pytest.fixture
async def edge(
    fake_api: FakeBotApi, store: Store, loaded: Loaded, database: str
) -> AsyncIterator[TelegramEdge]:
    """The real bot (python-telegram-bot ``Application``) running against the fake server."""
    config = edge_config(
        fake_api, database, access={"mode": "allowlist", "allowlist": [1001, 1002]}
    )
    running = TelegramEdge(config, loaded, store, pacer=Pacer(per_chat=0, overall=0))
    await running.start()
    yield running
    await running.stop(drain_seconds=2)
