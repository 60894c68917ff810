"""Fixtures and the ratio report of the Rust-core benchmarks (issue 2, section 4).

Run from the repository root (``testpaths`` is ``tests``, so name ``benches`` explicitly)::

    pytest benches --benchmark-only                      # quick pass (default; CI), < 2 min
    MT_BENCH_SCALE=full pytest benches --benchmark-only  # the issue's sizes: 10,000,000

Every benchmark tags itself with ``benchmark.extra_info``: ``impl`` ("ours", "ours (out=)",
... or the reference a user would pick instead), ``n`` (elements per round) and ``block``.
The contenders of a group run in alternating blocks (see ``benchlib.Scale``). At the end
:func:`pytest_terminal_summary` pools the rounds of each (group, impl), pairs each of ours
with each reference of the same group and prints medians, ratios, ns per element and the
target of issue 2 with PASS/MISS. It only reports: times never fail a run (the machines are
shared and noisy).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib

SCALE = benchlib.SCALE


@pytest.fixture(scope="session")
def scale() -> benchlib.Scale:
    """The sizes of this pass (env ``MT_BENCH_SCALE``: ``quick`` or ``full``)."""
    return SCALE


@pytest.fixture(scope="module")
def ticks_1sym(scale: benchlib.Scale) -> benchlib.Ticks:
    """One symbol, 200k ticks per session (~9 per second)."""
    return benchlib.make_ticks(scale.ticks_n, 1, benchlib.days_for(scale.ticks_n, 200_000), 1)


@pytest.fixture(scope="module")
def ticks_50sym(scale: benchlib.Scale) -> benchlib.Ticks:
    """50 interleaved symbols, 200k ticks per session in all (~11 per minute each)."""
    return benchlib.make_ticks(scale.ticks_n, 50, benchlib.days_for(scale.ticks_n, 200_000), 2)


@pytest.fixture(scope="module")
def ticks_20sym(scale: benchlib.Scale) -> benchlib.Ticks:
    """20 interleaved symbols, 250k ticks per session (~33 per minute per symbol)."""
    n = scale.loop_ticks_n
    return benchlib.make_ticks(n, 20, benchlib.days_for(n, 250_000), 3)


@pytest.fixture(scope="module")
def bars_1m(scale: benchlib.Scale) -> dict[str, Any]:
    """About ``resample_bars_n`` one-minute bars of 50 symbols (``build_bars`` columns)."""
    return benchlib.make_bars_1m(scale.resample_bars_n, 50, seed=4)


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Target:
    """A goal of issue 2: on the time ratio ours/reference, or on ours' ns per element."""

    kind: Literal["max_ratio", "min_speedup", "max_ns"]
    value: float

    def describe(self) -> str:
        if self.kind == "max_ratio":
            return f"ours/ref <= {self.value:g}"
        if self.kind == "min_speedup":
            return f"speedup >= {self.value:g}"
        return f"ours <= {self.value:g} ns/el"

    def met(self, ratio: float, ns_per_el: float) -> bool:
        if self.kind == "max_ratio":
            return ratio <= self.value
        if self.kind == "min_speedup":
            return ratio * self.value <= 1.0
        return ns_per_el <= self.value


# (group, reference impl) -> target; applies to every "ours*" impl of the group. on_tick has
# two pure-Python references (a careful one with a fast path, and the naive one a typical
# user writes); the ">= 5x faster than pure Python" is reported against both.
TARGETS: dict[tuple[str, str], Target] = {
    ("ema", "talib.EMA"): Target("max_ratio", 1.25),
    ("build_bars/1sym", "polars"): Target("min_speedup", 1.5),
    ("build_bars/50sym", "pandas"): Target("min_speedup", 5.0),
    ("on_tick/20sym", "bare call floor"): Target("max_ratio", 3.0),
    ("on_tick/20sym", "pure Python (fast path)"): Target("min_speedup", 5.0),
    ("on_tick/20sym", "pure Python (naive)"): Target("min_speedup", 5.0),
    ("resample/1m->5m", "polars"): Target("min_speedup", 5.0),
}
# group -> absolute target on ours, per element (on_tick: per tick, loop included).
ABS_TARGETS: dict[str, Target] = {
    "on_tick/20sym": Target("max_ns", 40.0),
    # Store (test_bench_store.py): bulk candle load >= 300,000 rows/s; warm start < 1 s a call.
    "upsert/empty/postgresql": Target("max_ns", 1e9 / 300_000),
    "warm_start/postgresql": Target("max_ns", 1e9),
    "upsert/empty/sqlite": Target("max_ns", 1e9 / 100_000),
    "warm_start/sqlite": Target("max_ns", 1e9),
}

HEADER = [
    "group",
    "ours",
    "reference",
    "ours med",
    "ref med",
    "ours/ref",
    "speedup",
    "ours ns/el",
    "ref ns/el",
    "target",
    "",
]
RIGHT_ALIGNED = {3, 4, 5, 6, 7, 8}


def _fmt_time(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def _lib_versions() -> str:
    parts = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    for name in ("talib", "polars", "pandas"):
        module = sys.modules.get(name)
        if module is not None:
            parts.append(f"{name} {getattr(module, '__version__', '?')}")
    return ", ".join(parts)


@dataclass
class Pooled:
    """All timed rounds of one contender of a group, over its blocks."""

    impl: str
    n: int
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def ns_per_el(self) -> float:
        return self.median / self.n * 1e9

    @property
    def is_ours(self) -> bool:
        return self.impl.startswith("ours")


def _pool(benchmarks: list[Any]) -> dict[str, dict[str, Pooled]]:
    groups: dict[str, dict[str, Pooled]] = {}
    for bench in benchmarks:
        info = bench.extra_info
        if not bench or "impl" not in info or "n" not in info:
            continue
        impls = groups.setdefault(str(bench.group), {})
        pooled = impls.setdefault(str(info["impl"]), Pooled(str(info["impl"]), int(info["n"]), []))
        pooled.seconds.extend(float(x) for x in bench.stats.data)
    return groups


def _rows(benchmarks: list[Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    for group, impls in _pool(benchmarks).items():
        refs = [p for p in impls.values() if not p.is_ours]
        for ours in (p for p in impls.values() if p.is_ours):
            absolute = ABS_TARGETS.get(group)
            if absolute is not None:
                verdict = "PASS" if absolute.met(0.0, ours.ns_per_el) else "MISS"
                cells = [group, ours.impl, "-", _fmt_time(ours.median), "-", "-", "-"]
                rows.append([*cells, f"{ours.ns_per_el:.2f}", "-", absolute.describe(), verdict])
            for ref in refs:
                ratio = ours.median / ref.median
                target = TARGETS.get((group, ref.impl))
                rows.append(
                    [
                        group,
                        ours.impl,
                        ref.impl,
                        _fmt_time(ours.median),
                        _fmt_time(ref.median),
                        f"{ratio:.3f}",
                        f"{1.0 / ratio:.2f}x",
                        f"{ours.ns_per_el:.2f}",
                        f"{ref.ns_per_el:.2f}",
                        "" if target is None else target.describe(),
                        "" if target is None else ("PASS" if target.met(ratio, 0.0) else "MISS"),
                    ]
                )
    return rows


def _line(row: list[str], widths: list[int]) -> str:
    cells = [
        c.rjust(w) if i in RIGHT_ALIGNED else c.ljust(w)
        for i, (c, w) in enumerate(zip(row, widths, strict=True))
    ]
    return "  ".join(cells).rstrip()


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """Print the ours-vs-reference ratios of this run (a report; it never fails the run)."""
    session = getattr(config, "_benchmarksession", None)
    rows = _rows(session.benchmarks) if session is not None else []
    if benchlib.REPORT:
        tr = terminalreporter
        tr.ensure_newline()
        tr.section("Mental Trader: measurements", sep="=")
        for what, measured, target, verdict in benchlib.REPORT:
            tr.write_line(f"{what:<48} {measured:<28} target {target:<18} {verdict}")
    if not rows:
        return
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    tr = terminalreporter
    tr.ensure_newline()
    tr.section(f"Mental Trader: ours vs references (MT_BENCH_SCALE={SCALE.name})", sep="=")
    tr.write_line(
        f"median of {SCALE.blocks} alternating blocks x {SCALE.rounds} rounds ({SCALE.loop_rounds} "
        "for on_tick) per contender; ours/ref = time ratio (< 1: ours faster); "
        "speedup = ref/ours; ns/el = median / elements per round"
    )
    tr.write_line(f"{os.cpu_count()} CPUs, {platform.machine()}; {_lib_versions()}")
    tr.write_line(_line(HEADER, widths))
    tr.write_line(_line(["-" * w for w in widths], widths))
    for row in rows:
        tr.write_line(_line(row, widths))
    passed = sum(row[-1] == "PASS" for row in rows)
    missed = sum(row[-1] == "MISS" for row in rows)
    tr.write_line(f"targets: {passed} PASS, {missed} MISS (report only; times never fail a run)")
