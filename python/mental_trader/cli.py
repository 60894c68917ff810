"""The command line: ``python -m mental_trader <command>``.

Commands:
    serve           the trading engine and the HTTP API (http://127.0.0.1:8000)
    run             the trading engine alone (headless)
    db upgrade      apply pending database migrations and show the schema version
    backfill        load recent sessions of candles from the broker into the store
    kite login      print the Kite login URL (or exchange a request token given with it)

The settings are built once here, from
the environment and ``.env``, and passed down. Exit status: 0 success, 1 failure (a
backfill with shortfalls on closed sessions or broker failures, a storage error), 2 bad
usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from mental_trader.backfill import backfill
from mental_trader.brokers.sim import SimBroker
from mental_trader.calendar import IST, TradingCalendar
from mental_trader.config import Settings, load_settings, parse_timeframe
from mental_trader.errors import BrokerError, ConfigError, InvalidInputError, StorageError
from mental_trader.storage.base import dt_to_ns, open_store

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)

_PROG = "mental_trader"
_EXIT_FAILED = 1
_EXIT_USAGE = 2

Handler = Callable[[Settings, argparse.Namespace], int]


def _timeframe(text: str) -> int:
    try:
        return parse_timeframe(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _symbols(text: str) -> tuple[str, ...]:
    """``"RELIANCE, nse:infy"`` → ``("NSE:RELIANCE", "NSE:INFY")`` (NSE when unqualified)."""
    out: list[str] = []
    for entry in text.split(","):
        name = entry.strip().upper()
        if not name:
            continue
        symbol = name if ":" in name else f"NSE:{name}"
        exchange, _, tradingsymbol = symbol.partition(":")
        if not exchange.strip() or not tradingsymbol.strip():
            raise argparse.ArgumentTypeError(f"malformed symbol {entry.strip()!r}")
        out.append(f"{exchange.strip()}:{tradingsymbol.strip()}")
    if not out:
        raise argparse.ArgumentTypeError("no symbols given")
    return tuple(dict.fromkeys(out))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (each sets ``handler``)."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Mental Trader: algorithmic scalping / intraday trading for NSE.",
        epilog="Settings come from the environment and .env (see .env.example).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser(
        "upgrade", help="apply pending migrations to DATABASE_URL and show the version"
    )
    upgrade.set_defaults(handler=_db_upgrade)

    fill = commands.add_parser(
        "backfill", help="load recent sessions of candles from the broker into the store"
    )
    fill.add_argument(
        "--symbols",
        type=_symbols,
        default=None,
        help="comma-separated symbols, e.g. RELIANCE,INFY (NSE unless qualified; "
        "default: the WATCHLIST)",
    )
    fill.add_argument(
        "--days", type=_positive_int, default=5, help="number of sessions (default 5)"
    )
    fill.add_argument(
        "--timeframe",
        type=_timeframe,
        default=60,
        metavar="TF",
        help="bar length: 1m, 5m, 15m, 1h, ... (default 1m)",
    )
    fill.add_argument("--no-progress", action="store_true", help="no progress bar")
    fill.set_defaults(handler=_backfill)

    serve = commands.add_parser("serve", help="run the engine and the HTTP API")
    serve.add_argument("--host", default=None, help="bind address (default API_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=_positive_int, default=None, help="default API_PORT, 8000")
    serve.add_argument(
        "--speed", type=_speed, default=None, help="sim clock speed (default SIM_SPEED, 1)"
    )
    serve.add_argument("--no-autostart", action="store_true", help="wait for POST /control/start")
    serve.add_argument("--start", type=_start, default=None, help=argparse.SUPPRESS)
    serve.set_defaults(handler=_serve)

    kite = commands.add_parser("kite", help="Zerodha Kite Connect: the daily login")
    kite_commands = kite.add_subparsers(dest="kite_command", required=True, metavar="ACTION")
    login = kite_commands.add_parser(
        "login",
        help="print the login URL; with --request-token, exchange it for today's session",
    )
    login.add_argument(
        "--request-token",
        default=None,
        help="the request_token Kite's redirect carried (when the API is not running)",
    )
    login.set_defaults(handler=_kite_login)

    run = commands.add_parser("run", help="run the engine without the API (headless)")
    run.add_argument(
        "--speed", type=_speed, default=None, help="sim clock speed (default SIM_SPEED, 1)"
    )
    run.add_argument("--start", type=_start, default=None, help=argparse.SUPPRESS)
    run.set_defaults(handler=_run)
    return parser


def _start(text: str) -> int:
    """``--start`` (hidden; for tests and demos): the sim clock's start, ns UTC.

    An ISO datetime (``2025-01-07T09:15+05:30``; without an offset it is IST, the
    exchange's time). A restart still continues where the stored bars end in that session.
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO datetime: {text!r}") from None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=IST)
    return dt_to_ns(value)


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


def _say(text: str) -> None:
    """Command output, on stdout (the only place the package prints)."""
    print(text)  # noqa: T201


def _fail(message: str, status: int = _EXIT_FAILED) -> int:
    """One line on stderr; return the exit status."""
    print(f"{_PROG}: {message}", file=sys.stderr)  # noqa: T201
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit status.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(argv)
    # WARNING until the settings say otherwise, so .env typo warnings are seen
    _configure_logging("WARNING")
    try:
        settings = load_settings()
    except ConfigError as exc:
        return _fail(str(exc), _EXIT_USAGE)
    _configure_logging(settings.log_level)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _fail(f"cannot create the data directory {settings.data_dir}: {exc}")
    handler: Handler = args.handler
    try:
        return handler(settings, args)
    except StorageError as exc:
        return _fail(f"storage error: {exc}")
    except BrokerError as exc:
        return _fail(f"broker error: {exc}")
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    try:
        store = open_store(settings.database_url)
    except InvalidInputError as exc:
        return _fail(str(exc), _EXIT_USAGE)

    async def upgrade() -> tuple[list[int], int]:
        async with store:
            applied = await store.migrate()
            return applied, await store.schema_version()

    applied, version = asyncio.run(upgrade())
    _say(f"database: {settings.database_url_safe}")
    if applied:
        _say(f"applied migrations: {', '.join(str(v) for v in applied)}")
    else:
        _say("applied migrations: none (up to date)")
    _say(f"schema version: {version}")
    return 0


def _calendar(settings: Settings) -> TradingCalendar:
    return TradingCalendar(
        extra_holidays=settings.extra_holidays,
        extra_sessions=settings.extra_sessions,
        session_start=settings.session_start,
        session_end=settings.session_end,
    )


def _kite_login(settings: Settings, args: argparse.Namespace) -> int:
    from mental_trader.brokers.kite.broker import KiteBroker
    from mental_trader.brokers.kite.session import TokenStore, login_url

    if settings.broker_api_key is None:
        return _fail("Kite login needs BROKER_API_KEY (and BROKER_API_SECRET)", _EXIT_USAGE)
    api_key = settings.broker_api_key.get_secret_value()
    if args.request_token is None:
        state = TokenStore.in_dir(settings.data_dir).state(datetime.now(IST))
        _say(f"Kite session: {state.status.value}")
        _say(f"1. Open {login_url(api_key)} and log in (2FA).")
        _say(
            "2. Kite redirects to your app's redirect URL. Set it to "
            f"http://{settings.api_host}:{settings.api_port}/kite/callback in the Kite "
            "developer console and keep `serve` running: the API stores the session."
        )
        _say(
            "   Without the API: copy request_token=... from the redirect's address and "
            "run `python -m mental_trader kite login --request-token <token>`."
        )
        return 0

    async def exchange() -> int:
        from mental_trader.brokers.kite.venue import KiteVenue

        try:
            async with KiteBroker.from_settings(settings) as broker:
                expires = await KiteVenue(settings, broker).login(args.request_token)
        except (BrokerError, InvalidInputError) as exc:
            return _fail(f"Kite login failed: {exc}")
        _say(f"Kite session stored in {settings.data_dir}; valid until {expires.isoformat()}")
        return 0

    return asyncio.run(exchange())


def _backfill(settings: Settings, args: argparse.Namespace) -> int:
    try:
        store = open_store(settings.database_url)
    except InvalidInputError as exc:
        return _fail(str(exc), _EXIT_USAGE)
    calendar = _calendar(settings)
    symbols: tuple[str, ...] = args.symbols or settings.watchlist

    async def run() -> int:
        async with store, _history_broker(settings, calendar) as broker:
            await store.migrate()
            report = await backfill(
                store,
                broker,
                calendar,
                symbols,
                args.days,
                args.timeframe,
                progress=not args.no_progress,
            )
        _say(report.summary())
        return 0 if report.ok else _EXIT_FAILED

    return asyncio.run(run())


def _history_broker(settings: Settings, calendar: TradingCalendar) -> Any:
    """The broker to read candles from: the sim, or Kite with the stored session."""
    if settings.broker == "sim":
        return SimBroker.from_settings(settings, calendar=calendar)
    from mental_trader.brokers.kite.broker import KiteBroker
    from mental_trader.brokers.kite.venue import KiteVenue

    broker = KiteBroker.from_settings(settings)
    KiteVenue(settings, broker).require_session()
    return broker


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from mental_trader.api import create_app
    from mental_trader.api.auth import check_bind, resolve_api_token
    from mental_trader.runtime import open_service

    host = args.host or settings.api_host
    port = args.port or settings.api_port
    try:
        check_bind(host, settings)
        token, generated = resolve_api_token(settings)
    except ConfigError as exc:
        return _fail(str(exc), _EXIT_USAGE)

    class Server(uvicorn.Server):
        # uvicorn re-raises SIGTERM after its own shutdown, which would kill the process
        # before the service flushes; we handle the signals ourselves instead.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    async def serve() -> int:
        import signal

        async with open_service(settings, speed=args.speed, start_ns=args.start) as service:
            app = create_app(settings, service, api_token=token)
            config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
            server = Server(config)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, setattr, server, "should_exit", True)
            if not args.no_autostart:
                await service.start()
            shown = "http://127.0.0.1" if host in ("0.0.0.0", "::") else f"http://{host}"
            _say(f"Mental Trader is serving at {shown}:{port}/  (API docs: /docs)")
            if generated:
                # Shown once, like Jupyter's token; it is kept in the data directory.
                _say(f"API token (send as 'Authorization: Bearer <token>'): {token}")
            else:
                _say("API token: the configured API_TOKEN (or the one in the data directory)")
            await server.serve()  # returns on SIGINT / SIGTERM
            _say("shutting down: no new entries, flushing writes")
        return 0

    return asyncio.run(serve())


def _run(settings: Settings, args: argparse.Namespace) -> int:
    import signal

    from mental_trader.runtime import open_service

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with open_service(settings, speed=args.speed, start_ns=args.start) as service:
            await service.start()
            _say("Mental Trader is running headless; stop with Ctrl-C or SIGTERM")
            await stop.wait()
            _say("shutting down: no new entries, flushing writes")
            failed = bool(service.last_error)
        return _EXIT_FAILED if failed else 0

    return asyncio.run(run())
