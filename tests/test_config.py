"""Settings: defaults, sources, parsing, cross-field rules, secrecy and ``.env.example``."""

from __future__ import annotations

import json
import logging
import os
import re
import traceback
from datetime import date
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from mental_trader import config
from mental_trader.config import Settings, load_settings, parse_timeframe
from mental_trader.errors import ConfigError

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"
KITE = {
    "broker": "kite",
    "broker_api_key": "kitekey0123456789",
    "broker_api_secret": "kitesecret0123456789",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting leaks in from the host: env names removed, cwd an empty tmp dir."""
    names = set(Settings.env_names())
    for key in list(os.environ):
        if key.upper() in names:
            monkeypatch.delenv(key)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def write_env(directory: Path, text: str) -> Path:
    path = directory / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(**overrides: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    return str(info.value)


# -- defaults -------------------------------------------------------------------------


def test_defaults_are_safe_and_runnable(tmp_path: Path) -> None:
    s = load_settings()
    assert (s.broker, s.execution, s.mode) == ("sim", "paper", "scalp")
    assert s.watchlist == ("NSE:RELIANCE", "NSE:INFY", "NSE:ICICIBANK")
    assert (s.warmup_bars, s.ema_short, s.ema_long) == (300, 8, 21)
    assert (s.primary_timeframe, s.confirm_timeframe) == (None, None)
    assert (s.primary_timeframe_s, s.confirm_timeframe_s) == (60, 300)
    assert s.broker_ws_url == "wss://ws.kite.trade"
    assert s.broker_rest_url == "https://api.kite.trade"
    assert s.broker_api_key is None
    assert s.broker_api_secret is None
    assert s.notifier_webhook is None
    assert (s.session_start, s.session_end, s.square_off_time) == ("09:15", "15:30", "15:15")
    assert s.bar_grace_ms == 1000
    assert (s.extra_holidays, s.extra_sessions) == ((), ())
    assert (s.capital, s.risk_per_trade_pct, s.daily_loss_limit) == (100_000.0, 0.5, 2000.0)
    assert (s.stop_loss_pct, s.target_pct, s.trailing_stop_pct) == (0.5, 1.0, None)
    assert (s.max_position_value, s.max_open_positions, s.max_trades_per_day) == (50_000.0, 3, 20)
    assert (s.max_orders_per_second, s.product) == (5, "MIS")
    assert (s.paper_half_spread_bps, s.paper_slippage_bps, s.charges_file) == (2.0, 1.0, None)
    assert (s.options_enabled, s.options_underlyings, s.options_max_lots) == (False, ("NIFTY",), 2)
    assert (s.options_min_days_to_expiry, s.options_premium_risk) == (0, 2000.0)
    assert (s.options_debounce_s, s.options_cooldown_s) == (5.0, 60.0)
    assert (s.notify_timeout_s, s.smtp_host, s.smtp_port, s.notify_email_to) == (5.0, None, 587, ())
    assert s.email_enabled is False
    assert (s.api_host, s.api_port, s.api_token) == ("127.0.0.1", 8000, None)
    assert (s.db_pool_min, s.db_pool_max, s.write_spool_max) == (1, 10, 100_000)
    assert s.sqlite_synchronous == "FULL"
    assert (s.sim_seed, s.sim_speed, s.log_level) == (42, 1.0, "INFO")
    data_dir = tmp_path / "work" / "data"
    assert s.data_dir == data_dir
    assert s.database_url == f"sqlite:///{data_dir}/mental_trader.db"
    assert s.database_url.startswith("sqlite:////")  # absolute path: four slashes
    assert s.database_url_safe == s.database_url
    assert s.database_backend == "sqlite"
    assert s.sqlite_path == data_dir / "mental_trader.db"
    assert not data_dir.exists()  # config does no I/O


def test_data_dir_default_and_home_expansion(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_settings().data_dir == tmp_path / "work" / "data"
    monkeypatch.setenv("DATA_DIR", "~/trader")
    s = load_settings()
    assert s.data_dir == tmp_path / "home" / "trader"
    assert s.database_url == f"sqlite:///{tmp_path}/home/trader/mental_trader.db"


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValidationError):
        s.ema_short = 3  # type: ignore[misc]
    assert s.ema_short == 8


# -- sources --------------------------------------------------------------------------

SEED = [
    ("DATABASE_URL", "postgresql://mt@db.internal:5432/trading", "database_url", "postgresql://mt@db.internal:5432/trading"),
    ("BROKER_WS_URL", "wss://ws.example.com/feed", "broker_ws_url", "wss://ws.example.com/feed"),
    ("BROKER_REST_URL", "https://rest.example.com", "broker_rest_url", "https://rest.example.com"),
    ("BROKER_API_KEY", "ak0123456789abcd", "broker_api_key", "ak0123456789abcd"),
    ("BROKER_API_SECRET", "as0123456789abcdef", "broker_api_secret", "as0123456789abcdef"),
    ("WATCHLIST", "TCS,SBIN", "watchlist", ("NSE:TCS", "NSE:SBIN")),
    ("WARMUP_BARS", "120", "warmup_bars", 120),
    ("EMA_SHORT", "5", "ema_short", 5),
    ("EMA_LONG", "34", "ema_long", 34),
    ("NOTIFIER_WEBHOOK", "https://hooks.example.com/abc123", "notifier_webhook", "https://hooks.example.com/abc123"),
]  # fmt: skip


def _value(s: Settings, attr: str) -> object:
    value = getattr(s, attr)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@pytest.mark.parametrize(("env", "raw", "attr", "expected"), SEED)
def test_seed_key_from_environment(
    monkeypatch: pytest.MonkeyPatch, env: str, raw: str, attr: str, expected: object
) -> None:
    monkeypatch.setenv(env, raw)
    assert _value(load_settings(), attr) == expected


@pytest.mark.parametrize(("env", "raw", "attr", "expected"), SEED)
def test_seed_key_from_dotenv(
    clean_env: Path, env: str, raw: str, attr: str, expected: object
) -> None:
    write_env(clean_env, f"{env}={raw}\n")
    assert _value(load_settings(), attr) == expected
    assert _value(load_settings(_env_file=None), attr) != expected  # the file was the source


def test_environment_beats_dotenv_and_overrides_beat_both(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    write_env(clean_env, "EMA_SHORT=5\nEMA_LONG=30\nWARMUP_BARS=50\n")
    monkeypatch.setenv("ema_short", "6")  # names are case-insensitive
    s = load_settings(warmup_bars=70)
    assert (s.ema_short, s.ema_long, s.warmup_bars) == (6, 30, 70)


def test_explicit_env_file_and_empty_values(tmp_path: Path) -> None:
    path = tmp_path / "custom.env"
    path.write_text("MODE=intraday\nWATCHLIST=\nPRIMARY_TIMEFRAME=\n", encoding="utf-8")
    s = load_settings(_env_file=path)
    assert s.mode == "intraday"
    assert s.watchlist == ("NSE:RELIANCE", "NSE:INFY", "NSE:ICICIBANK")  # empty = default
    assert (s.primary_timeframe_s, s.confirm_timeframe_s) == (300, 900)


def test_misspelt_dotenv_key_is_warned(clean_env: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_env(clean_env, "EMA_SHORTT=5\nBROKER_TYPE=kite\nPOSTGRES_DB=other_tool\n")
    with caplog.at_level(logging.WARNING, logger="mental_trader.config"):
        s = load_settings()
    assert s.ema_short == 8
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("EMA_SHORTT" in w and "did you mean EMA_SHORT" in w for w in warnings)
    assert any("BROKER_TYPE" in w for w in warnings)
    assert not any("POSTGRES_DB" in w for w in warnings)


def test_unknown_override_is_an_error() -> None:
    assert "unknown setting(s) ema_shrot" in config_error(ema_shrot=5)


# -- WATCHLIST ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("RELIANCE", ("NSE:RELIANCE",)),
        (" reliance , infy ", ("NSE:RELIANCE", "NSE:INFY")),
        ("NSE:INFY,bse:TCS", ("NSE:INFY", "BSE:TCS")),
        ("nse : sbin", ("NSE:SBIN",)),
        ("INFY,NSE:INFY,infy,TCS", ("NSE:INFY", "NSE:TCS")),
        ("M&M,BAJAJ-AUTO,,", ("NSE:M&M", "NSE:BAJAJ-AUTO")),
    ],
)
def test_watchlist_parsing(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: tuple[str, ...]
) -> None:
    monkeypatch.setenv("WATCHLIST", raw)
    assert load_settings().watchlist == expected


@pytest.mark.parametrize(
    ("raw", "bad"),
    [
        ("RELIANCE,RELI ANCE", "'RELI ANCE'"),
        ("MCX:GOLD", "'MCX:GOLD'"),
        ("NSE:INFY:X", "'NSE:INFY:X'"),
        ("INFY,TC$", "'TC$'"),
        ("A" * 33, "'" + "A" * 33 + "'"),
        (" , ", "needs at least one symbol"),
    ],
)
def test_watchlist_malformed(monkeypatch: pytest.MonkeyPatch, raw: str, bad: str) -> None:
    monkeypatch.setenv("WATCHLIST", raw)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith("Invalid configuration: WATCHLIST: ")
    assert bad in str(info.value)
    assert isinstance(info.value, ValueError)


# -- single keys and cross-field rules --------------------------------------------------


def test_ema_short_must_be_below_ema_long() -> None:
    message = config_error(ema_short=21, ema_long=8)
    assert message == (
        "Invalid configuration: EMA_SHORT/EMA_LONG: EMA_SHORT (21) must be less than EMA_LONG (8)"
    )
    assert "EMA_SHORT (10) must be less than EMA_LONG (10)" in config_error(
        ema_short=10, ema_long=10
    )
    assert config_error(ema_short=0).startswith("Invalid configuration: EMA_SHORT: ")


def test_all_problems_in_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHLIST", "RELI ANCE")
    monkeypatch.setenv("EMA_SHORT", "21")
    monkeypatch.setenv("EMA_LONG", "8")
    monkeypatch.setenv("API_PORT", "http")
    assert config_error() == (
        "Invalid configuration: WATCHLIST: malformed symbol 'RELI ANCE'; "
        "EMA_SHORT/EMA_LONG: EMA_SHORT (21) must be less than EMA_LONG (8); "
        "API_PORT: Input should be a valid integer, unable to parse string as an integer"
        " (got 'http')"
    )


def test_unknown_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER", "zerodha")
    assert config_error() == (
        "Invalid configuration: BROKER: Input should be 'sim' or 'kite' (got 'zerodha')"
    )
    monkeypatch.setenv("BROKER", " SIM ")
    assert load_settings().broker == "sim"


def test_live_execution_needs_a_real_broker() -> None:
    assert config_error(execution="live") == (
        "Invalid configuration: EXECUTION/BROKER: live execution needs a real broker (BROKER=kite)"
    )
    assert load_settings(execution="LIVE", **KITE).execution == "live"


def test_kite_needs_key_and_secret() -> None:
    assert config_error(broker="kite") == (
        "Invalid configuration: BROKER_API_KEY/BROKER_API_SECRET: "
        "BROKER=kite needs BROKER_API_KEY and BROKER_API_SECRET"
    )
    assert "BROKER=kite needs BROKER_API_SECRET" in config_error(
        broker="kite", broker_api_key="kitekey0123456789"
    )
    s = load_settings(**KITE)
    assert s.broker_api_key is not None
    assert s.broker_api_key.get_secret_value() == "kitekey0123456789"


def test_kite_needs_tls_except_on_loopback() -> None:
    message = config_error(broker_rest_url="http://api.kite.trade", **KITE)
    assert message.startswith(
        "Invalid configuration: BROKER_REST_URL: BROKER=kite needs a https://"
    )
    assert "BROKER_WS_URL" in config_error(broker_ws_url="ws://ws.kite.trade", **KITE)
    s = load_settings(
        broker_rest_url="http://127.0.0.1:8765/", broker_ws_url="ws://localhost:8766", **KITE
    )
    assert (s.broker_rest_url, s.broker_ws_url) == ("http://127.0.0.1:8765", "ws://localhost:8766")
    assert load_settings(broker_rest_url="http://api.example.com").broker == "sim"  # unused
    assert "BROKER_WS_URL: must be a ws:// or wss://" in config_error(broker_ws_url="https://x.io")


@pytest.mark.parametrize(
    "placeholder",
    ["changeme", "CHANGE-ME", "your_api_key", "Your API Secret", "xxx", "XXXXXXXX", "...", "<...>",
     "<your key here>", "${KITE_API_KEY}", "placeholder"],
)  # fmt: skip
@pytest.mark.parametrize(
    "key", ["broker_api_key", "broker_api_secret", "broker_access_token", "smtp_password"]
)
def test_placeholder_secrets_are_rejected(key: str, placeholder: str) -> None:
    message = config_error(**{key: placeholder})
    assert f"{key.upper()}: looks like a placeholder" in message


def test_api_token_rules() -> None:
    assert "API_TOKEN: must be at least 16 characters" in config_error(api_token="0123456789")
    assert "API_TOKEN: looks like a placeholder" in config_error(api_token="<your api token here>")
    assert config_error(api_host="0.0.0.0") == (
        "Invalid configuration: API_HOST/API_TOKEN: binding the API to non-loopback 0.0.0.0"
        " needs API_TOKEN"
    )
    s = load_settings(api_host="0.0.0.0", api_token="a-real-token-0123456789")
    assert s.api_token is not None
    assert s.api_host == "0.0.0.0"
    assert load_settings(api_host="::1").api_host == "::1"
    assert "API_PORT" in config_error(api_port=70000)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://user:pw@host/db", "unsupported URL (scheme 'mysql')"),
        ("postgresql+asyncpg://u@h/db", "unsupported URL (no scheme)"),
        ("db.sqlite", "unsupported URL (no scheme)"),
        ("sqlite://relative.db", "use sqlite:///relative/path"),
        ("sqlite:///", "use sqlite:///relative/path"),
        ("postgresql://u:pw@host:port/db", "malformed PostgreSQL URL"),
    ],
)
def test_bad_database_url(url: str, shown: str) -> None:
    message = config_error(database_url=url)
    assert message.startswith("Invalid configuration: DATABASE_URL: ")
    assert shown in message
    assert "pw" not in message


@pytest.mark.parametrize(
    ("url", "backend", "path"),
    [
        ("sqlite:///data/mt.db", "sqlite", Path("data/mt.db")),
        ("sqlite:////var/lib/mt/mt.db", "sqlite", Path("/var/lib/mt/mt.db")),
        ("postgresql://mt@localhost/test", "postgresql", None),
        ("postgres://mt:pw@10.0.0.5:6432/test", "postgresql", None),
    ],
)
def test_good_database_url(url: str, backend: str, path: Path | None) -> None:
    s = load_settings(database_url=url)
    assert (s.database_url, s.database_backend, s.sqlite_path) == (url, backend, path)


def test_database_url_safe_masks_the_password() -> None:
    url = "postgresql://trader:pa55:w0rd@db.example.com:5432/mt?sslmode=require&password=pa55"
    s = load_settings(database_url=url)
    assert s.database_url == url
    assert s.database_url_safe == (
        "postgresql://trader:***@db.example.com:5432/mt?sslmode=require&password=***"
    )
    assert load_settings(database_url="postgres://trader@h/mt").database_url_safe == (
        "postgres://trader@h/mt"
    )


def test_timeframes() -> None:
    s = load_settings(mode="intraday")
    assert (s.primary_timeframe, s.primary_timeframe_s, s.confirm_timeframe_s) == (None, 300, 900)
    s = load_settings(primary_timeframe="30s", confirm_timeframe="3M")
    assert (s.primary_timeframe, s.confirm_timeframe) == ("30s", "3m")
    assert (s.primary_timeframe_s, s.confirm_timeframe_s) == (30, 180)
    s = load_settings(mode="intraday", confirm_timeframe="1h")
    assert (s.primary_timeframe_s, s.confirm_timeframe_s) == (300, 3600)
    assert load_settings(primary_timeframe="2m", confirm_timeframe="10m").confirm_timeframe_s == 600


MULTIPLE = "PRIMARY_TIMEFRAME/CONFIRM_TIMEFRAME: confirm timeframe"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"mode": "intraday", "primary_timeframe": "10m"},
            f"{MULTIPLE} 15m must be a whole multiple (>1x) of the primary timeframe 10m",
        ),
        ({"confirm_timeframe": "1m"}, f"{MULTIPLE} 1m must be a whole multiple"),
        ({"primary_timeframe": "2m", "confirm_timeframe": "5m"}, f"{MULTIPLE} 5m must"),
        (
            {"primary_timeframe": "7s"},
            "PRIMARY_TIMEFRAME: primary timeframe 7s must divide a minute or be whole minutes",
        ),
        ({"primary_timeframe": "90s", "confirm_timeframe": "3m"}, "primary timeframe 90s must"),
        ({"primary_timeframe": "1 min"}, "PRIMARY_TIMEFRAME: malformed timeframe '1 min'"),
        ({"confirm_timeframe": "0m"}, "CONFIRM_TIMEFRAME: timeframe '0m' must be between"),
        ({"mode": "swing"}, "MODE: Input should be 'scalp' or 'intraday' (got 'swing')"),
    ],
)
def test_timeframe_errors(overrides: dict[str, object], expected: str) -> None:
    assert expected in config_error(**overrides)


def test_parse_timeframe() -> None:
    assert [parse_timeframe(t) for t in ("30s", "1m", "5M", " 15m ", "1h")] == [
        30,
        60,
        300,
        900,
        3600,
    ]
    with pytest.raises(ValueError, match="malformed"):
        parse_timeframe("5")


def test_session_times() -> None:
    s = load_settings(session_start="9:30", session_end="15:00", square_off_time="14:45")
    assert (s.session_start, s.session_end, s.square_off_time) == ("09:30", "15:00", "14:45")
    assert "SQUARE_OFF_TIME: 15:45 must be inside the session (09:15-15:30)" in config_error(
        square_off_time="15:45"
    )
    assert "SESSION_START/SESSION_END" in config_error(session_start="15:30", session_end="09:15")
    assert "SESSION_END: malformed time '25:00'" in config_error(session_end="25:00")
    assert "BAR_GRACE_MS" in config_error(bar_grace_ms=60_001)


def test_calendar_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTRA_HOLIDAYS", "2026-03-03, 2026-01-26,2026-03-03")
    monkeypatch.setenv("EXTRA_SESSIONS", "2026-11-08")
    s = load_settings()
    assert s.extra_holidays == (date(2026, 1, 26), date(2026, 3, 3))
    assert s.extra_sessions == (date(2026, 11, 8),)
    assert "EXTRA_HOLIDAYS/EXTRA_SESSIONS: 2026-11-08 listed in both" in config_error(
        extra_holidays="2026-11-08"
    )
    assert "EXTRA_SESSIONS: malformed date '2026/11/08'" in config_error(
        extra_sessions="2026/11/08"
    )


def test_risk_limits() -> None:
    assert "MAX_ORDERS_PER_SECOND" in config_error(max_orders_per_second=10)
    assert "RISK_PER_TRADE_PCT" in config_error(risk_per_trade_pct=5.5)
    assert "CAPITAL: Input should be a finite number" in config_error(capital="inf")
    assert "DAILY_LOSS_LIMIT/CAPITAL" in config_error(capital=1000, daily_loss_limit=2000)
    assert "PRODUCT: Input should be 'MIS', 'CNC' or 'NRML'" in config_error(product="BO")
    s = load_settings(product="nrml", trailing_stop_pct="0.3", log_level="debug")
    assert (s.product, s.trailing_stop_pct, s.log_level) == ("NRML", 0.3, "DEBUG")


def test_paper_and_charges_settings(tmp_path: Path) -> None:
    table = tmp_path / "my charges.toml"
    table.write_text("version = 1\n", encoding="utf-8")
    s = load_settings(paper_half_spread_bps="0", paper_slippage_bps="2.5", charges_file=table)
    assert (s.paper_half_spread_bps, s.paper_slippage_bps, s.charges_file) == (0.0, 2.5, table)
    assert s.public_dict()["charges_file"] == str(table)
    assert "PAPER_SLIPPAGE_BPS" in config_error(paper_slippage_bps=-1)
    assert "PAPER_HALF_SPREAD_BPS" in config_error(paper_half_spread_bps=1001)
    assert "CHARGES_FILE: no such file" in config_error(charges_file=tmp_path / "missing.toml")
    assert "CHARGES_FILE: no such file" in config_error(charges_file=tmp_path)


def test_options_and_store_rules() -> None:
    s = load_settings(options_enabled="true", options_underlyings="nifty, banknifty,NIFTY")
    assert (s.options_enabled, s.options_underlyings) == (True, ("NIFTY", "BANKNIFTY"))
    assert "OPTIONS_UNDERLYINGS: OPTIONS_ENABLED needs" in config_error(
        options_enabled=True, options_underlyings=","
    )
    assert "DB_POOL_MIN/DB_POOL_MAX: DB_POOL_MIN (11) must not exceed DB_POOL_MAX (10)" in (
        config_error(db_pool_min=11)
    )
    assert "SQLITE_SYNCHRONOUS" in config_error(sqlite_synchronous="OFF")
    assert load_settings(sqlite_synchronous="normal").sqlite_synchronous == "NORMAL"


def test_email_settings() -> None:
    assert load_settings(smtp_host="smtp.example.com").email_enabled is False
    s = load_settings(
        smtp_host="smtp.example.com", smtp_user="bot@example.com", notify_email_to="a@x.in, b@y.in"
    )
    assert (s.email_enabled, s.email_from, s.notify_email_to) == (
        True, "bot@example.com", ("a@x.in", "b@y.in"),
    )  # fmt: skip
    assert "NOTIFY_EMAIL_FROM: email needs NOTIFY_EMAIL_FROM" in config_error(
        smtp_host="smtp.example.com", notify_email_to="a@x.in"
    )
    assert "NOTIFY_EMAIL_TO: malformed address 'nobody'" in config_error(notify_email_to="nobody")
    assert "NOTIFIER_WEBHOOK: must be a http:// or https:// URL" in config_error(
        notifier_webhook="ftp://hooks.example.com/x"
    )


# -- secrecy --------------------------------------------------------------------------

SECRETS = {
    "broker_api_key": "AK-Zq81hdQ0KEYVAL",
    "broker_api_secret": "AS-7uWm2SECRETVAL",
    "broker_access_token": "AT-p0o9TOKENVAL",
    "notifier_webhook": "https://hooks.example.com/services/WH-HOOKTOKENVAL",
    "smtp_password": "SP-mailPASSVAL",
    "api_token": "APIT-0123456789-TOKVAL",
    "database_url": "postgresql://trader:DBPASSVAL@db.example.com/mt",
}
MARKERS = ("KEYVAL", "SECRETVAL", "TOKENVAL", "HOOKTOKENVAL", "PASSVAL", "TOKVAL", "DBPASSVAL")


def _assert_no_secret(text: str) -> None:
    for marker in MARKERS:
        assert marker not in text, marker


def test_secrets_absent_from_repr_str_public_dict_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        s = load_settings(**KITE | SECRETS)
        logging.getLogger("test").info("settings %s / %r / %s", s, s, s.public_dict())
    assert s.database_url == SECRETS["database_url"]  # still usable
    _assert_no_secret(repr(s))
    _assert_no_secret(str(s))
    _assert_no_secret(caplog.text)
    assert "postgresql://trader:***@db.example.com/mt" in caplog.text
    public = s.public_dict()
    _assert_no_secret(json.dumps(public))
    assert public["database_url_safe"] == "postgresql://trader:***@db.example.com/mt"
    assert public["broker_api_key_set"] is True
    assert public["smtp_password_set"] is True
    assert public["database_url_set"] is True
    assert public["watchlist"] == ["NSE:RELIANCE", "NSE:INFY", "NSE:ICICIBANK"]
    assert not set(public) & {"broker_api_key", "api_token", "database_url", "smtp_user"}


def test_every_field_is_classified_public_secret_or_private() -> None:
    fields = list(Settings.model_fields)
    classified = [*config._PUBLIC_FIELDS, *config._SECRET_FIELDS, *config._PRIVATE_FIELDS]
    assert sorted(classified) == sorted(fields)
    for name in config._SECRET_FIELDS:
        assert Settings.model_fields[name].annotation == SecretStr | None, name


def test_public_dict_defaults_are_json() -> None:
    public = load_settings().public_dict()
    assert json.loads(json.dumps(public)) == public
    assert public["broker_api_key_set"] is False
    assert (public["primary_timeframe_s"], public["confirm_timeframe_s"]) == (60, 300)


def test_config_error_never_echoes_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER", "nope")  # a non-secret error, echoed
    monkeypatch.setenv("BROKER_API_KEY", "${SHELL_KEYVAL}")  # placeholder: an error
    monkeypatch.setenv("API_TOKEN", "short-TOKVAL")  # too short
    monkeypatch.setenv("NOTIFIER_WEBHOOK", "ftp://x/HOOKTOKENVAL")  # wrong scheme
    monkeypatch.setenv("DATABASE_URL", "mysql://u:DBPASSVAL@h/db")  # wrong scheme
    monkeypatch.setenv("SMTP_PASSWORD", "SP-mailPASSVAL")  # fine
    with pytest.raises(ConfigError) as info:
        load_settings()
    err = info.value
    for key in ("BROKER:", "BROKER_API_KEY:", "API_TOKEN:", "NOTIFIER_WEBHOOK:", "DATABASE_URL:"):
        assert key in str(err)
    assert "(got 'nope')" in str(err)
    assert err.__cause__ is None
    assert err.__context__ is None
    _assert_no_secret(str(err))
    _assert_no_secret(repr(err))
    _assert_no_secret("".join(traceback.format_exception(err)))
    # a raw ValidationError (Settings built directly) hides inputs too
    with pytest.raises(ValidationError) as raw:
        Settings()
    _assert_no_secret(str(raw.value))


# -- .env.example ---------------------------------------------------------------------

_LINE = re.compile(r"(?P<comment># )?(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)")


def _example_keys() -> tuple[list[str], list[str]]:
    active: list[str] = []
    commented: list[str] = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = _LINE.fullmatch(line)
        if match:
            (commented if match["comment"] else active).append(match["key"])
    return active, commented


def test_env_example_lists_every_setting_once() -> None:
    active, commented = _example_keys()
    listed = active + commented
    assert len(listed) == len(set(listed))
    assert set(listed) == set(Settings.env_names())
    assert "BROKER_API_KEY" in commented
    assert "DATABASE_URL" in commented
    assert "WATCHLIST" in active


def test_env_example_loads_to_the_defaults(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        from_example = load_settings(_env_file=ENV_EXAMPLE)
    assert not caplog.records
    assert from_example.model_dump() == load_settings(_env_file=None).model_dump()


def test_freeze_quantities_parse_by_options_name() -> None:
    settings = load_settings(_env_file=None, freeze_qty="NIFTY=1800, banknifty=600")
    assert settings.freeze_qty == {"NIFTY": 1800, "BANKNIFTY": 600}
    assert load_settings(_env_file=None).freeze_qty == {}
    for bad in ("NIFTY", "NIFTY=lots", "NIFTY=0", "=1800"):
        with pytest.raises(ConfigError, match="FREEZE_QTY"):
            load_settings(_env_file=None, freeze_qty=bad)
