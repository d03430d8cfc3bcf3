"""Engine and schema migration of the review store: PostgreSQL when configured, else an SQLite file."""

from __future__ import annotations

import contextlib
import functools
import json
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection

from ticket_triage.config import Settings
from ticket_triage.package_files import package_path

MIGRATIONS = package_path("ticket_triage.review", "migrations")
#: Execution option asking SQLite for ``BEGIN IMMEDIATE`` (write lock up front) instead of ``BEGIN``.
SQLITE_IMMEDIATE = "sqlite_immediate"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any fixed key: serialises concurrent `migrate` calls from several workers on one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x7472_6961_6765
#: JSON columns refuse NaN and infinities on every backend: PostgreSQL rejects them anyway, and a row that
#: SQLite took would fail every later read that answers in JSON. The writer dead-letters such a record.
_STRICT_JSON = functools.partial(json.dumps, allow_nan=False)
#: The SQLite file (and so its -wal and -shm files, which SQLite creates with the same mode) is private.
_FILE_MODE = 0o600
_DIR_MODE = 0o700


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    return f"sqlite+pysqlite:///{settings.database_file}"


def make_engine(settings_or_url: Settings | str) -> Engine:
    """SQLite: WAL (readers never wait for the writer), a busy timeout (writers queue instead of failing),
    foreign keys on, and transactions we open ourselves so a claim can take the write lock up front.
    PostgreSQL: pre-ping, so a connection the server dropped is replaced instead of failing a request."""
    url = settings_or_url if isinstance(settings_or_url, str) else database_url(settings_or_url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, json_serializer=_STRICT_JSON)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, json_serializer=_STRICT_JSON
    )
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).parent
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
            os.chmod(folder, _DIR_MODE)  # mkdir's mode is cut by the umask; make it exact

        @event.listens_for(engine, "do_connect")
        def _create_private(*_: Any) -> None:
            # Created here, at the first connection, rather than left to SQLite (which applies the
            # umask, usually leaving it world-readable). A missing folder stays an outage.
            _create_private_file(Path(database))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it would BEGIN lazily, deferred, and
        # upgrade to a write lock mid-transaction, which can deadlock and fail instead of waiting).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL mode; far fewer fsyncs
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _create_private_file(path: Path) -> None:
    # Already there, or its folder is gone (SQLite then fails to connect: an outage).
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE))


def alembic_config(connection: Connection | None = None) -> Config:
    """Built in code (no alembic.ini), so migrations run the same from a checkout or an installed wheel."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Upgrade to the newest revision; a database already there is left as it is."""
    with engine.execution_options(**{SQLITE_IMMEDIATE: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        command.upgrade(alembic_config(connection), "head")
