"""Kite's instrument dump → Instrument rows."""

from __future__ import annotations

import gzip
import logging
from datetime import date

import pytest

from mental_trader.brokers.kite.errors import KiteProtocolError
from mental_trader.brokers.kite.instruments import parse_instruments, underlying_symbol

# Shaped like Kite's dump (same columns, order and formats), values illustrative.
DUMP = """\
instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange
408065,1594,INFY,INFOSYS,0,,0,0.05,1,EQ,NSE,NSE
738561,2885,RELIANCE,"RELIANCE INDUSTRIES, LTD",0,,0,0.05,1,EQ,NSE,NSE
256265,1001,NIFTY 50,NIFTY 50,0,,0,0,0,EQ,INDICES,NSE
260105,1016,NIFTY BANK,NIFTY BANK,0,,0,0,0,EQ,INDICES,NSE
13368834,52222,NIFTY26MARFUT,NIFTY,0,2026-03-31,0,0.1,65,FUT,NFO-FUT,NFO
10191106,39809,NIFTY2631024000CE,NIFTY,0,2026-03-10,24000,0.05,65,CE,NFO-OPT,NFO
10191362,39810,NIFTY2631024000PE,NIFTY,0,2026-03-10,24000.0,0.05,65,PE,NFO-OPT,NFO
12004098,46891,BANKNIFTY26MAR52000CE,BANKNIFTY,0,2026-03-31,52000,0.05,30,CE,NFO-OPT,NFO
17430274,68087,RELIANCE26MAR1400PE,RELIANCE,0,2026-03-31,1400,0.05,500,PE,NFO-OPT,NFO
281468165,1099485,SENSEX2631275000CE,SENSEX,0,2026-03-12,75000,0.05,20,CE,BFO-OPT,BFO
113276679,442487,CRUDEOIL26MARFUT,CRUDEOIL,0,2026-03-19,0,1,100,FUT,MCX-FUT,MCX
not-a-number,1,BROKEN,BROKEN,0,,0,0.05,1,EQ,NSE,NSE
"""


def _by_symbol(text: str | bytes) -> dict[str, object]:
    return {i.symbol: i for i in parse_instruments(text)}


def test_equity_and_index_rows() -> None:
    rows = {i.symbol: i for i in parse_instruments(DUMP)}
    infy = rows["NSE:INFY"]
    assert infy.exchange == "NSE"
    assert infy.tradingsymbol == "INFY"
    assert infy.instrument_token == 408065
    assert infy.name == "INFOSYS"
    assert infy.segment == "NSE"
    assert infy.instrument_type == "EQ"
    assert infy.tick_size == 0.05
    assert infy.lot_size == 1
    assert infy.expiry is None
    assert infy.strike is None
    assert infy.underlying is None
    assert infy.freeze_qty is None
    assert rows["NSE:RELIANCE"].name == "RELIANCE INDUSTRIES, LTD"  # quoted comma
    nifty = rows["NSE:NIFTY 50"]
    assert nifty.segment == "INDICES"
    assert nifty.instrument_token == 256265
    assert nifty.underlying is None
    assert (nifty.lot_size, nifty.tick_size) == (1, 0.05)  # the dump's zeros -> defaults


def test_derivative_rows() -> None:
    rows = {i.symbol: i for i in parse_instruments(DUMP)}
    fut = rows["NFO:NIFTY26MARFUT"]
    assert fut.instrument_type == "FUT"
    assert fut.expiry == date(2026, 3, 31)
    assert fut.strike is None
    assert fut.lot_size == 65
    assert fut.underlying == "NSE:NIFTY 50"
    ce = rows["NFO:NIFTY2631024000CE"]
    assert (ce.instrument_type, ce.strike, ce.expiry) == ("CE", 24000.0, date(2026, 3, 10))
    assert ce.segment == "NFO-OPT"
    assert ce.name == "NIFTY"
    assert ce.underlying == "NSE:NIFTY 50"
    assert rows["NFO:NIFTY2631024000PE"].strike == 24000.0
    assert rows["NFO:BANKNIFTY26MAR52000CE"].underlying == "NSE:NIFTY BANK"
    assert rows["NFO:RELIANCE26MAR1400PE"].underlying == "NSE:RELIANCE"  # stock: own name
    assert rows["BFO:SENSEX2631275000CE"].underlying == "BSE:SENSEX"
    crude = rows["MCX:CRUDEOIL26MARFUT"]
    assert crude.underlying is None  # no cash market we map
    assert crude.tick_size == 1.0


def test_malformed_row_skipped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        rows = parse_instruments(DUMP)
    assert len(rows) == 11
    assert "BROKEN" not in {i.tradingsymbol for i in rows}
    assert "skipped 1 malformed row(s) of 12" in caplog.text


def test_gzip_bytes_and_plain_bytes_agree() -> None:
    plain = parse_instruments(DUMP)
    assert parse_instruments(DUMP.encode()) == plain
    assert parse_instruments(gzip.compress(DUMP.encode())) == plain
    assert parse_instruments(b"\xef\xbb\xbf" + DUMP.encode()) == plain  # BOM tolerated


def test_freeze_quantities_by_name() -> None:
    rows = {i.symbol: i for i in parse_instruments(DUMP, freeze_qty={"NIFTY": 1800})}
    assert rows["NFO:NIFTY2631024000CE"].freeze_qty == 1800
    assert rows["NFO:NIFTY26MARFUT"].freeze_qty == 1800
    assert rows["NFO:BANKNIFTY26MAR52000CE"].freeze_qty is None
    assert rows["NSE:NIFTY 50"].freeze_qty is None  # the index itself is not sliced


def test_custom_aliases() -> None:
    rows = {i.symbol: i for i in parse_instruments(DUMP, aliases={"NIFTY50X": "NIFTY"})}
    assert rows["NFO:NIFTY2631024000CE"].underlying == "NSE:NIFTY50X"
    assert underlying_symbol("NFO", "NIFTY") == "NSE:NIFTY 50"
    assert underlying_symbol("NFO", "FINNIFTY") == "NSE:NIFTY FIN SERVICE"
    assert underlying_symbol("CDS", "USDINR") is None


def test_not_a_dump() -> None:
    with pytest.raises(KiteProtocolError, match="lacks column"):
        parse_instruments('{"status":"error"}')
    assert parse_instruments(DUMP.splitlines()[0] + "\n") == []
