"""Bearer-token auth, the generated token file, and the bind check."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from mental_trader.api import (
    Metrics,
    check_bind,
    create_app,
    is_loopback,
    resolve_api_token,
    token_path,
)
from mental_trader.errors import ConfigError
from mental_trader.storage import Store

from .conftest import TOKEN, FakeService, make_client, make_settings

PROTECTED = [
    ("GET", "/"),
    ("GET", "/status"),
    ("GET", "/config"),
    ("GET", "/signals"),
    ("GET", "/trades"),
    ("GET", "/option-trades"),
    ("GET", "/positions"),
    ("GET", "/pnl/daily"),
    ("GET", "/pnl/attribution"),
    ("GET", "/options/NIFTY/chain"),
    ("GET", "/options/signals"),
    ("GET", "/options/positions"),
    ("GET", "/candles/NSE%3ARELIANCE"),
    ("GET", "/metrics"),
    ("POST", "/control/start"),
    ("POST", "/control/stop"),
    ("POST", "/control/halt"),
    ("POST", "/control/flatten"),
]


BAD_AUTHORIZATIONS: list[bytes | None] = [
    None,
    b"Bearer wrong-token-0123456789abcdef",
    f"Bearer {TOKEN}x".encode(),
    f"Bearer {TOKEN[:-1]}".encode(),
    f"Basic {TOKEN}".encode(),
    b"Bearer",
    b"Bearer ",
    f"Bearer {TOKEN[:-1]}\u00e9".encode(),  # non-ASCII: a 401, not a 500 from compare_digest
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_protected_endpoints_refuse_a_missing_or_wrong_token(
    anon: httpx.AsyncClient, service: FakeService, method: str, path: str
) -> None:
    for authorization in BAD_AUTHORIZATIONS:
        headers = {} if authorization is None else {b"Authorization": authorization}
        response = await anon.request(method, path, headers=headers)
        assert response.status_code == 401, authorization
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert not service.running
    assert service.halts == []
    assert service.flattens == []


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_protected_endpoints_accept_the_token(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 200, response.text


async def test_health_needs_no_token(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
async def test_docs_are_open_and_say_so(anon: httpx.AsyncClient, path: str) -> None:
    response = await anon.get(path)
    assert response.status_code == 200
    if path == "/openapi.json":
        schema = response.json()
        assert "Authorization: Bearer" in schema["info"]["description"]
        assert "security" in schema["paths"]["/status"]["get"]
        assert "security" not in schema["paths"]["/health"]["get"]


def test_configured_token_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert resolve_api_token(settings) == (TOKEN, False)
    assert not token_path(settings).exists()


def test_generated_token_is_stored_0600_and_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(tmp_path, api_token=None)
    token, generated = resolve_api_token(settings)
    assert generated
    assert len(token) >= 43
    path = token_path(settings)
    assert path == tmp_path / "data" / "api_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="ascii").strip() == token
    assert resolve_api_token(settings) == (token, False)
    assert resolve_api_token(make_settings(tmp_path, api_token=None)) == (token, False)
    assert token not in caplog.text
    assert [p.name for p in path.parent.iterdir()] == ["api_token"]  # no temp file left


@pytest.mark.parametrize(
    ("contents", "mode"),
    [
        ("short\n", 0o600),
        ("", 0o600),
        ("not a token: has spaces and more than thirty-two characters", 0o600),
        ("A" * 43 + "\n", 0o644),  # readable by others: it may have leaked
    ],
)
def test_unusable_token_file_is_replaced(tmp_path: Path, contents: str, mode: int) -> None:
    settings = make_settings(tmp_path, api_token=None)
    path = token_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text(contents, encoding="ascii")
    path.chmod(mode)
    token, generated = resolve_api_token(settings)
    assert generated
    assert token != contents.strip()
    assert path.read_text(encoding="ascii").strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_symlinked_token_file_is_not_followed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, api_token=None)
    target = tmp_path / "elsewhere"
    target.write_text("B" * 43, encoding="ascii")
    target.chmod(0o600)
    path = token_path(settings)
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    token, generated = resolve_api_token(settings)
    assert generated
    assert token != "B" * 43
    assert not path.is_symlink()
    assert target.read_text(encoding="ascii") == "B" * 43


def test_unwritable_data_dir_is_a_config_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="API_TOKEN"):
            resolve_api_token(make_settings(tmp_path, api_token=None))
    finally:
        data.chmod(0o700)


async def test_app_without_configured_token_requires_the_file_token(
    tmp_path: Path, store: Store
) -> None:
    settings = make_settings(tmp_path, api_token=None)
    token, generated = resolve_api_token(settings)  # what the CLI does first
    assert generated
    app: FastAPI = create_app(settings, FakeService(settings, store, _metrics()))
    async with app.router.lifespan_context(app):
        async with make_client(app) as anon:
            assert (await anon.get("/status")).status_code == 401
        async with make_client(app, token) as client:
            info = (await client.get("/")).json()
            assert info["token_source"] == "file"
            assert (await client.get("/status")).status_code == 200


def test_create_app_refuses_a_short_explicit_token(tmp_path: Path, store: Store) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(ConfigError, match="16"):
        create_app(settings, FakeService(settings, store, _metrics()), api_token="short")


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]", "::ffff:127.0.0.1"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org", "", "10.0.0.1"])
def test_non_loopback_bind_needs_a_configured_token(tmp_path: Path, host: str) -> None:
    assert not is_loopback(host)
    unconfigured = make_settings(tmp_path, api_token=None)
    resolve_api_token(unconfigured)  # a generated file token does not count
    with pytest.raises(ConfigError, match="API_TOKEN"):
        check_bind(host, unconfigured)
    check_bind(host, make_settings(tmp_path))  # configured: allowed
    check_bind("127.0.0.1", unconfigured)  # loopback: allowed


def _metrics() -> Metrics:
    return Metrics(process_metrics=False)
