"""No test may skip because a module of xbarsim fails to import.

A test that skips when ``import xbarsim.something`` raises turns a broken module into a green
suite. Only genuinely optional third-party tools (ngspice, matplotlib, torch, OpenBLAS symbols,
the MNIST files) may skip a test, with the reason. This module scans every Python file under
``tests/`` for the patterns that hide a broken import of the package:

* ``pytest.importorskip("xbarsim...")``;
* ``importlib.util.find_spec("xbarsim...")`` (the usual ``skipif`` condition);
* ``try: import xbarsim...`` / ``from xbarsim... import ...`` with an ``except`` that catches
  ``ImportError`` or ``ModuleNotFoundError`` (or everything).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PACKAGE = "xbarsim"
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _is_package(name: object) -> bool:
    return isinstance(name, str) and (name == PACKAGE or name.startswith(PACKAGE + "."))


def _call_name(func: ast.expr) -> str:
    """Dotted name of a call target (``pytest.importorskip`` -> 'pytest.importorskip')."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _imports_package(stmts: list[ast.stmt]) -> bool:
    for node in (n for s in stmts for n in ast.walk(s)):
        if isinstance(node, ast.Import) and any(_is_package(a.name) for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_package(node.module):
            return True
        if isinstance(node, ast.Call) and _call_name(node.func).endswith("import_module") \
                and node.args and isinstance(node.args[0], ast.Constant) \
                and _is_package(node.args[0].value):
            return True
    return False


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:                     # bare except
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(_call_name(t).rsplit(".", 1)[-1] in _IMPORT_ERRORS for t in types)


def import_skips(source: str, filename: str = "<test>") -> list[str]:
    """Every place in ``source`` where a failing import of xbarsim would be tolerated.

    Returns ``"file:line: what"`` strings (empty when the source is clean).
    """
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            arg = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) \
                else None
            if name.endswith("importorskip") and _is_package(arg):
                found.append(f"{filename}:{node.lineno}: importorskip({arg!r})")
            elif name.endswith("find_spec") and _is_package(arg):
                found.append(f"{filename}:{node.lineno}: find_spec({arg!r})")
        elif isinstance(node, ast.Try) and _imports_package(node.body):
            for handler in node.handlers:
                if _catches_import_error(handler):
                    found.append(f"{filename}:{handler.lineno}: an import of {PACKAGE} inside "
                                 f"try/except {ast.unparse(handler.type) if handler.type else ''}"
                                 .rstrip())
    return found


def test_no_test_skips_on_a_broken_import_of_the_package():
    files = sorted(p for p in TESTS.rglob("*.py") if p.resolve() != Path(__file__).resolve())
    assert len(files) > 10                       # the scan really sees the test files
    found = [hit for p in files
             for hit in import_skips(p.read_text(), str(p.relative_to(TESTS.parent)))]
    assert not found, ("a test tolerates a failing import of xbarsim (it would skip or pass "
                       "instead of failing); import the module plainly:\n" + "\n".join(found))


@pytest.mark.parametrize("source", [
    'import pytest\nspice = pytest.importorskip("xbarsim.io.spice")\n',
    'from pytest import importorskip\nimportorskip("xbarsim.hardware.solvers", reason="later")\n',
    'import importlib.util\nHAVE = importlib.util.find_spec("xbarsim.io.spice") is not None\n',
    'try:\n    import xbarsim.hardware.solvers\n    OK = True\nexcept ImportError:\n'
    '    OK = False\n',
    'try:\n    from xbarsim.io import spice\nexcept (OSError, ModuleNotFoundError):\n'
    '    spice = None\n',
    'try:\n    from xbarsim.hardware import tile\nexcept:\n    tile = None\n',
    'import importlib\ntry:\n    m = importlib.import_module("xbarsim.kernels.fcm")\n'
    'except Exception:\n    m = None\n',
])
def test_scanner_flags_every_pattern(source):
    assert len(import_skips(source)) == 1


@pytest.mark.parametrize("source", [
    'import pytest\nmpl = pytest.importorskip("matplotlib")\n',
    'import importlib.util\nHAVE_MPL = importlib.util.find_spec("matplotlib") is not None\n',
    'try:\n    import torch\nexcept ImportError:\n    torch = None\n',
    'from xbarsim.io import spice\ntry:\n    spice.run_ngspice("a.cir")\n'
    'except FileNotFoundError:\n    pass\n',
    'try:\n    from xbarsim.io import spice\nexcept ValueError:\n    pass\n',
])
def test_scanner_allows_optional_third_party_tools(source):
    assert import_skips(source) == []
