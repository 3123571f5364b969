"""Imports flow one way: kernels -> hardware -> nn -> train -> runner/studies -> cli.

``config``, ``errors``, ``checks``, ``units``, ``rng``, ``runtime`` and ``testing`` are plain
modules any layer may import; ``io`` (the h5py / ngspice boundary) imports only those. Imports
inside functions (lazy imports) count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "xbarsim"

BASE = {"xbarsim", "xbarsim.errors", "xbarsim.checks", "xbarsim.units", "xbarsim.rng",
        "xbarsim.runtime", "xbarsim.config", "xbarsim.testing"}
RANK = {"kernels": 0, "io": 0, "hardware": 1, "nn": 2, "data": 2, "train": 3,
        "studies": 4, "plot": 4, "plot_sweep": 4, "runner": 4, "deploy": 4, "golden": 4,
        "cli": 5, "__main__": 6}

#: Modules of a layer that may import only the base modules, io and each other: the golden
#: suite's schema and adapters never depend on the solvers they are compared with.
RESTRICTED = {"golden/schema.py": {"xbarsim.golden", "xbarsim.golden.schema"},
              "golden/adapters.py": {"xbarsim.golden", "xbarsim.golden.schema"}}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if module in BASE or (len(parts) > 1 and f"xbarsim.{parts[1]}" in BASE):
        return None
    return parts[1] if len(parts) > 1 else None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            # "from xbarsim import nn" imports the sub-package nn
            if node.module == "xbarsim":
                found += [f"xbarsim.{a.name}" for a in node.names
                          if not a.name.startswith("__")]
    return [m for m in found if m == "xbarsim" or m.startswith("xbarsim.")]


MODULES = sorted(p for p in PKG.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_only_go_down_the_layers(path):
    rel = path.relative_to(PKG)
    own = rel.parts[0].removesuffix(".py")
    if f"xbarsim.{own}" in BASE or own == "__init__":
        allowed_rank = -1 if own != "__init__" else 99
    else:
        allowed_rank = RANK[own]
    if own == "io":
        allowed_rank = -1          # io sees only the base modules
    for module in _imports(path):
        layer = _layer(module)
        if layer is None or layer == own:
            continue
        assert layer in RANK, f"{rel}: unknown layer of {module}; add it to RANK"
        assert RANK[layer] <= allowed_rank, (
            f"{rel} (layer {own!r}) imports {module} (layer {layer!r}): imports must go "
            f"kernels -> hardware -> nn -> train -> runner -> cli")


@pytest.mark.parametrize("rel", sorted(RESTRICTED))
def test_golden_schema_and_adapters_import_only_base_modules_and_io(rel):
    allowed = RESTRICTED[rel]
    for module in _imports(PKG / rel):
        layer = _layer(module)
        assert layer is None or layer == "io" or module in allowed, (
            f"{rel} imports {module}: it may import only the base modules, xbarsim.io and "
            f"{', '.join(sorted(allowed))}")


def test_every_layer_is_known():
    layers = {p.relative_to(PKG).parts[0].removesuffix(".py") for p in MODULES}
    unknown = {x for x in layers if f"xbarsim.{x}" not in BASE and x not in RANK
               and x != "__init__"}
    assert not unknown
