"""API authentication: the bearer token, where it comes from, and where the API may bind.

Every endpoint except ``/health``, ``/kite/callback`` (Kite's login redirect, which
cannot carry our token) and the documentation pages ``/docs`` and ``/openapi.json``
(which hold no data) requires ``Authorization: Bearer <token>``.

The token is ``API_TOKEN`` when set. Otherwise, like Jupyter, the service makes one:
:func:`resolve_api_token` generates it on the first start, keeps it in
``<DATA_DIR>/api_token`` (mode 0600) and reuses it on later starts, and tells the caller it
was new so the CLI can print it once. It is never logged.

A generated token only guards a loopback API: :func:`check_bind` refuses a non-loopback
address unless ``API_TOKEN`` is configured, because a file-only token is easily lost track
of, and anyone on the network could otherwise try it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mental_trader.api.deps import ContextDep
from mental_trader.config import Settings, is_loopback
from mental_trader.errors import ConfigError

__all__ = [
    "TOKEN_FILE_NAME",
    "check_bind",
    "is_loopback",
    "require_token",
    "resolve_api_token",
    "token_path",
]

log = logging.getLogger(__name__)

#: The token file's name inside ``DATA_DIR``.
TOKEN_FILE_NAME = "api_token"
# secrets.token_urlsafe(32) gives 43 such characters; a shorter file is not one of ours.
_FILE_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,256}")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted there must not hang start-up
_REALM = 'Bearer realm="mental-trader"'


def token_path(settings: Settings) -> Path:
    """Where the generated token is kept: ``<DATA_DIR>/api_token``."""
    return settings.data_dir / TOKEN_FILE_NAME


def resolve_api_token(settings: Settings) -> tuple[str, bool]:
    """The bearer token the API requires, generating and storing one if none is configured.

    With ``API_TOKEN`` set, that is the token (no file is read or written). Otherwise the
    token in ``<DATA_DIR>/api_token`` is reused if the file is a regular file of ours,
    readable by nobody else, holding a well-formed token; if not, a new token
    (``secrets.token_urlsafe(32)``) replaces it, written atomically with mode 0600.

    Blocking file I/O: call it at start-up, not from a running event loop's hot path.

    Args:
        settings: supplies ``api_token`` and ``data_dir``.

    Returns:
        ``(token, generated)``: ``generated`` is True when the token was made by this call,
        so the caller should show it to the operator once. Never log it.

    Raises:
        ConfigError: the token file cannot be written.
    """
    if settings.api_token is not None:
        return settings.api_token.get_secret_value(), False
    path = token_path(settings)
    token = _read_token_file(path)
    if token is not None:
        return token, False
    token = secrets.token_urlsafe(32)
    _write_token_file(path, token)
    log.info("generated a new API token in %s (the CLI shows it once)", path)
    return token, True


def _read_token_file(path: Path) -> str | None:
    """The token stored at ``path``, or None (absent or unusable: a warning says why)."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("API token file %s unusable (%s): generating a new token", path, exc.strerror)
        return None
    text = ""
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            problem = "not a regular file"
        elif os.name == "posix" and info.st_mode & 0o077:
            problem = f"mode {stat.S_IMODE(info.st_mode):04o} lets others read it"
        elif os.name == "posix" and info.st_uid != os.getuid():
            problem = "owned by another user"
        else:
            text = f.read(1024).decode("ascii", errors="replace").strip()
            problem = "" if _FILE_TOKEN.fullmatch(text) else "malformed contents"
    if problem:
        log.warning("API token file %s: %s; generating a new token", path, problem)
        return None
    return text


def _write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` atomically, readable by the owner only (0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ConfigError(
            f"cannot write the API token file {path} ({exc.strerror}); "
            "set API_TOKEN or make DATA_DIR writable"
        ) from None


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to serve the API on a non-loopback address without a configured token.

    Call it with the address actually bound (``--host`` may override ``API_HOST``).

    Args:
        host: the address uvicorn will bind.
        settings: supplies ``api_token``; a generated token file does not count.

    Raises:
        ConfigError: ``host`` is not loopback and ``API_TOKEN`` is not set.
    """
    if is_loopback(host) or settings.api_token is not None:
        return
    raise ConfigError(
        f"refusing to bind the API to non-loopback address {host!r} without API_TOKEN: "
        "set API_TOKEN (at least 16 characters) or bind 127.0.0.1"
    )


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="The API token: API_TOKEN, or the token in <DATA_DIR>/api_token.",
)


def _unauthorized(detail: str, header: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": header},
    )


async def require_token(
    ctx: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Dependency: let the request through only with the right bearer token.

    Raises:
        HTTPException: 401 with ``WWW-Authenticate: Bearer`` when the token is missing
            or wrong.
    """
    if credentials is None:
        raise _unauthorized("missing bearer token", _REALM)
    # Bytes, not str: compare_digest rejects non-ASCII str, and header values arrive as
    # latin-1 text, so the same bytes come back out.
    given = credentials.credentials.encode("latin-1")
    expected = ctx.token.get_secret_value().encode("utf-8")
    if not secrets.compare_digest(given, expected):
        raise _unauthorized("invalid bearer token", f'{_REALM}, error="invalid_token"')
