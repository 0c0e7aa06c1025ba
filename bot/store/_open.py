"""Choosing the backend: a ``postgresql://`` URL means PostgreSQL, anything else a SQLite file.

A password never belongs in the URL (it would sit in the configuration file, in shell
history and in process listings): it comes from the environment.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from bot.store._base import Store, StoreError
from bot.store._sqlite import SqliteStore

POSTGRES_SCHEMES = ("postgresql", "postgres")
#: The environment variable the PostgreSQL password is read from (libpq's own
#: ``PGPASSWORD`` and ``~/.pgpass`` work too).
PASSWORD_ENV = "REHEARSE_DATABASE_PASSWORD"


def is_postgres(database: str | Path) -> bool:
    """Whether ``storage.database`` names a PostgreSQL database (a URL) rather than a file."""
    return isinstance(database, str) and database.split(":", 1)[0].lower() in POSTGRES_SCHEMES \
        and "://" in database


def database_problem(database: str) -> str | None:
    """Why a ``storage.database`` value cannot be used, or None if it can.

    A SQLite path is checked when it is opened; a URL here: only ``postgresql://`` (or
    ``postgres://``), with a database name and without a password.
    """
    if not database.strip():
        return "must name a SQLite file or a postgresql:// URL"
    if "://" not in database:
        return None
    scheme = database.split("://", 1)[0].lower()
    if scheme not in POSTGRES_SCHEMES:
        return (f"names a `{scheme}://` URL, which is not supported: use a SQLite file path "
                "or a postgresql://user@host/database URL")
    try:
        parts = urlsplit(database)
        has_password = parts.password is not None
        query = parse_qs(parts.query)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as exc:
        return f"is not a valid PostgreSQL URL ({exc})"
    if has_password or "password" in {key.lower() for key in query}:
        return (f"must not contain a password: set the {PASSWORD_ENV} (or PGPASSWORD) "
                "environment variable instead")
    if not parts.path.strip("/"):
        return "must name the database, e.g. postgresql://rehearse@db.example/rehearse"
    return None


def store_for(
    database: str | Path,
    *,
    password: str | None = None,
    pool_size: int = 10,
    prepared_statements: bool = True,
    cleanup_retry: float = 5.0,
) -> Store:
    """The (unopened) store for a ``storage.database`` value.

    Args:
        database: A SQLite file, or a ``postgresql://`` URL without a password.
        password: The PostgreSQL password (from the environment), if any.
        pool_size: Most PostgreSQL connections of this process.
        prepared_statements: Whether psycopg may prepare statements (PostgreSQL).
        cleanup_retry: Seconds between clean-up passes that are held off.

    Raises:
        StoreError: The URL is not usable, or PostgreSQL support is not installed.
    """
    problem = database_problem(str(database))
    if problem is not None:
        raise StoreError(f"storage.database {problem}")
    if not is_postgres(database):
        return SqliteStore(database, cleanup_retry=cleanup_retry)
    url = str(database)
    try:
        from bot.store._postgres import PostgresStore  # noqa: PLC0415  (an optional driver)
    except ImportError:
        raise StoreError("PostgreSQL support is not installed: "
                         "python3 -m pip install -e '.[postgresql]'") from None
    return PostgresStore(url, password=password, pool_size=pool_size,
                         prepared_statements=prepared_statements, cleanup_retry=cleanup_retry)
