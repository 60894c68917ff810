"""Market data: instruments, candles and the EMA state that consumed them."""

VERSION = 1
NAME = "market data"
STATEMENTS = (
    """CREATE TABLE instruments (
        symbol TEXT PRIMARY KEY,
        exchange TEXT NOT NULL,
        tradingsymbol TEXT NOT NULL,
        instrument_token {BIGINT},
        name TEXT NOT NULL DEFAULT '',
        segment TEXT NOT NULL DEFAULT '',
        instrument_type TEXT NOT NULL DEFAULT 'EQ',
        tick_size {FLOAT} NOT NULL,
        lot_size INTEGER NOT NULL,
        expiry {DATE},
        strike {FLOAT},
        underlying TEXT,
        freeze_qty INTEGER
    )""",
    """CREATE TABLE candles (
        symbol TEXT NOT NULL,
        timeframe_s INTEGER NOT NULL,
        ts {TS} NOT NULL,
        open {FLOAT} NOT NULL,
        high {FLOAT} NOT NULL,
        low {FLOAT} NOT NULL,
        close {FLOAT} NOT NULL,
        volume {FLOAT} NOT NULL,
        ticks {BIGINT} NOT NULL,
        PRIMARY KEY (symbol, timeframe_s, ts)
    ) {WITHOUT_ROWID}""",
    """CREATE TABLE ema_state (
        symbol TEXT NOT NULL,
        timeframe_s INTEGER NOT NULL,
        bar_ts {TS} NOT NULL,
        fast_state {JSON} NOT NULL,
        slow_state {JSON} NOT NULL,
        PRIMARY KEY (symbol, timeframe_s)
    )""",
)
