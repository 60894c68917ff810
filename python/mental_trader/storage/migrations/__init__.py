"""Versioned schema migrations, one module per version, shared by both backends.

Each module defines ``VERSION``, ``NAME`` and ``STATEMENTS``: DDL written once with type
tokens that :func:`render` fills per dialect (``{TS}`` is ``timestamptz`` on PostgreSQL and
integer nanoseconds UTC on SQLite, ``{JSON}`` is ``jsonb`` or text, ...). A migration only
adds: it never drops or rewrites a table that holds data. The runner applies each pending
version in its own transaction together with its ``schema_version`` row, so a migration is
applied entirely or not at all, and running the runner twice is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from mental_trader.storage.migrations import v0001_market_data, v0002_trading

__all__ = ["MIGRATIONS", "Migration", "render"]

_TOKENS: dict[str, dict[str, str]] = {
    "sqlite": {
        "TS": "INTEGER",
        "JSON": "TEXT",
        "FLOAT": "REAL",
        "BIGINT": "INTEGER",
        "DATE": "TEXT",
        "WITHOUT_ROWID": "WITHOUT ROWID",
    },
    "postgresql": {
        "TS": "TIMESTAMPTZ",
        "JSON": "JSONB",
        "FLOAT": "DOUBLE PRECISION",
        "BIGINT": "BIGINT",
        "DATE": "DATE",
        "WITHOUT_ROWID": "",
    },
}


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version."""

    version: int
    name: str
    statements: tuple[str, ...]


def render(statement: str, dialect: str) -> str:
    """Fill the type tokens of a DDL statement for ``dialect`` ("sqlite" or "postgresql")."""
    return statement.format(**_TOKENS[dialect])


def _load(module: ModuleType) -> Migration:
    return Migration(int(module.VERSION), str(module.NAME), tuple(module.STATEMENTS))


#: Every migration, in version order (versions are 1, 2, 3, ... without gaps).
MIGRATIONS: tuple[Migration, ...] = tuple(_load(m) for m in (v0001_market_data, v0002_trading))
assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))

SCHEMA_VERSION_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
    "name TEXT NOT NULL, applied_at {TS} NOT NULL)"
)
