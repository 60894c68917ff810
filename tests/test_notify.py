"""The notifier against a real HTTP server and a real SMTP server, both on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import ipaddress
import json
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mental_trader.config import Settings, load_settings
from mental_trader.models import Side
from mental_trader.notify import NOTIFY_EVENTS, Notifier, NotifyEvent, summarize

TOKEN = "T0KEN-9f8e7d6c5b4a"
QUERY_SECRET = "qs-1234567890abcdef"
WEBHOOK_PATH = f"/hooks/{TOKEN}"

FAST: dict[str, Any] = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}


# -- a tiny recording HTTP server ----------------------------------------------------------


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Hook:
    """An HTTP/1.1 server that records requests and answers from a script.

    Each script entry is a status code, or ``("sleep", seconds, status)``; when the script
    runs out every request gets 200.
    """

    port: int = 0
    script: list[int | tuple[str, float, int]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = WEBHOOK_PATH, query: str = f"?key={QUERY_SECRET}") -> str:
        return f"http://127.0.0.1:{self.port}{path}{query}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, value = raw.decode().split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Request(method, target, headers, body))
                action = self.script.pop(0) if self.script else 200
                if isinstance(action, tuple):
                    _, seconds, status = action
                    with contextlib.suppress(TimeoutError):  # a stall, cut short at teardown
                        await asyncio.wait_for(self.stop.wait(), seconds)
                else:
                    status = action
                extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n{extra}\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.tasks.discard(task)
            writer.close()


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    recorder = Hook()
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    recorder.port = server.sockets[0].getsockname()[1]
    try:
        yield recorder
    finally:
        server.close()
        recorder.stop.set()
        await asyncio.gather(*recorder.tasks, return_exceptions=True)
        await server.wait_closed()


def settings_for(url: str | None = None, **values: Any) -> Settings:
    values.setdefault("notify_timeout_s", 0.5)
    values.setdefault("notifier_webhook", url)
    return load_settings(_env_file=None, **values)


async def wait_for(predicate: Any) -> None:
    async with asyncio.timeout(5.0):
        while not predicate():  # noqa: ASYNC110 -- polling what the server recorded
            await asyncio.sleep(0.005)


# -- webhook ---------------------------------------------------------------------------------


async def test_payload_shape(hook: Hook) -> None:
    ts = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone(dt.timedelta(minutes=330)))
    payload = {
        "symbol": "NSE:INFY",
        "side": Side.BUY,
        "qty": 10,
        "price": 1510.5,
        "ts": ts,
        "charges": Decimal("12.34"),
        "ema": float("nan"),
        "levels": (1500.0, 1530.0),
    }
    before = dt.datetime.now(dt.UTC)
    async with Notifier(settings_for(hook.url()), **FAST) as notifier:
        notifier.notify(NotifyEvent.FILL, payload)
        payload["qty"] = 99  # a snapshot was taken: later changes do not leak
    [request] = hook.requests
    assert request.method == "POST"
    assert request.target == f"{WEBHOOK_PATH}?key={QUERY_SECRET}"
    assert request.headers["content-type"] == "application/json"
    doc = request.json()
    assert set(doc) == {"type", "ts", "service", "data"}
    assert doc["type"] == "fill"
    assert doc["service"] == "mental-trader"
    sent_at = dt.datetime.fromisoformat(doc["ts"])
    assert sent_at.utcoffset() == dt.timedelta(0)
    assert before <= sent_at <= dt.datetime.now(dt.UTC)
    assert doc["data"] == {
        "symbol": "NSE:INFY",
        "side": "BUY",
        "qty": 10,
        "price": 1510.5,
        "ts": "2026-11-23T04:30:00+00:00",
        "charges": "12.34",
        "ema": None,
        "levels": [1500.0, 1530.0],
    }
    stats = notifier.stats
    assert (stats.sent, stats.failed, stats.dropped, stats.pending) == (1, 0, 0, 0)


async def test_retries_on_500_and_429_then_succeeds(hook: Hook) -> None:
    hook.script = [500, 503, 429]
    hook.headers = {"retry-after": "0"}
    async with Notifier(settings_for(hook.url()), max_attempts=4, **FAST) as notifier:
        notifier.notify("signal", {"symbol": "NSE:TCS"})
    assert len(hook.requests) == 4
    assert len({r.body for r in hook.requests}) == 1  # the same document every attempt
    assert (notifier.stats.sent, notifier.stats.failed) == (1, 0)


async def test_gives_up_after_the_attempt_budget(hook: Hook) -> None:
    hook.script = [500, 500, 500, 500]
    async with Notifier(settings_for(hook.url()), max_attempts=3, **FAST) as notifier:
        notifier.notify("error", {"message": "boom"})
    assert len(hook.requests) == 3
    assert (notifier.stats.sent, notifier.stats.failed) == (0, 1)
    assert notifier.stats.last_error == "webhook: HTTP 500"


async def test_no_retry_on_4xx_and_the_worker_goes_on(hook: Hook) -> None:
    hook.script = [400]
    async with Notifier(settings_for(hook.url()), **FAST) as notifier:
        notifier.notify("rejection", {"symbol": "NSE:SBIN", "message": "margin"})
        notifier.notify("halt", {"reason": "daily loss limit"})
    assert [r.json()["type"] for r in hook.requests] == ["rejection", "halt"]
    assert (notifier.stats.sent, notifier.stats.failed) == (1, 1)


async def test_timeout_is_retried(hook: Hook) -> None:
    hook.script = [("sleep", 2.0, 200), 200]
    settings = settings_for(hook.url(), notify_timeout_s=0.2)
    started = time.monotonic()
    async with Notifier(settings, **FAST) as notifier:
        notifier.notify("fill", {"symbol": "NSE:INFY"})
    assert time.monotonic() - started < 1.5
    assert len(hook.requests) == 2
    assert (notifier.stats.sent, notifier.stats.failed) == (1, 0)


async def test_timeouts_until_the_budget_runs_out(hook: Hook) -> None:
    hook.script = [("sleep", 2.0, 200), ("sleep", 2.0, 200)]
    settings = settings_for(hook.url(), notify_timeout_s=0.1)
    async with Notifier(settings, max_attempts=2, **FAST) as notifier:
        notifier.notify("fill", {"symbol": "NSE:INFY"})
    assert len(hook.requests) == 2
    assert (notifier.stats.sent, notifier.stats.failed) == (0, 1)
    assert notifier.stats.last_error is not None
    assert "Timeout" in notifier.stats.last_error


async def test_connection_refused_is_retried_then_fails(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    caplog.set_level(logging.DEBUG)
    async with Notifier(settings_for(url), max_attempts=3, **FAST) as notifier:
        notifier.notify("error", {"message": "x"})
    assert (notifier.stats.sent, notifier.stats.failed) == (0, 1)
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2
    assert TOKEN not in caplog.text


async def test_notify_never_blocks_and_overflow_drops_the_oldest(hook: Hook) -> None:
    hook.script = [("sleep", 0.5, 200)]  # the first delivery stalls the worker
    notifier = Notifier(settings_for(hook.url(), notify_timeout_s=2.0), queue_size=10, **FAST)
    await notifier.start()
    notifier.notify("signal", {"seq": -1})
    await wait_for(lambda: len(hook.requests) == 1)  # the worker is now stuck in a request
    started = time.perf_counter()
    for seq in range(20_000):
        notifier.notify("signal", {"seq": seq})
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"20k notify() calls took {elapsed:.2f}s"
    stats = notifier.stats
    assert (stats.pending, stats.dropped) == (11, 20_000 - 10)  # 10 queued + 1 in flight
    await notifier.close(timeout=5.0)
    seqs = [r.json()["data"]["seq"] for r in hook.requests]
    assert seqs == [-1, *range(19_990, 20_000)]  # the newest ten survived, in order
    assert (notifier.stats.sent, notifier.stats.pending) == (11, 0)


async def test_placement_acks_are_ignored(hook: Hook) -> None:
    assert {"signal", "option_signal", "fill", "rejection", "halt", "error"} == NOTIFY_EVENTS
    async with Notifier(settings_for(hook.url()), **FAST) as notifier:
        notifier.notify("order_placed", {"client_id": "abc"})
        notifier.notify("order_ack", {"client_id": "abc"})
        notifier.notify("fill", {"client_id": "abc"})
    assert [r.json()["type"] for r in hook.requests] == ["fill"]
    assert notifier.stats.ignored == 2


async def test_close_drains_then_drops_what_is_left(hook: Hook) -> None:
    async with Notifier(settings_for(hook.url()), **FAST) as notifier:
        for seq in range(5):
            notifier.notify("fill", {"seq": seq})
    assert len(hook.requests) == 5

    hook.script = [("sleep", 5.0, 200)]
    notifier = Notifier(settings_for(hook.url(), notify_timeout_s=10.0), **FAST)
    await notifier.start()
    for seq in range(3):
        notifier.notify("fill", {"seq": seq})
    started = time.monotonic()
    await notifier.close(timeout=0.2)
    assert time.monotonic() - started < 1.0
    assert (notifier.stats.dropped, notifier.stats.pending) == (3, 0)
    notifier.notify("fill", {"seq": 99})  # after close: dropped, never raises
    assert notifier.stats.dropped == 4
    with pytest.raises(RuntimeError, match="closed"):
        await notifier.start()


async def test_shared_client_stays_open(hook: Hook) -> None:
    async with httpx.AsyncClient() as client:
        async with Notifier(settings_for(hook.url()), client=client, **FAST) as notifier:
            notifier.notify("fill", {})
        assert not client.is_closed
    assert len(hook.requests) == 1


async def test_disabled_notifier_is_a_no_op() -> None:
    async with Notifier(settings_for(None)) as notifier:
        assert not notifier.enabled
        notifier.notify("fill", {"symbol": "NSE:INFY"})
    assert notifier.stats.as_dict() == {
        "sent": 0,
        "failed": 0,
        "dropped": 0,
        "pending": 0,
        "ignored": 0,
        "last_error": None,
    }


async def test_webhook_url_never_logged(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx logs every request URL at INFO
    hook.script = [500, 200, 400, ("sleep", 1.0, 200), ("sleep", 1.0, 200)]
    settings = settings_for(hook.url(), notify_timeout_s=0.2)
    async with Notifier(settings, max_attempts=2, **FAST) as notifier:
        for event in ("fill", "error", "halt"):
            notifier.notify(event, {"symbol": "NSE:INFY"})
    assert len(hook.requests) == 5
    assert notifier.stats.sent == 1
    assert notifier.stats.failed == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any(r.name == "httpx" for r in caplog.records)  # the filter saw them
    assert f"http://127.0.0.1:{hook.port}/***" in caplog.text
    for secret in (TOKEN, QUERY_SECRET, WEBHOOK_PATH):
        assert secret not in caplog.text
        assert not any(secret in m for m in messages)
        assert secret not in str(notifier.stats.last_error)
    # the filter is gone once the notifier is closed
    assert logging.getLogger("httpx").filters == []


def test_summarize() -> None:
    assert summarize("fill", {"symbol": "NSE:INFY", "side": Side.BUY, "qty": 10, "price": 1510.5})
    assert (
        summarize("fill", {"symbol": "NSE:INFY", "side": Side.BUY, "qty": 10, "price": 1510.5})
        == "NSE:INFY BUY 10 @ 1510.5"
    )
    assert summarize("halt", {"summary": "daily loss\r\nBcc: x@y.z"}) == "daily loss Bcc: x@y.z"
    assert summarize("error", {}) == "error"
    long = summarize("error", {"message": "x" * 500})
    assert len(long) == 120
    assert long.endswith("…")


# -- email -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Mailbox:
    """An aiosmtpd handler that records messages; replies from a script of codes."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str | None, list[str]]] = field(default_factory=list)
    tls: list[bool] = field(default_factory=list)
    script: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.script:
            return self.script.pop(0)
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.tls.append(session.ssl is not None)
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox
    logins: list[tuple[bytes, bytes]]
    ca_pem: bytes | None = None


def _self_signed() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def _smtp(tmp_path: Any, *, tls: bool, auth: bool) -> Iterator[SmtpServer]:
    mailbox = Mailbox()
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        ok = (data.login, data.password) == (b"bot@example.com", b"correct-horse-battery")
        return AuthResult(success=ok, handled=False)  # handled=False: the server replies 535

    kwargs: dict[str, Any] = {}
    ca_pem = None
    if tls:
        ca_pem, key_pem = _self_signed()
        (tmp_path / "cert.pem").write_bytes(ca_pem)
        (tmp_path / "key.pem").write_bytes(key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
        kwargs |= {"tls_context": context, "require_starttls": True}
    if auth:
        kwargs |= {"authenticator": authenticator, "auth_require_tls": tls}
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer(port, mailbox, logins, ca_pem)
    finally:
        controller.stop()


@pytest.fixture
def smtp_plain(tmp_path: Any) -> Iterator[SmtpServer]:
    yield from _smtp(tmp_path, tls=False, auth=False)


@pytest.fixture
def smtp_auth(tmp_path: Any) -> Iterator[SmtpServer]:
    yield from _smtp(tmp_path, tls=False, auth=True)


@pytest.fixture
def smtp_tls(tmp_path: Any) -> Iterator[SmtpServer]:
    yield from _smtp(tmp_path, tls=True, auth=True)


def email_settings(port: int, **values: Any) -> Settings:
    return settings_for(
        None,
        smtp_host="127.0.0.1",
        smtp_port=port,
        notify_email_to="ops@example.com,risk@example.com",
        notify_email_from="bot@example.com",
        notify_timeout_s=5.0,
        **values,
    )


async def test_email_is_sent(smtp_plain: SmtpServer) -> None:
    settings = email_settings(smtp_plain.port)
    assert settings.email_enabled
    async with Notifier(settings, **FAST) as notifier:
        notifier.notify("fill", {"symbol": "NSE:INFY", "side": "BUY", "qty": 10, "price": 1510.5})
    assert notifier.stats.sent == 1
    [message] = smtp_plain.mailbox.messages
    assert message["Subject"] == "[mental-trader] fill: NSE:INFY BUY 10 @ 1510.5"
    assert message["From"] == "bot@example.com"
    assert message["To"] == "ops@example.com, risk@example.com"
    assert smtp_plain.mailbox.envelopes == [
        ("bot@example.com", ["ops@example.com", "risk@example.com"])
    ]
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert '"symbol": "NSE:INFY"' in text
    assert "event: fill" in text
    assert smtp_plain.mailbox.tls == [False]


async def test_email_login_on_loopback(smtp_auth: SmtpServer) -> None:
    settings = email_settings(
        smtp_auth.port, smtp_user="bot@example.com", smtp_password="correct-horse-battery"
    )
    async with Notifier(settings, **FAST) as notifier:
        notifier.notify("halt", {"summary": "daily loss limit hit"})
    assert smtp_auth.logins == [(b"bot@example.com", b"correct-horse-battery")]
    [message] = smtp_auth.mailbox.messages
    assert message["Subject"] == "[mental-trader] halt: daily loss limit hit"


async def test_email_bad_credentials_fail_without_retry(
    smtp_auth: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = email_settings(
        smtp_auth.port, smtp_user="bot@example.com", smtp_password="wrong-password-here"
    )
    async with Notifier(settings, **FAST) as notifier:
        notifier.notify("halt", {"summary": "x"})
    # smtplib tries each advertised mechanism (PLAIN, LOGIN) within one attempt
    assert 1 <= len(smtp_auth.logins) <= 2
    assert "failed after 1 attempt(s)" in caplog.text
    assert "retrying" not in caplog.text
    assert "wrong-password-here" not in caplog.text
    assert (notifier.stats.sent, notifier.stats.failed) == (0, 1)
    assert "correct-horse" not in str(notifier.stats.last_error)
    assert smtp_auth.mailbox.messages == []


async def test_email_uses_starttls_when_offered(smtp_tls: SmtpServer) -> None:
    assert smtp_tls.ca_pem is not None
    context = ssl.create_default_context(cadata=smtp_tls.ca_pem.decode())
    settings = email_settings(
        smtp_tls.port, smtp_user="bot@example.com", smtp_password="correct-horse-battery"
    )
    async with Notifier(settings, smtp_ssl_context=context, **FAST) as notifier:
        notifier.notify("error", {"message": "feed down"})
    assert notifier.stats.sent == 1
    assert smtp_tls.mailbox.tls == [True]
    assert smtp_tls.logins == [(b"bot@example.com", b"correct-horse-battery")]


async def test_email_untrusted_certificate_fails(smtp_tls: SmtpServer) -> None:
    settings = email_settings(smtp_tls.port)
    async with Notifier(settings, **FAST) as notifier:  # the system trust store
        notifier.notify("error", {"message": "feed down"})
    assert (notifier.stats.sent, notifier.stats.failed) == (0, 1)
    assert smtp_tls.mailbox.messages == []


async def test_email_retries_a_temporary_failure(smtp_plain: SmtpServer) -> None:
    smtp_plain.mailbox.script = ["451 try again later"]
    async with Notifier(email_settings(smtp_plain.port), **FAST) as notifier:
        notifier.notify("rejection", {"symbol": "NSE:SBIN", "message": "margin"})
    assert notifier.stats.sent == 1
    assert len(smtp_plain.mailbox.messages) == 1


async def test_email_permanent_failure_is_not_retried(smtp_plain: SmtpServer) -> None:
    smtp_plain.mailbox.script = ["554 no thanks", "250 OK"]
    async with Notifier(email_settings(smtp_plain.port), **FAST) as notifier:
        notifier.notify("rejection", {"symbol": "NSE:SBIN"})
    assert (notifier.stats.sent, notifier.stats.failed) == (0, 1)
    assert smtp_plain.mailbox.script == ["250 OK"]  # no second attempt


async def test_email_events_can_be_narrowed(smtp_plain: SmtpServer, hook: Hook) -> None:
    settings = email_settings(smtp_plain.port, notifier_webhook=hook.url())
    async with Notifier(settings, email_events={"halt"}, **FAST) as notifier:
        notifier.notify("signal", {"symbol": "NSE:INFY"})
        notifier.notify("halt", {"summary": "kill switch"})
    assert [r.json()["type"] for r in hook.requests] == ["signal", "halt"]
    assert [m["Subject"] for m in smtp_plain.mailbox.messages] == [
        "[mental-trader] halt: kill switch"
    ]
    assert notifier.stats.sent == 3
