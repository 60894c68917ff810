"""Notifications by webhook and email, off the trading loop.

:meth:`Notifier.notify` only puts a message on a bounded in-memory queue and returns; one
worker task delivers the queue in order. When the queue is full the OLDEST message is
dropped (and counted, and logged): a burst never blocks trading and the newest news wins.

Which events notify (:data:`NOTIFY_EVENTS`): ``signal``, ``option_signal`` (an option
entry or exit the options layer decided), ``fill``, ``rejection``, ``halt`` and ``error``.
Anything else (an order placement acknowledgement, say) is ignored and counted as
``ignored``: they are frequent and say nothing a trader acts on.

Webhook (``NOTIFIER_WEBHOOK``): an HTTP POST of the JSON document::

    {"type": "fill", "ts": "2026-11-23T04:00:00.123+00:00", "service": "mental-trader",
     "data": {...the payload...}}

with ``notify_timeout_s`` per attempt. Timeouts, connection errors, 5xx and 429 are retried
with exponential backoff and jitter (tenacity; a 429's ``Retry-After`` is honoured up to
the backoff cap) for a bounded number of attempts; any other 4xx (and a 3xx: redirects are
not followed, so the URL's token never travels to another host) fails at once. The URL may
embed a token, so it is never logged: logs name the scheme and host only, and a filter on
the ``httpx`` logger (which logs every request URL at INFO) redacts it there too.

Email (when ``SMTP_HOST`` and ``NOTIFY_EMAIL_TO`` are set): stdlib :mod:`smtplib` in
:func:`asyncio.to_thread`, STARTTLS when the server offers it (implicit TLS on port 465),
login when ``SMTP_USER`` is set (refused over plain text except to a loopback server),
subject ``[mental-trader] <event_type>: <summary>``. The same retry policy applies to
connection errors and 4xx SMTP replies.

Payloads may hold datetimes, enums, dataclasses, pydantic models, Decimals and numpy
scalars: they are converted to JSON when :meth:`Notifier.notify` is called (a snapshot, so
later changes to the payload do not leak into the message). Non-finite floats become null.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import json
import logging
import math
import random
import re
import smtplib
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal
from email.message import EmailMessage
from enum import Enum, StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import urlsplit

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from mental_trader.config import is_loopback

if TYPE_CHECKING:
    from mental_trader.config import Settings

__all__ = ["NOTIFY_EVENTS", "Notifier", "NotifierStats", "NotifyEvent", "summarize"]

log = logging.getLogger(__name__)

SERVICE = "mental-trader"
_SUMMARY_KEYS = ("symbol", "side", "kind", "qty", "price", "reason", "status", "message")
_SUMMARY_MAX = 120
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_DROP_LOG_INTERVAL_S = 10.0
_MAX_DEPTH = 20


class NotifyEvent(StrEnum):
    """The event types that notify. Members are plain strings too (``"fill"``)."""

    SIGNAL = "signal"
    OPTION_SIGNAL = "option_signal"
    FILL = "fill"
    REJECTION = "rejection"
    HALT = "halt"
    ERROR = "error"


#: Event types :meth:`Notifier.notify` delivers; any other type is ignored (and counted).
NOTIFY_EVENTS: frozenset[str] = frozenset(NotifyEvent)


@dataclasses.dataclass(frozen=True, slots=True)
class NotifierStats:
    """Counters for ``/health``.

    Attributes:
        sent: deliveries that succeeded (one per channel per message).
        failed: deliveries that failed after their last attempt.
        dropped: messages dropped undelivered: queue overflow, or still queued at close.
        pending: messages queued or being delivered.
        ignored: :meth:`Notifier.notify` calls for event types not in ``NOTIFY_EVENTS``.
        last_error: the last delivery error (no URL, no secret), or None.
    """

    sent: int
    failed: int
    dropped: int
    pending: int
    ignored: int
    last_error: str | None = None

    def as_dict(self) -> dict[str, int | str | None]:
        """The counters as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class _Message:
    event_type: str
    ts: datetime
    data: dict[str, Any]
    body: bytes
    summary: str


class _HttpStatus(Exception):
    """A webhook answer that is not 2xx (the message never holds the URL)."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500


class _InsecureLogin(Exception):
    """The SMTP server offers no TLS and is not on loopback: no password in clear."""


def _webhook_retryable(exc: BaseException) -> bool:
    if isinstance(exc, _HttpStatus):
        return exc.retryable
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)


def _smtp_retryable(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPException | ssl.SSLError):
        return False  # refused recipients, bad credentials, certificate problems
    return isinstance(exc, OSError)  # connection refused/reset, socket timeout


def _redact_url(url: str) -> str:
    """``scheme://host[:port]/***``: what a log may show of a URL that may hold a token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<webhook>"
    return f"{parts.scheme}://{host}{port}/***"


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of ``value`` (see the module docstring)."""
    if depth > _MAX_DEPTH:
        return "<too deep>"
    if value is None or isinstance(value, bool | int | str):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Enum):
        return _jsonable(value.value, depth + 1)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date | dtime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return {f.name: _jsonable(getattr(value, f.name), depth + 1) for f in fields}
    dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(dump):
        return _jsonable(dump(mode="json"), depth + 1)
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return _jsonable(tolist(), depth + 1)
    return str(value)  # SecretStr shows as '**********'


def summarize(event_type: str, payload: Mapping[str, Any]) -> str:
    """A one-line summary of a payload, for an email subject.

    ``payload["summary"]`` wins if it is a string; otherwise the common fields (symbol,
    side, kind, qty, price, reason, status, message) joined, e.g. ``NSE:INFY BUY 10 @
    1510.5``. Control characters are removed and the text is cut at 120 characters.
    """
    text = payload.get("summary")
    if not isinstance(text, str) or not text.strip():
        parts: list[str] = []
        for key in _SUMMARY_KEYS:
            value = _jsonable(payload.get(key))
            if value is None or value == "":
                continue
            parts.append(f"@ {value}" if key == "price" else str(value))
        text = " ".join(parts) or str(event_type)
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= _SUMMARY_MAX else text[: _SUMMARY_MAX - 1] + "…"


class _RedactFilter(logging.Filter):
    """Replaces a secret-bearing URL in records of the ``httpx`` logger by its host."""

    def __init__(self, secrets: Iterable[str], replacement: str) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) > 1}, key=len, reverse=True)
        self._replacement = replacement

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, self._replacement)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.scrub(str(arg)) if self._leaks(arg) else arg for arg in record.args
            )
        return True

    def _leaks(self, arg: object) -> bool:
        if isinstance(arg, int | float) or arg is None:
            return False
        text = str(arg)
        return any(secret in text for secret in self._secrets)


class Notifier:
    """Delivers notifications by webhook and/or email from an async queue.

    Use it as an async context manager (or call :meth:`start` and :meth:`close`); it cannot
    be reopened. :meth:`notify` is synchronous and never blocks: call it from the event
    loop's thread (the trading loop), never from another thread.

    Args:
        settings: ``notifier_webhook``, ``notify_timeout_s``, ``smtp_*``,
            ``notify_email_*`` are read.
        client: an ``httpx.AsyncClient`` to share (not closed by the notifier); by
            default the notifier opens and closes its own.
        queue_size: messages held at most; overflow drops the oldest.
        max_attempts: attempts per delivery (first try included).
        backoff_initial_s: first retry delay; it doubles per attempt, plus up to this
            much random jitter.
        backoff_max_s: cap of one retry delay.
        email_events: the event types also sent by email (default: all of
            ``NOTIFY_EVENTS``; narrow it to keep a scalper's inbox usable).
        smtp_ssl_context: TLS context for STARTTLS / port 465 (default: the system's
            trust store, with certificate and host name checks).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
        queue_size: int = 1000,
        max_attempts: int = 4,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        email_events: Iterable[str] = NOTIFY_EVENTS,
        smtp_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if queue_size < 1 or max_attempts < 1:
            raise ValueError("queue_size and max_attempts must be >= 1")
        self._settings = settings
        self._timeout = settings.notify_timeout_s
        webhook = settings.notifier_webhook
        self._url = None if webhook is None else webhook.get_secret_value()
        self._host = None if self._url is None else _redact_url(self._url)
        self._email = settings.email_enabled
        self._email_events = frozenset(email_events)
        self._ssl_context = smtp_ssl_context
        self._client = client
        self._owns_client = client is None
        self._queue: asyncio.Queue[_Message] = asyncio.Queue(maxsize=queue_size)
        self._max_attempts = max_attempts
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._worker: asyncio.Task[None] | None = None
        self._state: Literal["new", "running", "closed"] = "new"
        self._in_flight = 0
        self._sent = self._failed = self._dropped = self._ignored = 0
        self._last_error: str | None = None
        self._last_drop_log = -math.inf
        self._filter: _RedactFilter | None = None
        if self._url is not None:
            raw, normal = self._url, str(httpx.URL(self._url))
            parts = urlsplit(raw)
            pieces = [raw, normal, parts.path + ("?" + parts.query if parts.query else "")]
            pieces += [parts.query, parts.password or ""]
            self._filter = _RedactFilter(pieces, self._host or "<webhook>")

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether any channel (webhook, email) is configured."""
        return self._url is not None or self._email

    async def start(self) -> None:
        """Start the delivery worker (messages queued before this are delivered then).

        Raises:
            RuntimeError: already started or closed.
        """
        if self._state != "new":
            raise RuntimeError(f"notifier is {self._state}; it cannot be started again")
        self._state = "running"
        if not self.enabled:
            log.info("notifications disabled (no NOTIFIER_WEBHOOK, no SMTP_HOST/NOTIFY_EMAIL_TO)")
            return
        if self._url is not None:
            if self._client is None:
                self._client = httpx.AsyncClient(follow_redirects=False)
            if self._filter is not None:
                logging.getLogger("httpx").addFilter(self._filter)
        self._worker = asyncio.create_task(self._run(), name="notifier")
        log.info(
            "notifier started: webhook=%s email=%s",
            self._host or "off",
            f"{len(self._settings.notify_email_to)} recipient(s)" if self._email else "off",
        )

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 -- a drain budget, not a cancel scope
        """Stop accepting messages, deliver what is queued for up to ``timeout`` seconds.

        What is still queued or in flight after that is dropped (counted and logged).
        Closing twice is a no-op.
        """
        if self._state == "closed":
            return
        self._state = "closed"
        worker, self._worker = self._worker, None
        try:
            if worker is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._queue.join()
            left = self._queue.qsize() + self._in_flight
            if worker is not None:
                worker.cancel()
                await asyncio.wait([worker])
            while not self._queue.empty():
                self._queue.get_nowait()
                self._queue.task_done()
            if left:
                self._dropped += left
                log.warning("notifier closed with %d notification(s) undelivered", left)
        finally:
            if self._owns_client and self._client is not None:
                await self._client.aclose()
            if self._filter is not None:
                logging.getLogger("httpx").removeFilter(self._filter)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def stats(self) -> NotifierStats:
        """The delivery counters (see :class:`NotifierStats`)."""
        return NotifierStats(
            sent=self._sent,
            failed=self._failed,
            dropped=self._dropped,
            pending=self._queue.qsize() + self._in_flight,
            ignored=self._ignored,
            last_error=self._last_error,
        )

    # -- the trading loop's side ----------------------------------------------------------

    def notify(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """Queue a notification and return at once (no I/O, never raises).

        Args:
            event_type: one of :data:`NOTIFY_EVENTS`; other types are ignored.
            payload: the event's details (converted to JSON now, see the module docstring).
        """
        if event_type not in NOTIFY_EVENTS:
            self._ignored += 1
            log.debug("notification %r ignored (not in NOTIFY_EVENTS)", event_type)
            return
        if not self.enabled:
            return
        if self._state == "closed":
            self._dropped += 1
            log.warning("notification %s after close dropped", event_type)
            return
        try:
            message = self._message(str(event_type), payload)
        except Exception as exc:  # a notification must never break trading
            self._failed += 1
            log.error("notification %s could not be encoded: %s", event_type, type(exc).__name__)
            return
        if self._queue.full():
            self._queue.get_nowait()
            self._queue.task_done()
            self._dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log >= _DROP_LOG_INTERVAL_S:
                self._last_drop_log = now
                log.warning(
                    "notification queue full (%d): dropped the oldest (%d dropped so far)",
                    self._queue.maxsize,
                    self._dropped,
                )
        self._queue.put_nowait(message)

    def _message(self, event_type: str, payload: Mapping[str, Any]) -> _Message:
        ts = datetime.now(UTC)
        data = _jsonable(payload)
        if not isinstance(data, dict):
            data = {"value": data}
        document = {"type": event_type, "ts": ts.isoformat(), "service": SERVICE, "data": data}
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return _Message(event_type, ts, data, body.encode(), summarize(event_type, payload))

    # -- delivery -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            message = await self._queue.get()
            self._in_flight = 1
            try:
                async with asyncio.TaskGroup() as group:
                    if self._url is not None:
                        group.create_task(self._deliver("webhook", self._post, message))
                    if self._email and message.event_type in self._email_events:
                        group.create_task(self._deliver("email", self._send_email, message))
            finally:
                self._in_flight = 0
                self._queue.task_done()

    async def _deliver(
        self, channel: str, send: Callable[[_Message], Awaitable[None]], message: _Message
    ) -> None:
        retryable = _webhook_retryable if channel == "webhook" else _smtp_retryable
        target = self._host if channel == "webhook" else self._settings.smtp_host
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=retry_if_exception(retryable),
            before_sleep=lambda state: self._log_retry(channel, target, message, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await send(message)
        except Exception as exc:  # counted and logged; the worker goes on
            self._failed += 1
            self._last_error = f"{channel}: {self._describe(exc)}"
            log.error(
                "%s %s: %s notification failed after %d attempt(s): %s",
                channel,
                target,
                message.event_type,
                retrying.statistics.get("attempt_number", 1),
                self._describe(exc),
            )
        else:
            self._sent += 1
            log.debug("%s %s: %s notification sent", channel, target, message.event_type)

    def _wait(self, state: RetryCallState) -> float:
        # exponential backoff with jitter: initial * 2^(n-1) + U(0, initial), capped
        base = self._backoff_initial_s * 2.0 ** (state.attempt_number - 1)
        delay = min(base + random.uniform(0, self._backoff_initial_s), self._backoff_max_s)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _HttpStatus) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, self._backoff_max_s))
        return delay

    def _log_retry(
        self, channel: str, target: str | None, message: _Message, state: RetryCallState
    ) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s %s: %s notification attempt %d failed (%s); retrying in %.2fs",
            channel,
            target,
            message.event_type,
            state.attempt_number,
            self._describe(exc),
            delay,
        )

    def _describe(self, exc: BaseException | None) -> str:
        """The error's type and message, with any secret-bearing URL part removed."""
        if exc is None:
            return "unknown error"
        if isinstance(exc, _HttpStatus):
            return str(exc)
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return self._filter.scrub(text) if self._filter is not None else text

    async def _post(self, message: _Message) -> None:
        if self._client is None or self._url is None:  # start() sets both
            raise RuntimeError("notifier not started")
        response = await self._client.post(
            self._url,
            content=message.body,
            headers={"content-type": "application/json", "user-agent": SERVICE},
            timeout=self._timeout,
        )
        if not response.is_success:
            raise _HttpStatus(response.status_code, _retry_after(response))

    async def _send_email(self, message: _Message) -> None:
        await asyncio.to_thread(self._send_email_blocking, self._email_message(message))

    def _email_message(self, message: _Message) -> EmailMessage:
        s = self._settings
        mail = EmailMessage()
        mail["Subject"] = f"[{SERVICE}] {message.event_type}: {message.summary}"
        mail["From"] = s.email_from or ""
        mail["To"] = ", ".join(s.notify_email_to)
        mail["Date"] = email.utils.format_datetime(message.ts)
        # an explicit domain: make_msgid() would otherwise look up the host name (blocking)
        mail["Message-ID"] = email.utils.make_msgid(domain="mental-trader.invalid")
        details = json.dumps(message.data, indent=2, ensure_ascii=False, sort_keys=True)
        mail.set_content(
            f"{message.summary}\n\nevent: {message.event_type}\n"
            f"time: {message.ts.isoformat()}\n\n{details}\n"
        )
        return mail

    def _send_email_blocking(self, mail: EmailMessage) -> None:
        """Send one email; runs in a worker thread (every socket step has the timeout)."""
        s = self._settings
        host = s.smtp_host or ""
        context = self._ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.smtp_port == 465:
            smtp = smtplib.SMTP_SSL(host, s.smtp_port, timeout=self._timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, s.smtp_port, timeout=self._timeout)
        with smtp:
            smtp.ehlo()
            secure = s.smtp_port == 465
            if not secure and smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
                secure = True
            if s.smtp_user:
                if not secure and not is_loopback(host):
                    raise _InsecureLogin(
                        f"{host} offers no STARTTLS: refusing to send SMTP credentials in clear"
                    )
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                smtp.login(s.smtp_user, password)
            smtp.send_message(mail)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
