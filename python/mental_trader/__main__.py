"""``python -m mental_trader ...``: the command line (see :mod:`mental_trader.cli`)."""

from __future__ import annotations

from mental_trader.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
