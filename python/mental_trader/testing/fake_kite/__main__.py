"""``python -m mental_trader.testing.fake_kite``: serve the fake Kite until SIGINT/SIGTERM.

Prints the REST and WebSocket URLs, the API key and a valid access token (a fake one: the
server issues it for this run only), then serves.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import date

from mental_trader.testing.fake_kite.server import DEFAULT_WATCHLIST, FakeKite


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mental_trader.testing.fake_kite",
        description="A fake Kite Connect v3 server on loopback, fed by the simulated market.",
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="REST port (default: ephemeral)")
    p.add_argument("--ws-port", type=int, default=0, help="WebSocket port (default: ephemeral)")
    p.add_argument("--speed", type=float, default=1.0, help="sim seconds per real second")
    p.add_argument("--seed", type=int, default=42, help="the sim market's seed")
    p.add_argument(
        "--watchlist",
        default=",".join(DEFAULT_WATCHLIST),
        help="comma-separated NSE symbols (default: %(default)s)",
    )
    p.add_argument(
        "--session-day",
        type=date.fromisoformat,
        default=None,
        help="start at this day's session open (YYYY-MM-DD; default: today's)",
    )
    p.add_argument("--api-key", default="fake_api_key")
    p.add_argument("--api-secret", default="fake_api_secret")
    return p


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watchlist = [s.strip() for s in args.watchlist.split(",") if s.strip()]
    async with FakeKite(
        host=args.host,
        port=args.port,
        ws_port=args.ws_port,
        api_key=args.api_key,
        api_secret=args.api_secret,
        watchlist=watchlist,
        seed=args.seed,
        session_day=args.session_day,
        speed=args.speed,
    ) as fake:
        sys.stdout.write(
            f"rest_url={fake.rest_url}\n"
            f"ws_url={fake.ws_url}\n"
            f"api_key={fake.api_key}\n"
            f"access_token={fake.access_token}\n"
            f"sim_now={fake.now().isoformat()}\n"
        )
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = _parser().parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
