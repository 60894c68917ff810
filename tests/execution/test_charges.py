"""Charges: hand-computed contract-note lines per segment and regime (MARKET_FACTS section 2).

Every expected number below is worked out by hand from the rate card, unrounded first:
turnover x rate, GST 18 % on brokerage + exchange (incl. IPFT) + SEBI (+ DP), then each
line to the paisa (half up) and the total as the rounded sum of the unrounded lines.
"""

from __future__ import annotations

import importlib.resources
from datetime import date
from pathlib import Path

import pytest

from mental_trader.errors import ConfigError, InvalidInputError
from mental_trader.execution.charges import (
    SEGMENTS,
    ChargeBreakdown,
    ChargesTable,
    segment_for,
)
from mental_trader.models import Side

APR_2026 = date(2026, 4, 6)  # regime 2026-04-01
MAR_2026 = date(2026, 3, 30)  # regime 2026-03-01
JUN_2025 = date(2025, 6, 2)  # regime 2024-10-01

BUY, SELL = Side.BUY, Side.SELL


def packaged_text() -> str:
    return (importlib.resources.files("mental_trader.data") / "charges.toml").read_text("utf-8")


def table_from(tmp_path: Path, text: str) -> ChargesTable:
    path = tmp_path / "charges.toml"
    path.write_text(text, encoding="utf-8")
    return ChargesTable.load(path)


def test_packaged_table_is_package_data(charges: ChargesTable) -> None:
    assert packaged_text().startswith("# Zerodha charges")
    assert charges.first_date == date(2024, 10, 1)
    assert charges.effective_from(APR_2026) == date(2026, 4, 1)
    assert charges.effective_from(MAR_2026) == date(2026, 3, 1)
    assert charges.effective_from(date(2026, 2, 28)) == date(2024, 10, 1)


# -- worked example A: MIS, buy 100 RELIANCE @ 2500, sell @ 2510 ---------------------------


def test_equity_intraday_example_a(charges: ChargesTable) -> None:
    # buy: turnover 250,000; brokerage 0.03 % = 75 -> capped 20; exchange 307/cr = 7.675;
    # SEBI 10/cr = 0.25; stamp 0.003 % = 7.50; GST 0.18 x 27.925 = 5.0265; total 40.4515
    assert charges.compute(APR_2026, "equity_intraday", BUY, 2500.0, 100) == ChargeBreakdown(
        brokerage=20.0, stt=0.0, exchange=7.68, sebi=0.25, stamp=7.5, gst=5.03, dp=0.0,
        total=40.45,
    )  # fmt: skip
    # sell: turnover 251,000; STT 0.025 % = 62.75; exchange 7.7057; SEBI 0.251;
    # GST 0.18 x 27.9567 = 5.032206; total 95.738906
    assert charges.compute(APR_2026, "equity_intraday", SELL, 2510.0, 100) == ChargeBreakdown(
        brokerage=20.0, stt=62.75, exchange=7.71, sebi=0.25, stamp=0.0, gst=5.03, dp=0.0,
        total=95.74,
    )  # fmt: skip


def test_equity_intraday_same_bundled_rate_in_every_regime(charges: ChargesTable) -> None:
    # 297 + IPFT 10 per crore (2024-10) == 306.99 + 0.01 (2026-03): NSE raised the charge
    # by exactly the IPFT it cut, so the same trade costs the same.
    a = charges.compute(APR_2026, "equity_intraday", SELL, 2510.0, 100)
    assert charges.compute(JUN_2025, "equity_intraday", SELL, 2510.0, 100) == a
    assert charges.compute(MAR_2026, "equity_intraday", SELL, 2510.0, 100) == a


def test_brokerage_is_the_lower_of_20_and_0_03_percent(charges: ChargesTable) -> None:
    def brokerage(price: float, qty: int) -> float:
        return charges.compute(APR_2026, "equity_intraday", BUY, price, qty).brokerage

    assert brokerage(10.0, 100) == 0.30  # 0.03 % of 1,000
    assert brokerage(666.0, 100) == 19.98  # 0.03 % of 66,600
    assert brokerage(667.0, 100) == 20.0  # 0.03 % of 66,700 = 20.01 -> the cap
    assert brokerage(2500.0, 100) == 20.0
    # futures share the rule; options pay a flat 20 however small; delivery pays nothing
    assert charges.compute(APR_2026, "futures", BUY, 100.0, 10).brokerage == 0.30
    assert charges.compute(APR_2026, "options", BUY, 1.0, 65).brokerage == 20.0
    assert charges.compute(APR_2026, "equity_delivery", BUY, 2500.0, 100).brokerage == 0.0


# -- worked example B: options, 65 NIFTY CE bought @ 100, sold @ 110 -------------------------


def test_options_buy_leg(charges: ChargesTable) -> None:
    # premium 6,500: brokerage 20; exchange 3553/cr = 2.30945; SEBI 0.0065;
    # stamp 0.003 % = 0.195; GST 0.18 x 22.31595 = 4.016871; total 26.527821
    assert charges.compute(APR_2026, "options", BUY, 100.0, 65) == ChargeBreakdown(
        brokerage=20.0, stt=0.0, exchange=2.31, sebi=0.01, stamp=0.2, gst=4.02, dp=0.0,
        total=26.53,
    )  # fmt: skip


def test_options_stt_0_15_percent_from_2026_04_01(charges: ChargesTable) -> None:
    # premium 7,150: STT 0.15 % = 10.725 -> 10.73; exchange 2.540395; SEBI 0.00715;
    # GST 0.18 x 22.547545 = 4.0585581; total 20 + 10.73 + 2.540395 + 0.00715 + 4.0585581
    assert charges.compute(APR_2026, "options", SELL, 110.0, 65) == ChargeBreakdown(
        brokerage=20.0, stt=10.73, exchange=2.54, sebi=0.01, stamp=0.0, gst=4.06, dp=0.0,
        total=37.34,
    )  # fmt: skip


@pytest.mark.parametrize("day", [MAR_2026, date(2026, 3, 31), JUN_2025, date(2024, 10, 1)])
def test_options_stt_0_1_percent_before_2026_04_01(charges: ChargesTable, day: date) -> None:
    # STT 0.1 % of 7,150 = 7.15; the rest as above: total 33.7561031
    got = charges.compute(day, "options", SELL, 110.0, 65)
    assert (got.stt, got.gst, got.total) == (7.15, 4.06, 33.76)


# -- futures: 65 NIFTY FUT bought @ 25,000, sold @ 25,050 ----------------------------------


def test_futures_buy_leg(charges: ChargesTable) -> None:
    # turnover 1,625,000: brokerage 20 (cap); exchange 183/cr = 29.7375; SEBI 1.625;
    # stamp 0.002 % = 32.50; GST 0.18 x 51.3625 = 9.24525; total 93.10775
    assert charges.compute(APR_2026, "futures", BUY, 25_000.0, 65) == ChargeBreakdown(
        brokerage=20.0, stt=0.0, exchange=29.74, sebi=1.63, stamp=32.5, gst=9.25, dp=0.0,
        total=93.11,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("day", "stt", "total"),
    [
        (APR_2026, 814.13, 874.81),  # 0.05 % of 1,628,250 = 814.125
        (MAR_2026, 325.65, 386.33),  # 0.02 %
        (JUN_2025, 325.65, 386.33),
    ],
)
def test_futures_sell_leg_by_regime(
    charges: ChargesTable, day: date, stt: float, total: float
) -> None:
    # exchange 29.797975, SEBI 1.62825, GST 0.18 x 51.426225 = 9.2567205
    got = charges.compute(day, "futures", SELL, 25_050.0, 65)
    assert (got.brokerage, got.stt, got.exchange, got.sebi, got.gst) == (
        20.0, stt, 29.8, 1.63, 9.26,
    )  # fmt: skip
    assert got.total == total


# -- delivery (CNC) ------------------------------------------------------------------------


def test_equity_delivery_round_trip_matches_the_worked_example(charges: ChargesTable) -> None:
    buy = charges.compute(APR_2026, "equity_delivery", BUY, 2500.0, 100)
    # STT 0.1 % = 250; exchange 7.675; SEBI 0.25; stamp 0.015 % = 37.50;
    # GST 0.18 x 7.925 = 1.4265; total 296.8515
    assert buy == ChargeBreakdown(0.0, 250.0, 7.68, 0.25, 37.5, 1.43, 0.0, 296.85)
    sell = charges.compute(APR_2026, "equity_delivery", SELL, 2510.0, 100)
    # STT 251; exchange 7.7057; SEBI 0.251; DP 13; GST 0.18 x 20.9567 = 3.772206
    assert sell == ChargeBreakdown(0.0, 251.0, 7.71, 0.25, 0.0, 3.77, 13.0, 275.73)
    assert round(buy.total + sell.total, 2) == 572.58  # MARKET_FACTS: Rs 572.58


# -- GST base, rounding, schema ------------------------------------------------------------


def test_gst_is_never_charged_on_stt_or_stamp(tmp_path: Path, charges: ChargesTable) -> None:
    # the same table with STT and stamp duty a hundred times higher: GST does not move
    text = packaged_text().replace("stt_sell_pct = 0.025", "stt_sell_pct = 2.5")
    text = text.replace("stamp_buy_pct = 0.003\n", "stamp_buy_pct = 0.3\n")
    heavy = table_from(tmp_path, text)
    for side in (BUY, SELL):
        base = charges.compute(APR_2026, "equity_intraday", side, 2500.0, 100)
        high = heavy.compute(APR_2026, "equity_intraday", side, 2500.0, 100)
        assert high.stt + high.stamp > base.stt + base.stamp
        assert high.gst == base.gst == 5.03  # 0.18 x (20 + 7.675 + 0.25)


def test_stt_can_be_rounded_to_the_rupee(tmp_path: Path) -> None:
    table = table_from(tmp_path, packaged_text().replace("stt_decimals = 2", "stt_decimals = 0"))
    got = table.compute(APR_2026, "options", SELL, 110.0, 65)
    assert got.stt == 11.0  # 10.725 -> 11, as the contract note shows it
    assert got.total == 37.61  # 20 + 11 + 2.540395 + 0.00715 + 4.0585581


def test_date_before_the_first_regime_is_a_clear_error(charges: ChargesTable) -> None:
    with pytest.raises(InvalidInputError, match=r"2024-09-30.*starts 2024-10-01"):
        charges.compute(date(2024, 9, 30), "options", SELL, 110.0, 65)


def test_unknown_segment_and_bad_inputs(charges: ChargesTable) -> None:
    with pytest.raises(InvalidInputError, match="unknown charges segment 'commodity'"):
        charges.compute(APR_2026, "commodity", BUY, 100.0, 1)
    for price, qty in ((0.0, 1), (-1.0, 1), (float("nan"), 1), (100.0, 0)):
        with pytest.raises(InvalidInputError):
            charges.compute(APR_2026, "equity_intraday", BUY, price, qty)


def test_segment_for() -> None:
    assert segment_for("MIS") == "equity_intraday"
    assert segment_for("CNC", "EQ") == "equity_delivery"
    assert segment_for("NRML", "FUT") == "futures"
    assert segment_for("MIS", "CE") == segment_for("NRML", "pe") == "options"
    assert set(SEGMENTS) == {"equity_intraday", "equity_delivery", "futures", "options"}
    with pytest.raises(InvalidInputError, match="NRML"):
        segment_for("NRML", "EQ")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("version = 1", "version = 2"), "version must be 1"),
        (("stt_sell_pct = 0.025", "stt_sel_pct = 0.025"), r"unknown key\(s\) \['stt_sel_pct'\]"),
        (("gst_pct = 18.0", "gst_pct = -18.0"), "gst_pct must be a finite number >= 0"),
        (("gst_pct = 18.0", 'gst_pct = "18"'), "gst_pct must be a number"),
        (("from = 2026-03-01", "from = 2024-09-01"), "is not after regime 2024-10-01"),
        (("from = 2026-04-01", 'from = "2026-04-01"'), r"from must be a date"),
        (("brokerage_flat = 20.0", "brokerage_flat = 20.0\nbrokerage_max = 20.0"), "brokerage"),
        (("[regime.options]", "[regime.option]"), "unknown segment"),
        (("stt_decimals = 2", "stt_decimals = 9"), "rounding.stt_decimals"),
        (("version = 1", "version = 1\n[oops"), "charges table"),
    ],
)
def test_malformed_tables_name_the_problem(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    text = packaged_text()
    assert edit[0] in text
    with pytest.raises(ConfigError, match=message):
        table_from(tmp_path, text.replace(edit[0], edit[1], 1))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        ChargesTable.load(tmp_path / "nope.toml")


def test_a_user_table_is_used(tmp_path: Path) -> None:
    text = packaged_text().replace("brokerage_flat = 20.0", "brokerage_flat = 15.0")
    table = table_from(tmp_path, text)
    assert table.compute(APR_2026, "options", BUY, 100.0, 65).brokerage == 15.0
    assert table.source == str(tmp_path / "charges.toml")
