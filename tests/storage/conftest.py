"""Store fixtures: every contract test runs on the real SQLite and the real PostgreSQL.

PostgreSQL is the machine's server (``MT_TEST_PG_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``); each test gets its own schema, dropped
afterwards, so runs never collide. With ``CI=true`` an unreachable server FAILS the run
instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from mental_trader.storage import Store, open_store

PG_URL = os.environ.get("MT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


async def pg_available() -> str | None:
    """None if the test server answers, else why not."""
    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def require_pg() -> None:
    """Skip (fail under CI=true) when the PostgreSQL test server is unreachable."""
    problem = await pg_available()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL test server {PG_URL} unreachable under CI: {problem}")
    pytest.skip(f"PostgreSQL test server unreachable: {problem}")


async def drop_schema(schema: str) -> None:
    """Drop a test schema and everything in it."""
    conn = await asyncpg.connect(PG_URL, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def pg_schema() -> str:
    """A fresh schema name for one test."""
    return f"mt_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=BACKENDS)
async def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_schema: str
) -> AsyncIterator[tuple[str, dict[str, object]]]:
    """(DATABASE_URL, backend options) of an empty database, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}", {}
        return
    await require_pg()
    try:
        yield PG_URL, {"schema": pg_schema}
    finally:
        await drop_schema(pg_schema)


@pytest.fixture
async def raw_store(store_url: tuple[str, dict[str, object]]) -> AsyncIterator[Store]:
    """A connected store on an empty database, not migrated."""
    url, options = store_url
    async with open_store(url, **options) as store:
        yield store


@pytest.fixture
async def store(raw_store: Store) -> Store:
    """A connected, migrated store on an empty database."""
    await raw_store.migrate()
    return raw_store
