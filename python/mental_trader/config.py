"""Configuration: one frozen :class:`Settings` read from the environment and ``.env``.

Every setting is read from the environment variable named like the field in UPPER case
(``EMA_SHORT`` → ``ema_short``; case-insensitive), or from a ``.env`` file in the working
directory; the environment wins. An empty value (``KEY=``) means "use the default".
With nothing set at all the service runs safely: the ``sim`` broker, paper execution
and SQLite under the data directory. ``.env.example`` at the repository root lists
every key with its default.

Build settings with :func:`load_settings`, once, in the CLI, and pass them explicitly;
there is no module-level instance. Secrets are :class:`~pydantic.SecretStr` and never
appear in ``repr``, logs, :meth:`Settings.public_dict` or a :class:`ConfigError` message.

Times of day (``SESSION_START`` …) are exchange-local (IST, Asia/Kolkata).
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from mental_trader.errors import ConfigError

__all__ = ["Settings", "load_settings", "parse_timeframe"]

log = logging.getLogger(__name__)

_SYMBOL = re.compile(r"[A-Z0-9&_-]{1,32}")
_EXCHANGES = ("NSE", "BSE")
_HHMM = re.compile(r"(\d{1,2}):(\d{2})")
_TIMEFRAME = re.compile(r"(\d+)\s*([smh])")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EMAIL = re.compile(r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_MODE_TIMEFRAMES = {"scalp": ("1m", "5m"), "intraday": ("5m", "15m")}
_MAX_TIMEFRAME_S = 86_400  # the Rust core's limit
_PLACEHOLDERS = frozenset(
    {
        "changeme", "change-me", "change_me", "changeit", "replaceme", "replace-me",
        "replace_me", "api_key", "api_secret", "apikey", "secret", "password", "token",
        "placeholder", "todo", "tbd", "dummy", "example", "none", "null", "...",
    }
)  # fmt: skip
_PLACEHOLDER_PATTERNS = (
    re.compile(r"<.*>"),  # <your key>, <...>
    re.compile(r"[x*.#]{3,}"),  # xxx, ****, ...
    re.compile(r"your[ _-].*"),  # your_api_key, your-api-secret, your token
    re.compile(r".*\$\{.*\}.*"),  # an unexpanded ${VARIABLE}
)


def _default_data_dir() -> Path:
    # ./data of the directory the service starts in (the service issue's default), made
    # absolute at start-up so a later chdir cannot move the database.
    return Path("data").absolute()


def _fail(message: str, keys: str | None = None) -> PydanticCustomError:
    """A validation error whose message we wrote (it never contains a secret).

    ``keys`` labels a cross-field error ("EMA_SHORT/EMA_LONG"); without it the error is
    labelled with the env name of the field that raised it.
    """
    ctx: dict[str, str] = {"message": message}
    if keys is not None:
        ctx["keys"] = keys
    return PydanticCustomError("mental_trader_config", "{message}", ctx)


def _split(value: object) -> list[str]:
    """A comma-separated string (or an iterable of strings) as stripped, non-empty items."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = [str(v) for v in value]
    elif value is None:
        items = []
    else:
        raise _fail("expected a comma-separated list")
    return [item.strip() for item in items if item.strip()]


def parse_timeframe(text: str) -> int:
    """Parse a timeframe such as ``"30s"``, ``"1m"``, ``"15m"`` or ``"1h"`` into seconds.

    Args:
        text: a positive whole number followed by ``s``, ``m`` or ``h``.

    Returns:
        The timeframe in seconds.

    Raises:
        ValueError: the text is malformed, zero or longer than a day.
    """
    match = _TIMEFRAME.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"malformed timeframe {text!r} (use e.g. 30s, 1m, 5m, 15m, 1h)")
    seconds = int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]
    if not 0 < seconds <= _MAX_TIMEFRAME_S:
        raise ValueError(f"timeframe {text!r} must be between 1s and 24h")
    return seconds


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _is_placeholder(secret: str) -> bool:
    value = secret.strip().lower()
    return value in _PLACEHOLDERS or any(p.fullmatch(value) for p in _PLACEHOLDER_PATTERNS)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IPv4/IPv6 address) is this machine only."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _check_url(url: str, schemes: tuple[str, ...]) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        raise _fail("malformed URL") from None
    if parts.scheme.lower() not in schemes or not parts.hostname:
        wanted = " or ".join(f"{s}://" for s in schemes)
        raise _fail(f"must be a {wanted} URL with a host")
    return url


def _mask_url(url: str) -> str:
    """The URL with its password (userinfo or ``password=`` query parameter) as ``***``."""
    if url.lower().startswith("sqlite:"):
        return url  # a path, no password (and urlunsplit would drop a slash)
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostport}"
    query = "&".join(
        "password=***" if item.split("=", 1)[0].lower() == "password" else item
        for item in parts.query.split("&")
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Settings(BaseSettings):
    """The service configuration (see the module docstring and ``.env.example``).

    Field order matters: a cross-field check sits on the LATER field and reads the
    earlier ones from ``info.data``, so every field error and every cross-field error
    is reported in one go. A check is skipped when a field it needs was itself invalid.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",  # .env may hold keys for other tools; load_settings warns on typos
        env_ignore_empty=True,
        frozen=True,
        hide_input_in_errors=True,  # a raw ValidationError must not echo a secret either
        allow_inf_nan=False,
        str_strip_whitespace=True,
    )

    # -- broker ---------------------------------------------------------------------
    broker: Literal["sim", "kite"] = "sim"
    execution: Literal["paper", "live"] = "paper"
    broker_ws_url: str = "wss://ws.kite.trade"
    broker_rest_url: str = "https://api.kite.trade"
    broker_api_key: SecretStr | None = None
    broker_api_secret: SecretStr | None = None
    broker_access_token: SecretStr | None = None

    # -- trading --------------------------------------------------------------------
    mode: Literal["scalp", "intraday"] = "scalp"
    primary_timeframe: str | None = None
    confirm_timeframe: str | None = None
    watchlist: Annotated[tuple[str, ...], NoDecode] = ("NSE:RELIANCE", "NSE:INFY", "NSE:ICICIBANK")
    warmup_bars: int = Field(300, ge=1, le=100_000)
    ema_short: int = Field(8, ge=1, le=10_000)
    ema_long: int = Field(21, ge=1, le=10_000)

    # -- session --------------------------------------------------------------------
    session_start: str = "09:15"
    session_end: str = "15:30"
    square_off_time: str = "15:15"
    bar_grace_ms: int = Field(1000, ge=0, le=60_000)
    extra_holidays: Annotated[tuple[date, ...], NoDecode] = ()
    extra_sessions: Annotated[tuple[date, ...], NoDecode] = ()

    # -- risk -----------------------------------------------------------------------
    capital: float = Field(100_000.0, gt=0)
    risk_per_trade_pct: float = Field(0.5, gt=0, le=5)
    stop_loss_pct: float = Field(0.5, gt=0, le=20)
    target_pct: float = Field(1.0, gt=0, le=100)
    trailing_stop_pct: float | None = Field(None, gt=0, le=20)
    max_position_value: float = Field(50_000.0, gt=0)
    max_open_positions: int = Field(3, ge=1, le=100)
    max_trades_per_day: int = Field(20, ge=1, le=10_000)
    daily_loss_limit: float = Field(2000.0, gt=0)
    max_orders_per_second: int = Field(5, ge=1, le=9)  # the broker allows 10/s
    product: Literal["MIS", "CNC", "NRML"] = "MIS"

    # -- paper execution and charges --------------------------------------------------
    paper_half_spread_bps: float = Field(2.0, ge=0, le=1000)
    paper_slippage_bps: float = Field(1.0, ge=0, le=1000)
    charges_file: Path | None = None  # None: the packaged Zerodha table

    # -- options --------------------------------------------------------------------
    options_enabled: bool = False
    options_underlyings: Annotated[tuple[str, ...], NoDecode] = ("NIFTY",)
    # NSE's freeze quantities (units per order) by options name, e.g. "NIFTY=1800,
    # BANKNIFTY=600": revised about monthly, not in Kite's dump. Orders above them are sent
    # with Kite's autoslice; a name without one is never sliced (the exchange may refuse).
    freeze_qty: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    options_min_days_to_expiry: int = Field(0, ge=0, le=365)
    options_max_lots: int = Field(2, ge=1, le=1000)
    options_premium_risk: float = Field(2000.0, gt=0)
    options_debounce_s: float = Field(5.0, ge=0, le=3600)
    options_cooldown_s: float = Field(60.0, ge=0, le=86_400)
    # premium stop / target of an option position, % of the entry premium (unset: per MODE,
    # scalp 20 / 30, intraday 30 / 60)
    options_stop_pct: float | None = Field(None, gt=0, lt=100)
    options_target_pct: float | None = Field(None, gt=0, le=1000)
    # strike ranking: filters, then a weighted score (weights are relative)
    options_min_oi_percentile: float = Field(50.0, ge=0, le=100)
    options_max_spread_pct: float = Field(5.0, gt=0, le=100)
    options_delta_min: float = Field(0.35, ge=0, le=1)
    options_delta_max: float = Field(0.65, ge=0, le=1)
    options_weight_oi: float = Field(0.3, ge=0)
    options_weight_spread: float = Field(0.25, ge=0)
    options_weight_delta: float = Field(0.25, ge=0)
    options_weight_volume: float = Field(0.2, ge=0)
    options_weight_oi_change: float = Field(0.0, ge=0)

    # -- notifier -------------------------------------------------------------------
    notifier_webhook: SecretStr | None = None
    notify_timeout_s: float = Field(5.0, gt=0, le=120)
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65_535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    notify_email_from: str | None = None
    notify_email_to: Annotated[tuple[str, ...], NoDecode] = ()

    # -- API ------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65_535)
    api_token: SecretStr | None = None

    # -- store ----------------------------------------------------------------------
    data_dir: Path = Field(default_factory=_default_data_dir)
    # The URL may carry a password, hence SecretStr; read it through ``database_url``.
    database_url_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    db_pool_min: int = Field(1, ge=0, le=1000)
    db_pool_max: int = Field(10, ge=1, le=1000)
    write_spool_max: int = Field(100_000, ge=1, le=10_000_000)
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"

    # -- sim and logging ------------------------------------------------------------
    sim_seed: int = Field(42, ge=0, le=2**63 - 1)
    sim_speed: float = Field(1.0, gt=0, le=100_000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # -- single-field parsing ---------------------------------------------------------

    @field_validator("broker", "execution", "mode", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("product", "sqlite_synchronous", "log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "broker_api_key",
        "broker_api_secret",
        "broker_access_token",
        "notifier_webhook",
        "smtp_password",
        "api_token",
        "database_url_secret",
    )
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and _is_placeholder(value.get_secret_value()):
            raise _fail("looks like a placeholder; set the real value or leave it unset")
        return value

    @field_validator("broker_ws_url")
    @classmethod
    def _ws_url(cls, value: str, info: ValidationInfo) -> str:
        _check_url(value, ("ws", "wss"))
        cls._tls_for_kite(value, "wss", "BROKER_WS_URL", info)
        return value

    @field_validator("broker_rest_url")
    @classmethod
    def _rest_url(cls, value: str, info: ValidationInfo) -> str:
        _check_url(value, ("http", "https"))
        cls._tls_for_kite(value, "https", "BROKER_REST_URL", info)
        return value.rstrip("/")

    @staticmethod
    def _tls_for_kite(url: str, secure: str, key: str, info: ValidationInfo) -> None:
        # Credentials travel to the Kite URLs: plain text is only acceptable on loopback
        # (the fake Kite server in tests).
        parts = urlsplit(url)
        if (
            info.data.get("broker") == "kite"
            and parts.scheme.lower() != secure
            and not is_loopback(parts.hostname or "")
        ):
            raise _fail(f"BROKER=kite needs a {secure}:// {key} (plain text only on loopback)")

    @field_validator("primary_timeframe", "confirm_timeframe")
    @classmethod
    def _timeframe(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parse_timeframe(value)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        return value.strip().lower()

    @field_validator("watchlist", mode="before")
    @classmethod
    def _watchlist(cls, value: object) -> tuple[str, ...]:
        symbols: list[str] = []
        for entry in _split(value):
            parts = [part.strip() for part in entry.upper().split(":")]
            if len(parts) == 1:
                parts.insert(0, "NSE")
            if len(parts) != 2 or parts[0] not in _EXCHANGES:
                raise _fail(f"malformed symbol {entry!r} (use SYMBOL, NSE:SYMBOL or BSE:SYMBOL)")
            exchange, symbol = parts
            if not _SYMBOL.fullmatch(symbol):
                raise _fail(f"malformed symbol {entry!r}")
            qualified = f"{exchange}:{symbol}"
            if qualified not in symbols:
                symbols.append(qualified)
        if not symbols:
            raise _fail("needs at least one symbol")
        return tuple(symbols)

    @field_validator("options_underlyings", mode="before")
    @classmethod
    def _underlyings(cls, value: object) -> tuple[str, ...]:
        names: list[str] = []
        for entry in _split(value):
            name = entry.upper()
            if not _SYMBOL.fullmatch(name):
                raise _fail(f"malformed underlying {entry!r}")
            if name not in names:
                names.append(name)
        return tuple(names)

    @field_validator("freeze_qty", mode="before")
    @classmethod
    def _freeze_qty(cls, value: object) -> dict[str, int]:
        if isinstance(value, dict):
            entries = [f"{k}={v}" for k, v in value.items()]
        else:
            entries = list(_split(value))
        out: dict[str, int] = {}
        for entry in entries:
            name, sep, qty = entry.partition("=")
            name = name.strip().upper()
            if not sep or not _SYMBOL.fullmatch(name) or not qty.strip().isdigit():
                raise _fail(f"malformed entry {entry!r} (use NAME=UNITS, e.g. NIFTY=1800)")
            if int(qty) < 1:
                raise _fail(f"{name}: a freeze quantity must be >= 1")
            out[name] = int(qty)
        return out

    @field_validator("extra_holidays", "extra_sessions", mode="before")
    @classmethod
    def _dates(cls, value: object) -> tuple[date, ...]:
        days: set[date] = set()
        for entry in _split(value):
            try:
                if not _ISO_DATE.fullmatch(entry):
                    raise ValueError(entry)
                days.add(date.fromisoformat(entry))
            except ValueError:
                raise _fail(f"malformed date {entry!r} (use YYYY-MM-DD)") from None
        return tuple(sorted(days))

    @field_validator("session_start", "session_end", "square_off_time")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        match = _HHMM.fullmatch(value)
        if match is None or int(match[1]) > 23 or int(match[2]) > 59:
            raise _fail(f"malformed time {value!r} (use HH:MM, exchange time)")
        return f"{int(match[1]):02d}:{match[2]}"

    @field_validator("notify_email_from")
    @classmethod
    def _email_from(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.fullmatch(value):
            raise _fail(f"malformed address {value!r}")
        return value

    @field_validator("notify_email_to", mode="before")
    @classmethod
    def _email_to(cls, value: object) -> tuple[str, ...]:
        addresses = _split(value)
        for address in addresses:
            if not _EMAIL.fullmatch(address):
                raise _fail(f"malformed address {address!r}")
        return tuple(dict.fromkeys(addresses))

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("charges_file")
    @classmethod
    def _charges_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = value.expanduser().absolute()  # a later chdir must not move it
        if not path.is_file():
            raise _fail(f"no such file {str(path)!r}")
        return path

    # -- cross-field checks (each on the later field) ---------------------------------

    @field_validator("execution")
    @classmethod
    def _live_needs_broker(cls, value: str, info: ValidationInfo) -> str:
        if value == "live" and info.data.get("broker") == "sim":
            raise _fail("live execution needs a real broker (BROKER=kite)", "EXECUTION/BROKER")
        return value

    @field_validator("broker_api_secret")
    @classmethod
    def _kite_credentials(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("broker") != "kite":
            return value
        missing = [
            key
            for key, present in (
                ("BROKER_API_KEY", info.data.get("broker_api_key", True) is not None),
                ("BROKER_API_SECRET", value is not None),
            )
            if not present
        ]
        if missing:
            raise _fail(f"BROKER=kite needs {' and '.join(missing)}", "/".join(missing))
        return value

    @field_validator("confirm_timeframe")
    @classmethod
    def _confirm_multiple(cls, value: str | None, info: ValidationInfo) -> str | None:
        mode = info.data.get("mode")
        if mode is None or "primary_timeframe" not in info.data:
            return value
        primary = info.data["primary_timeframe"] or _MODE_TIMEFRAMES[mode][0]
        confirm = value or _MODE_TIMEFRAMES[mode][1]
        primary_s, confirm_s = parse_timeframe(primary), parse_timeframe(confirm)
        if not (primary_s < 60 and 60 % primary_s == 0) and primary_s % 60 != 0:
            raise _fail(
                f"primary timeframe {primary} must divide a minute or be whole minutes",
                "PRIMARY_TIMEFRAME",
            )
        if confirm_s <= primary_s or confirm_s % primary_s != 0:
            raise _fail(
                f"confirm timeframe {confirm} must be a whole multiple (>1x) of the primary"
                f" timeframe {primary}",
                "PRIMARY_TIMEFRAME/CONFIRM_TIMEFRAME",
            )
        return value

    @field_validator("ema_long")
    @classmethod
    def _ema_order(cls, value: int, info: ValidationInfo) -> int:
        short = info.data.get("ema_short")
        if short is not None and short >= value:
            raise _fail(
                f"EMA_SHORT ({short}) must be less than EMA_LONG ({value})", "EMA_SHORT/EMA_LONG"
            )
        return value

    @field_validator("session_end")
    @classmethod
    def _session_order(cls, value: str, info: ValidationInfo) -> str:
        start = info.data.get("session_start")
        if start is not None and _minutes(start) >= _minutes(value):
            raise _fail(
                f"SESSION_START ({start}) must be before SESSION_END ({value})",
                "SESSION_START/SESSION_END",
            )
        return value

    @field_validator("square_off_time")
    @classmethod
    def _square_off_in_session(cls, value: str, info: ValidationInfo) -> str:
        start, end = info.data.get("session_start"), info.data.get("session_end")
        if (
            start is not None
            and end is not None
            and not _minutes(start) < _minutes(value) < _minutes(end)
        ):
            raise _fail(
                f"{value} must be inside the session ({start}-{end})",
                "SQUARE_OFF_TIME",
            )
        return value

    @field_validator("extra_sessions")
    @classmethod
    def _calendar_overlap(cls, value: tuple[date, ...], info: ValidationInfo) -> tuple[date, ...]:
        both = sorted(set(value) & set(info.data.get("extra_holidays", ())))
        if both:
            days = ", ".join(d.isoformat() for d in both)
            raise _fail(f"{days} listed in both", "EXTRA_HOLIDAYS/EXTRA_SESSIONS")
        return value

    @field_validator("daily_loss_limit")
    @classmethod
    def _loss_within_capital(cls, value: float, info: ValidationInfo) -> float:
        capital = info.data.get("capital")
        if capital is not None and value > capital:
            raise _fail(
                f"DAILY_LOSS_LIMIT ({value:g}) exceeds CAPITAL ({capital:g})",
                "DAILY_LOSS_LIMIT/CAPITAL",
            )
        return value

    @field_validator("options_underlyings")
    @classmethod
    def _options_need_underlyings(
        cls, value: tuple[str, ...], info: ValidationInfo
    ) -> tuple[str, ...]:
        if info.data.get("options_enabled") and not value:
            raise _fail("OPTIONS_ENABLED needs at least one underlying", "OPTIONS_UNDERLYINGS")
        return value

    @field_validator("notify_email_to")
    @classmethod
    def _email_sender(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        data = info.data
        if (
            value
            and data.get("smtp_host")
            and "notify_email_from" in data
            and not (data["notify_email_from"] or data.get("smtp_user"))
        ):
            raise _fail("email needs NOTIFY_EMAIL_FROM (or SMTP_USER)", "NOTIFY_EMAIL_FROM")
        return value

    @field_validator("api_host")
    @classmethod
    def _host(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value.strip("[]"))
        except ValueError:
            if not _HOSTNAME.fullmatch(value):
                raise _fail(f"malformed host {value!r}") from None
        return value

    @field_validator("api_token")
    @classmethod
    def _token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise _fail("must be at least 16 characters")
        host = info.data.get("api_host")
        if value is None and host is not None and not is_loopback(host):
            raise _fail(
                f"binding the API to non-loopback {host} needs API_TOKEN", "API_HOST/API_TOKEN"
            )
        return value

    @field_validator("notifier_webhook")
    @classmethod
    def _webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_url(value.get_secret_value(), ("http", "https"))
        return value

    @field_validator("database_url_secret")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value()
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme == "sqlite":
            if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
                raise _fail("use sqlite:///relative/path or sqlite:////absolute/path")
        elif scheme in ("postgresql", "postgres"):
            try:
                urlsplit(url).port  # noqa: B018 -- raises ValueError on a malformed port
            except ValueError:
                raise _fail("malformed PostgreSQL URL") from None
        else:
            shown = f"scheme {scheme!r}" if scheme.isalnum() else "no scheme"
            raise _fail(
                f"unsupported URL ({shown}); use sqlite:///path or postgresql://user@host/db"
            )
        return value

    @field_validator("db_pool_max")
    @classmethod
    def _pool_order(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("db_pool_min")
        if low is not None and low > value:
            raise _fail(
                f"DB_POOL_MIN ({low}) must not exceed DB_POOL_MAX ({value})",
                "DB_POOL_MIN/DB_POOL_MAX",
            )
        return value

    # -- derived values ---------------------------------------------------------------

    @classmethod
    def env_names(cls) -> tuple[str, ...]:
        """The environment / ``.env`` name of every setting, in field order."""
        return tuple(_env_name(name) for name in cls.model_fields)

    @property
    def primary_timeframe_s(self) -> int:
        """Primary bar length in seconds (``PRIMARY_TIMEFRAME``, else from ``MODE``)."""
        return parse_timeframe(self.primary_timeframe or _MODE_TIMEFRAMES[self.mode][0])

    @property
    def confirm_timeframe_s(self) -> int:
        """Confirm bar length in seconds (``CONFIRM_TIMEFRAME``, else from ``MODE``)."""
        return parse_timeframe(self.confirm_timeframe or _MODE_TIMEFRAMES[self.mode][1])

    @property
    def database_url(self) -> str:
        """The database URL in clear (it may hold a password): never log it.

        Defaults to ``sqlite:///<DATA_DIR>/mental_trader.db``.
        """
        if self.database_url_secret is None:
            return f"sqlite:///{self.data_dir / 'mental_trader.db'}"
        return self.database_url_secret.get_secret_value()

    @property
    def database_url_safe(self) -> str:
        """The database URL with any password replaced by ``***``, for logs and the API."""
        return _mask_url(self.database_url)

    @property
    def database_backend(self) -> Literal["sqlite", "postgresql"]:
        """Which store the URL selects."""
        return "sqlite" if self.database_url.lower().startswith("sqlite:") else "postgresql"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (relative to the working directory if relative), else None."""
        if self.database_backend != "sqlite":
            return None
        return Path(self.database_url[len("sqlite:///") :])

    @property
    def email_enabled(self) -> bool:
        """Whether email notifications are configured (SMTP_HOST and NOTIFY_EMAIL_TO)."""
        return bool(self.smtp_host and self.notify_email_to)

    @property
    def email_from(self) -> str | None:
        """The sender address: NOTIFY_EMAIL_FROM, else SMTP_USER."""
        return self.notify_email_from or self.smtp_user

    def public_dict(self) -> dict[str, object]:
        """Values safe to show (the ``/config`` endpoint): an allow-list, never a secret.

        Secrets appear only as ``<name>_set`` booleans; the database URL as
        ``database_url_safe``. Values are JSON-ready (lists, strings, numbers).
        """
        out: dict[str, object] = {}
        for name in _PUBLIC_FIELDS:
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = [v.isoformat() if isinstance(v, date) else v for v in value]
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        out["primary_timeframe_s"] = self.primary_timeframe_s
        out["confirm_timeframe_s"] = self.confirm_timeframe_s
        out["database_url_safe"] = self.database_url_safe
        out["database_backend"] = self.database_backend
        out["email_enabled"] = self.email_enabled
        for name in _SECRET_FIELDS:
            out[f"{_env_name(name).lower()}_set"] = getattr(self, name) is not None
        return out


def _env_name(field_name: str) -> str:
    alias = Settings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return field_name.upper()


_SECRET_FIELDS = tuple(
    name for name, f in Settings.model_fields.items() if SecretStr in get_args(f.annotation)
)
# What public_dict shows, listed by hand so that a new field stays private until someone
# decides otherwise (tests/test_config.py checks every field is classified).
_PUBLIC_FIELDS = (
    "broker", "execution", "broker_ws_url", "broker_rest_url",
    "mode", "primary_timeframe", "confirm_timeframe", "watchlist", "warmup_bars",
    "ema_short", "ema_long",
    "session_start", "session_end", "square_off_time", "bar_grace_ms", "extra_holidays",
    "extra_sessions",
    "capital", "risk_per_trade_pct", "stop_loss_pct", "target_pct", "trailing_stop_pct",
    "max_position_value", "max_open_positions", "max_trades_per_day", "daily_loss_limit",
    "max_orders_per_second", "product",
    "paper_half_spread_bps", "paper_slippage_bps", "charges_file",
    "options_enabled", "options_underlyings", "freeze_qty", "options_min_days_to_expiry",
    "options_max_lots",
    "options_premium_risk", "options_debounce_s", "options_cooldown_s", "options_stop_pct",
    "options_target_pct", "options_min_oi_percentile", "options_max_spread_pct",
    "options_delta_min", "options_delta_max", "options_weight_oi", "options_weight_spread",
    "options_weight_delta", "options_weight_volume", "options_weight_oi_change",
    "notify_timeout_s", "smtp_host", "smtp_port",
    "api_host", "api_port",
    "data_dir", "db_pool_min", "db_pool_max", "write_spool_max", "sqlite_synchronous",
    "sim_seed", "sim_speed", "log_level",
)  # fmt: skip
# Not secrets but personal data: kept out of public_dict too.
_PRIVATE_FIELDS = ("smtp_user", "notify_email_from", "notify_email_to")


def _error_keys() -> dict[str, tuple[str, bool]]:
    """loc[0] of a ValidationError (field name or lower-case alias) -> (env name, secret?)."""
    keys: dict[str, tuple[str, bool]] = {}
    for name in Settings.model_fields:
        env = _env_name(name)
        keys[name] = keys[env.lower()] = (env, name in _SECRET_FIELDS)
    return keys


_KEYS = _error_keys()
# keyword names load_settings accepts: the field names, DATABASE_URL as database_url
_OVERRIDE_NAMES = frozenset(env.lower() for env in Settings.env_names())


def _describe(exc: ValidationError) -> str:
    """One line naming every bad key by its env name, without echoing a secret."""
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        ctx = error.get("ctx") or {}
        loc = str(error["loc"][0]).lower() if error["loc"] else ""
        env, secret = _KEYS.get(loc, (loc.upper() or "configuration", True))
        label = str(ctx.get("keys", env))
        message = error["msg"]
        if error["type"] != "mental_trader_config" and not secret:
            shown = repr(error.get("input"))
            message += f" (got {shown[:60]})"
        problems.append(f"{label}: {message}")
    return "Invalid configuration: " + "; ".join(dict.fromkeys(problems))


def _warn_unknown_keys(env_file: str | Path) -> None:
    """Log a warning for a ``.env`` key that looks like a misspelt setting."""
    path = Path(env_file)
    if not path.is_file():
        return
    names = Settings.env_names()
    prefixes = {name.split("_", 1)[0] + "_" for name in names if "_" in name}
    for key in dotenv_values(path):
        upper = key.upper()
        if upper in names:
            continue
        close = difflib.get_close_matches(upper, names, n=1, cutoff=0.8)
        if close:
            log.warning("%s: unknown key %s ignored (did you mean %s?)", path, key, close[0])
        elif any(upper.startswith(p) for p in prefixes):
            log.warning("%s: unknown key %s ignored (not a Mental Trader setting)", path, key)


def load_settings(*, _env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Build the settings from overrides, the environment and the ``.env`` file.

    Precedence: ``overrides`` > environment > ``.env`` > defaults. Unknown ``.env`` keys
    that look like a misspelt setting are logged as warnings.

    Args:
        _env_file: the dotenv file to read (relative to the working directory), or None
            to read none.
        **overrides: field values (snake_case field names, e.g. ``api_port=8080``, or
            ``database_url=...``), such as command-line options.

    Returns:
        The validated, frozen settings.

    Raises:
        ConfigError: one message naming every invalid key by its env name; it never
            contains a secret value.
    """
    unknown = sorted(set(overrides) - _OVERRIDE_NAMES)
    if unknown:
        raise ConfigError(f"Invalid configuration: unknown setting(s) {', '.join(unknown)}")
    if _env_file is not None:
        _warn_unknown_keys(_env_file)
    try:
        # _env_file goes through a dict: mypy sees only the field-based __init__
        settings = Settings(**{"_env_file": _env_file, **overrides})
    except ValidationError as exc:
        error = ConfigError(_describe(exc))
    except SettingsError as exc:  # a source failed to parse; its message holds no value
        error = ConfigError(f"Invalid configuration: {exc}")
    else:
        _log_summary(settings)
        return settings
    # raised outside the except block, so the ValidationError (which holds the raw
    # inputs) is neither chained nor shown in a traceback
    raise error


def _log_summary(settings: Settings) -> None:
    log.info(
        "configuration: broker=%s execution=%s mode=%s timeframes=%ss/%ss symbols=%d store=%s",
        settings.broker,
        settings.execution,
        settings.mode,
        settings.primary_timeframe_s,
        settings.confirm_timeframe_s,
        len(settings.watchlist),
        settings.database_url_safe,
    )
    if settings.execution == "live":
        log.warning("LIVE execution: orders go to %s with real money", settings.broker)
