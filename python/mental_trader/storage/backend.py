"""What a storage backend supplies: a connection per transaction and its column types.

:class:`Backend` is the part of :class:`~mental_trader.storage.base.Store` that SQLite and
PostgreSQL implement differently; the shared operations (``base.py`` and ``trading.py``) are
written once on top of it, in SQL both accept.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from typing import Any, Protocol, Self

__all__ = ["Backend", "Conn"]


class Conn(Protocol):
    """The slice of a database connection the shared operations use.

    SQL uses ``$1``-style placeholders; rows are indexed by position.
    """

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement."""

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement per parameter row."""

    async def fetch(self, sql: str, *args: Any) -> list[Sequence[Any]]:
        """Run a query and return every row."""

    async def fetchrow(self, sql: str, *args: Any) -> Sequence[Any] | None:
        """Run a query and return its first row, or None."""


class Backend(abc.ABC):
    """The backend primitives of a store (see the module docstring)."""

    #: ``"sqlite"`` or ``"postgresql"``.
    backend: str = ""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection(s). Does not migrate: call :meth:`migrate`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection(s). Safe to call twice."""

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        """A connection inside one transaction: committed on exit, rolled back on error."""

    def read(self) -> AbstractAsyncContextManager[Conn]:
        """A connection for reads (by default a transaction; backends may make it lighter)."""
        return self.transaction()

    @abc.abstractmethod
    def _ts(self, value: datetime) -> Any:
        """An aware datetime → the backend's time column value."""

    @abc.abstractmethod
    def _ts_ns(self, ns: int) -> Any:
        """int ns UTC → the backend's time column value."""

    @abc.abstractmethod
    def _dt(self, raw: Any) -> datetime:
        """The backend's time column value → aware UTC datetime."""

    @abc.abstractmethod
    def _dt_ns(self, raw: Any) -> int:
        """The backend's time column value → int ns UTC."""

    @abc.abstractmethod
    def _json(self, value: Mapping[str, Any]) -> Any:
        """A JSON object → the backend's JSON column value."""

    @abc.abstractmethod
    def _unjson(self, raw: Any) -> dict[str, Any]:
        """The backend's JSON column value → dict."""

    @abc.abstractmethod
    def _date(self, value: date | None) -> Any:
        """A date → the backend's date column value."""

    @abc.abstractmethod
    def _undate(self, raw: Any) -> date | None:
        """The backend's date column value → date."""

    @abc.abstractmethod
    async def schema_version(self) -> int:
        """The highest migration applied (0 for an empty database)."""

    @abc.abstractmethod
    async def migrate(self, target: int | None = None) -> list[int]:
        """Apply pending migrations up to ``target`` (all by default); return those applied.

        Serialised against concurrent migrators; running it twice is a no-op.
        """

    @abc.abstractmethod
    async def ping(self) -> None:
        """Round-trip to the database; raise ``StorageError(retryable=True)`` if it is down."""

    # ----------------------------------------------------------------- context manager

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
