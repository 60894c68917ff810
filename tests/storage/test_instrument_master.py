"""The derivatives instrument master: validated, swapped atomically, never wiped by a bad
download (on SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from mental_trader.brokers.sim.market import SimMarket
from mental_trader.brokers.sim.options import SimOptions
from mental_trader.calendar import TradingCalendar
from mental_trader.models import Instrument
from mental_trader.options.master import refresh_instrument_master, validate_derivatives
from mental_trader.storage import Store

NIFTY = "NSE:NIFTY 50"
DAY = date(2026, 11, 25)


class Dump:
    """A broker's instrument dump that can fail or come back wrong."""

    def __init__(self, rows: list[Instrument]) -> None:
        self.rows = rows
        self.error: Exception | None = None

    async def instruments(self) -> list[Instrument]:
        if self.error is not None:
            raise self.error
        return list(self.rows)


@pytest.fixture(scope="module")
def listing() -> list[Instrument]:
    options = SimOptions(SimMarket(42, TradingCalendar()))
    cash = Instrument("NSE:INFY", "NSE", "INFY")
    return [cash, *options.instruments(DAY)]


async def _derivatives(store: Store) -> dict[str, Instrument]:
    return {i.symbol: i for i in await store.load_instruments() if i.exchange == "NFO"}


async def test_a_refresh_stores_the_contracts(store: Store, listing: list[Instrument]) -> None:
    update = await refresh_instrument_master(Dump(listing), store, [NIFTY, "NSE:INFY"], today=DAY)
    assert update.replaced
    assert update.problems == ()
    stored = await _derivatives(store)
    expected = [r for r in listing if r.underlying in (NIFTY, "NSE:INFY")]
    assert update.counts == {
        NIFTY: sum(r.underlying == NIFTY for r in expected),
        "NSE:INFY": sum(r.underlying == "NSE:INFY" for r in expected),
    }
    assert len(stored) == len(expected)
    sample = expected[17]
    assert stored[sample.symbol] == sample  # every field round-trips, the expiry included
    assert await store.count_derivatives() == update.counts


async def test_the_next_day_replaces_the_set(store: Store, listing: list[Instrument]) -> None:
    await refresh_instrument_master(Dump(listing), store, [NIFTY], today=DAY)
    nxt = SimOptions(SimMarket(42, TradingCalendar())).instruments(date(2026, 12, 2))
    update = await refresh_instrument_master(Dump(nxt), store, [NIFTY], today=date(2026, 12, 2))
    assert update.replaced
    stored = await _derivatives(store)
    # The expired weekly of 2026-12-01 is gone; the new far weekly is there.
    assert all(i.expiry is not None and i.expiry >= date(2026, 12, 2) for i in stored.values())
    assert any(i.expiry == date(2026, 12, 29) for i in stored.values())
    assert len(stored) == sum(r.underlying == NIFTY for r in nxt)


async def test_a_failed_download_keeps_the_previous_master(
    store: Store, listing: list[Instrument]
) -> None:
    await refresh_instrument_master(Dump(listing), store, [NIFTY], today=DAY)
    before = await _derivatives(store)
    failing = Dump(listing)
    failing.error = ConnectionError("gzip stream ended early")
    update = await refresh_instrument_master(failing, store, [NIFTY], today=DAY)
    assert not update.replaced
    assert "download failed: gzip stream ended early" in update.problems[0]
    assert await _derivatives(store) == before


async def test_a_truncated_or_invalid_dump_is_refused(
    store: Store, listing: list[Instrument]
) -> None:
    await refresh_instrument_master(Dump(listing), store, [NIFTY], today=DAY)
    before = await _derivatives(store)
    nifty = [r for r in listing if r.underlying == NIFTY]
    truncated = await refresh_instrument_master(
        Dump(nifty[: len(nifty) // 3]), store, [NIFTY], today=DAY
    )
    assert not truncated.replaced
    assert "looks truncated" in truncated.problems[0]
    bad = [*nifty[:-1], dataclasses.replace(nifty[-1], lot_size=0)]
    invalid = await refresh_instrument_master(Dump(bad), store, [NIFTY], today=DAY)
    assert not invalid.replaced
    assert "lot size 0" in invalid.problems[0]
    missing = await refresh_instrument_master(Dump(nifty), store, [NIFTY, "NSE:TCS"], today=DAY)
    assert missing.problems == ("NSE:TCS: no contracts in the dump",)
    assert await _derivatives(store) == before


def test_validation_names_each_problem(listing: list[Instrument]) -> None:
    nifty = [r for r in listing if r.underlying == NIFTY][:4]
    rows = [
        dataclasses.replace(nifty[0], expiry=date(2026, 11, 20)),
        dataclasses.replace(nifty[1], strike=-50.0),
        dataclasses.replace(nifty[2], tick_size=0.0),
        nifty[3],
        nifty[3],
    ]
    problems = validate_derivatives(rows, [NIFTY], DAY)
    assert any("expiry 2026-11-20 is before 2026-11-25" in p for p in problems)
    assert any("strike -50.0" in p for p in problems)
    assert any("tick size 0.0" in p for p in problems)
    assert any("listed 2 times" in p for p in problems)
    assert validate_derivatives(nifty, [NIFTY], DAY) == []


async def test_expired_contracts_in_the_dump_are_skipped_not_fatal(
    store: Store, listing: list[Instrument]
) -> None:
    nifty = [r for r in listing if r.underlying == NIFTY]
    stale = dataclasses.replace(nifty[0], symbol="NFO:NIFTY26N1824000CE", expiry=date(2026, 11, 18))
    update = await refresh_instrument_master(Dump([*nifty, stale]), store, [NIFTY], today=DAY)
    assert update.replaced
    assert update.counts == {NIFTY: len(nifty)}
    assert "NFO:NIFTY26N1824000CE" not in await _derivatives(store)
