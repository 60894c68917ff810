"""Kite login and the daily session: login URL, checksum, token file, session state.

The flow (MARKET_FACTS §5): the user opens :func:`login_url`, logs in with 2FA, and Kite
redirects to our callback with a single-use ``request_token``; ``POST /session/token`` with
:func:`checksum` (``SHA-256(api_key + request_token + api_secret)``, hex) returns the
``access_token`` (:meth:`~mental_trader.brokers.kite.rest.KiteRest.create_session`). The
token dies at 06:00 IST the next day (:func:`token_expiry`), or earlier on a logout.

:class:`TokenStore` keeps the token in one JSON file in the data directory, created with
owner-only permissions (0600) from its first byte and replaced atomically, so a crash
never leaves half a file and no other user can read it even briefly. An expired token
loads as absent. The token is held as a :class:`~pydantic.SecretStr`: reprs, logs and
exception messages never show it.

The file is tiny; its sync methods do microseconds of I/O (call them from a thread if the
data directory may sit on a slow network disk).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Final
from urllib.parse import urlencode

from pydantic import SecretStr

from mental_trader.calendar import IST
from mental_trader.errors import InvalidInputError
from mental_trader.models import require_aware

__all__ = [
    "LOGIN_URL",
    "TOKEN_FILE",
    "SessionState",
    "SessionStatus",
    "StoredToken",
    "TokenStore",
    "checksum",
    "login_url",
    "token_expiry",
]

log = logging.getLogger(__name__)

#: Kite's login page.
LOGIN_URL: Final = "https://kite.zerodha.com/connect/login"
#: The token file's name inside the data directory.
TOKEN_FILE: Final = "kite_session.json"
#: The IST time of day at which Kite expires every access token.
EXPIRY_TIME: Final = time(6, 0)


def login_url(api_key: str, *, base_url: str = LOGIN_URL) -> str:
    """The page where the user logs in: ``…/connect/login?api_key=<key>&v=3``.

    Raises:
        InvalidInputError: an empty api key.
    """
    if not api_key:
        raise InvalidInputError("login_url needs the API key")
    return f"{base_url}?{urlencode({'api_key': api_key, 'v': '3'})}"


def checksum(api_key: str, request_token: str, api_secret: str) -> str:
    """``SHA-256(api_key + request_token + api_secret)`` as lowercase hex (64 characters).

    Raises:
        InvalidInputError: an empty argument (the message names which, never the values).
    """
    for name, value in (
        ("api_key", api_key),
        ("request_token", request_token),
        ("api_secret", api_secret),
    ):
        if not value:
            raise InvalidInputError(f"checksum needs a non-empty {name}")
    return hashlib.sha256(f"{api_key}{request_token}{api_secret}".encode()).hexdigest()


def token_expiry(login_at: datetime) -> datetime:
    """When a token obtained at ``login_at`` expires: 06:00 IST of the next day, or of the
    same day for a login between 00:00 and 06:00 IST. Returned in IST.

    Raises:
        InvalidInputError: ``login_at`` is naive.
    """
    local = require_aware(login_at, "login_at").astimezone(IST)
    expiry = datetime.combine(local.date(), EXPIRY_TIME, tzinfo=IST)
    return expiry if local < expiry else expiry + timedelta(days=1)


class SessionStatus(StrEnum):
    """Whether we hold a usable Kite session."""

    LOGGED_IN = "logged_in"
    EXPIRED = "expired"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class SessionState:
    """The Kite session as ``/health`` reports it (no secret in it).

    Attributes:
        status: logged in, expired (a token file whose expiry passed) or missing.
        expires_at: when the token expires / expired (None when missing).
        login_at: when the token was obtained (None when missing).
        user_id: Kite's user id of the session ("" when unknown).
    """

    status: SessionStatus
    expires_at: datetime | None = None
    login_at: datetime | None = None
    user_id: str = ""


@dataclass(frozen=True, slots=True)
class StoredToken:
    """An access token with its times; the repr masks the token."""

    access_token: SecretStr
    api_key: str
    login_at: datetime
    expires_at: datetime
    user_id: str = ""

    def __post_init__(self) -> None:
        require_aware(self.login_at, "StoredToken.login_at")
        require_aware(self.expires_at, "StoredToken.expires_at")

    def is_valid(self, now: datetime) -> bool:
        """Whether the token has not yet expired at ``now`` (aware)."""
        return require_aware(now, "now") < self.expires_at


class TokenStore:
    """The access token in a file with owner-only permissions.

    Args:
        path: the token file (e.g. ``TokenStore.in_dir(settings.data_dir)``).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def in_dir(cls, data_dir: Path) -> TokenStore:
        """The store at ``data_dir / TOKEN_FILE``."""
        return cls(Path(data_dir) / TOKEN_FILE)

    def __repr__(self) -> str:
        return f"TokenStore({str(self.path)!r})"

    def save(
        self,
        access_token: str | SecretStr,
        *,
        api_key: str,
        login_at: datetime,
        user_id: str = "",
    ) -> StoredToken:
        """Write the token (expiry from :func:`token_expiry`), replacing any previous one.

        The file is written to a temporary sibling created 0600 (``O_EXCL``), synced, then
        renamed over the old one, so readers see the old or the new file, whole, and the
        token is never on disk with wider permissions.

        Raises:
            InvalidInputError: an empty token or naive ``login_at``.
            OSError: the data directory is not writable.
        """
        secret = access_token if isinstance(access_token, SecretStr) else SecretStr(access_token)
        if not secret.get_secret_value():
            raise InvalidInputError("cannot store an empty access token")
        stored = StoredToken(
            access_token=secret,
            api_key=api_key,
            login_at=require_aware(login_at, "login_at"),
            expires_at=token_expiry(login_at),
            user_id=user_id,
        )
        payload = json.dumps(
            {
                "access_token": secret.get_secret_value(),
                "api_key": api_key,
                "user_id": user_id,
                "login_at": stored.login_at.isoformat(),
                "expires_at": stored.expires_at.isoformat(),
            }
        ).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        done = False
        try:
            os.fchmod(fd, 0o600)  # the mode above is masked by umask, which only narrows it
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(tmp, self.path)
            done = True
        finally:
            if fd >= 0:
                os.close(fd)
            if not done:
                tmp.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)
        log.info("kite session stored (expires %s)", stored.expires_at.isoformat())
        return stored

    def read(self) -> StoredToken | None:
        """The stored token whether expired or not; None when there is no readable file.

        A file readable by others (copied in by hand) is narrowed to 0600 with a warning.
        A corrupt file is treated as absent (logged, never its content).
        """
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        try:
            mode = os.fstat(fd).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                log.warning("%s was readable by others; narrowing it to 0600", self.path)
                os.fchmod(fd, 0o600)
            with os.fdopen(fd, "rb") as f:
                fd = -1
                raw = json.loads(f.read())
            return StoredToken(
                access_token=SecretStr(str(raw["access_token"])),
                api_key=str(raw.get("api_key", "")),
                login_at=datetime.fromisoformat(raw["login_at"]),
                expires_at=datetime.fromisoformat(raw["expires_at"]),
                user_id=str(raw.get("user_id", "")),
            )
        except (ValueError, KeyError, TypeError, InvalidInputError):
            log.warning("%s is not a readable Kite session file; ignoring it", self.path)
            return None
        finally:
            if fd >= 0:
                os.close(fd)

    def load(self, now: datetime, *, api_key: str | None = None) -> StoredToken | None:
        """The stored token if still valid at ``now`` (and issued for ``api_key`` when
        given), else None: an expired token counts as absent."""
        stored = self.read()
        if stored is None or not stored.is_valid(now):
            return None
        if api_key is not None and stored.api_key != api_key:
            log.warning("stored Kite session belongs to another API key; ignoring it")
            return None
        return stored

    def state(self, now: datetime) -> SessionState:
        """The session state at ``now`` for ``/health``."""
        stored = self.read()
        if stored is None:
            return SessionState(SessionStatus.MISSING)
        status = SessionStatus.LOGGED_IN if stored.is_valid(now) else SessionStatus.EXPIRED
        return SessionState(status, stored.expires_at, stored.login_at, stored.user_id)

    def clear(self) -> None:
        """Delete the token file (after a logout or a TokenException); no error if absent."""
        self.path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    # Make the rename durable; some filesystems refuse to open a directory for this.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def utc_now() -> datetime:
    """The wall clock, aware UTC."""
    return datetime.now(UTC)
