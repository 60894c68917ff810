"""Kite login/session: login URL, checksum, expiry rules, the token file and its secrecy."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mental_trader.brokers.kite.session import (
    TOKEN_FILE,
    SessionStatus,
    TokenStore,
    checksum,
    login_url,
    token_expiry,
)
from mental_trader.calendar import IST
from mental_trader.errors import InvalidInputError

TOKEN = "tok3nS3cr3tValue9876"


def test_login_url() -> None:
    assert login_url("abc123") == "https://kite.zerodha.com/connect/login?api_key=abc123&v=3"
    assert login_url("k", base_url="http://127.0.0.1:9/connect/login").endswith("?api_key=k&v=3")
    with pytest.raises(InvalidInputError):
        login_url("")


def test_checksum_known_value() -> None:
    # SHA-256 of the concatenation, computed independently of the module under test.
    expected = hashlib.sha256(b"my_api_keymy_request_tokenmy_api_secret").hexdigest()
    assert checksum("my_api_key", "my_request_token", "my_api_secret") == expected
    # Pinned literal so an accidental change of order or encoding cannot hide.
    assert checksum("a", "b", "c") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_checksum_refuses_empty_without_echoing_values() -> None:
    with pytest.raises(InvalidInputError, match="api_secret") as info:
        checksum("key", "reqtok", "")
    assert "reqtok" not in str(info.value)


@pytest.mark.parametrize(
    ("login", "expires"),
    [
        # A day login expires at 06:00 the next day.
        (datetime(2026, 3, 10, 9, 0, tzinfo=IST), datetime(2026, 3, 11, 6, 0, tzinfo=IST)),
        # Just before midnight IST: still the next morning.
        (datetime(2026, 3, 10, 23, 59, 59, tzinfo=IST), datetime(2026, 3, 11, 6, tzinfo=IST)),
        # Just after midnight IST: the same day's 06:00.
        (datetime(2026, 3, 11, 0, 0, 1, tzinfo=IST), datetime(2026, 3, 11, 6, tzinfo=IST)),
        # 05:59:59 IST: one second left.
        (datetime(2026, 3, 11, 5, 59, 59, tzinfo=IST), datetime(2026, 3, 11, 6, tzinfo=IST)),
        # Exactly 06:00 IST: the new token lives until the next day's 06:00.
        (datetime(2026, 3, 11, 6, 0, tzinfo=IST), datetime(2026, 3, 12, 6, tzinfo=IST)),
        # Given in UTC: 2026-03-10 20:00 UTC is 01:30 IST on the 11th -> 06:00 on the 11th.
        (datetime(2026, 3, 10, 20, 0, tzinfo=UTC), datetime(2026, 3, 11, 6, tzinfo=IST)),
        # 2026-03-10 18:00 UTC is 23:30 IST on the 10th -> 06:00 on the 11th.
        (datetime(2026, 3, 10, 18, 0, tzinfo=UTC), datetime(2026, 3, 11, 6, tzinfo=IST)),
        # Month end.
        (datetime(2026, 3, 31, 15, 0, tzinfo=IST), datetime(2026, 4, 1, 6, tzinfo=IST)),
    ],
)
def test_token_expiry(login: datetime, expires: datetime) -> None:
    got = token_expiry(login)
    assert got == expires
    assert got.utcoffset() == timedelta(hours=5, minutes=30)


def test_token_expiry_refuses_naive() -> None:
    with pytest.raises(InvalidInputError):
        token_expiry(datetime(2026, 3, 10, 9, 0))  # naive on purpose


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_roundtrip_and_permissions(tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path / "data")
    login = datetime(2026, 3, 10, 9, 30, tzinfo=IST)
    saved = store.save(TOKEN, api_key="key1", login_at=login, user_id="AB1234")
    assert store.path == tmp_path / "data" / TOKEN_FILE
    assert _mode(store.path) == 0o600
    assert saved.expires_at == datetime(2026, 3, 11, 6, tzinfo=IST)
    loaded = store.load(login + timedelta(hours=1), api_key="key1")
    assert loaded is not None
    assert loaded.access_token.get_secret_value() == TOKEN
    assert loaded.expires_at == saved.expires_at
    assert loaded.user_id == "AB1234"
    # No temporary file is left beside it.
    assert [p.name for p in store.path.parent.iterdir()] == [TOKEN_FILE]


def test_store_permissions_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = TokenStore(tmp_path / "t.json")
        store.save(TOKEN, api_key="k", login_at=datetime.now(UTC))
        store.save(TOKEN + "2", api_key="k", login_at=datetime.now(UTC))  # replace
    finally:
        os.umask(old)
    assert _mode(store.path) == 0o600


def test_store_never_world_readable_while_writing(tmp_path: Path) -> None:
    """Watch the directory while saving repeatedly: every file that ever appears (the
    temporary one included) is 0600."""
    store = TokenStore(tmp_path / "t.json")
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for entry in list(tmp_path.iterdir()):
                with contextlib.suppress(FileNotFoundError):  # renamed meanwhile
                    seen.add(stat.S_IMODE(entry.stat().st_mode))

    old = os.umask(0)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(200):
            store.save(f"{TOKEN}{i}", api_key="k", login_at=datetime.now(UTC))
    finally:
        stop.set()
        watcher.join()
        os.umask(old)
    assert seen == {0o600}


def test_expired_token_is_absent(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.json")
    login = datetime(2026, 3, 10, 9, 30, tzinfo=IST)
    store.save(TOKEN, api_key="k", login_at=login)
    expiry = datetime(2026, 3, 11, 6, tzinfo=IST)
    assert store.load(expiry - timedelta(seconds=1)) is not None
    assert store.load(expiry) is None
    assert store.load(expiry + timedelta(hours=3)) is None
    state = store.state(expiry)
    assert state.status is SessionStatus.EXPIRED
    assert state.expires_at == expiry
    assert store.state(expiry - timedelta(seconds=1)).status is SessionStatus.LOGGED_IN


def test_other_api_key_is_absent(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.json")
    now = datetime(2026, 3, 10, 9, 30, tzinfo=IST)
    store.save(TOKEN, api_key="k1", login_at=now)
    assert store.load(now, api_key="k2") is None
    assert store.load(now, api_key="k1") is not None


def test_missing_and_corrupt_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = TokenStore(tmp_path / "t.json")
    now = datetime(2026, 3, 10, 9, 30, tzinfo=IST)
    assert store.load(now) is None
    assert store.state(now).status is SessionStatus.MISSING
    assert store.state(now).expires_at is None
    fd = os.open(store.path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b'{"access_token": "' + TOKEN.encode() + b'", "login_at": "garbage"')
    os.close(fd)
    with caplog.at_level(logging.DEBUG):
        assert store.load(now) is None
    assert store.state(now).status is SessionStatus.MISSING
    assert TOKEN not in caplog.text
    store.clear()
    store.clear()  # twice is fine
    assert not store.path.exists()


def test_loose_permissions_are_narrowed(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.json")
    now = datetime(2026, 3, 10, 9, 30, tzinfo=IST)
    store.save(TOKEN, api_key="k", login_at=now)
    store.path.chmod(0o644)
    assert store.load(now) is not None
    assert _mode(store.path) == 0o600


def test_secrets_never_in_repr_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = TokenStore(tmp_path / "t.json")
    now = datetime(2026, 3, 10, 9, 30, tzinfo=IST)
    with caplog.at_level(logging.DEBUG):
        saved = store.save(TOKEN, api_key="k", login_at=now)
        loaded = store.load(now)
        state = store.state(now)
    assert loaded is not None
    for obj in (saved, loaded, state, store):
        assert TOKEN not in repr(obj)
        assert TOKEN not in str(obj)
    assert TOKEN not in caplog.text
    assert "expires" in caplog.text  # the save was logged, without the token
