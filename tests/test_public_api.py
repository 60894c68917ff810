"""The public API is pinned: ``__all__`` lists, the stub's exports and the version."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
from pathlib import Path

import mental_trader
import mental_trader.core
import mental_trader.errors
from mental_trader import _core

STUB = Path(mental_trader.__file__).with_name("_core.pyi")


def stub_all() -> list[str]:
    """The ``__all__`` list written in ``_core.pyi``."""
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(v) for v in value]
    raise AssertionError("_core.pyi has no __all__")


def stub_defined() -> set[str]:
    """Names the stub defines at top level: public classes and functions, and ``__version__``."""
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and not node.name.startswith("_"):
            names.add(node.name)
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "__version__"
        ):
            names.add(node.target.id)
    return names


ERRORS_AT_TOP = {"InvalidInputError", "MentalTraderError"}
# Exports of _core whose public face is a broker package, not mental_trader(.core):
# name in _core -> (module, public name).
BROKER_EXPORTS = {
    "decode_kite_frame": ("mental_trader.brokers.kite", "decode_frame"),
    "decode_kite_ticks": ("mental_trader.brokers.kite", "decode_ticks"),
}


def test_stub_all_is_sorted_and_complete() -> None:
    names = stub_all()
    assert names == sorted(names)
    assert set(names) == stub_defined()


def test_extension_exports_exactly_the_stub() -> None:
    public = {n for n in dir(_core) if not n.startswith("_")} | {"__version__"}
    assert public == set(stub_all())
    assert sorted(_core.__all__) == stub_all()


def test_package_all() -> None:
    names = mental_trader.__all__
    assert names == sorted(names)
    # the stub's exports, the two errors callers catch, and the version; PanicException is
    # reached through mental_trader.errors (it is caught by name in the supervisor only)
    expected = (set(stub_all()) - {"PanicException"} - set(BROKER_EXPORTS)) | ERRORS_AT_TOP
    assert set(names) == expected
    for name in names:
        assert hasattr(mental_trader, name), name


def test_core_module_all() -> None:
    names = mental_trader.core.__all__
    assert names == sorted(names)
    assert set(names) == set(stub_all()) - set(BROKER_EXPORTS)
    for name in names:
        assert getattr(mental_trader.core, name) is getattr(_core, name)


def test_broker_exports_are_public_in_their_package() -> None:
    for name, (module, public) in BROKER_EXPORTS.items():
        assert name in stub_all()
        package = importlib.import_module(module)
        assert public in package.__all__
        assert getattr(package, public).__module__ == f"{module}.decode", name


def test_errors_module() -> None:
    names = mental_trader.errors.__all__
    assert names == sorted(names)
    assert mental_trader.errors.PanicException is _core.PanicException
    for name in names:
        obj = getattr(mental_trader.errors, name)
        assert isinstance(obj, type)
        assert issubclass(obj, BaseException)
        if name != "PanicException":
            assert issubclass(obj, mental_trader.errors.MentalTraderError)
    assert issubclass(mental_trader.errors.InvalidInputError, ValueError)
    assert mental_trader.InvalidInputError is mental_trader.errors.InvalidInputError


def test_version_matches_package_metadata() -> None:
    version = importlib.metadata.version("mental-trader")
    assert _core.__version__ == version
    assert mental_trader.__version__ == version
    assert version.count(".") >= 2
