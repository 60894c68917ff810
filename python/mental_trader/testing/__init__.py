"""Test doubles shipped with the package, for tests and demos.

* :mod:`mental_trader.testing.fake_kite`: a local fake of Zerodha's Kite Connect v3
  (REST + binary WebSocket) fed by the simulated market, with fault switches
  (``python -m mental_trader.testing.fake_kite``).
"""
