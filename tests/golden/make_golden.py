"""Regenerate the ngspice golden files of the circuit core (run by hand, needs ngspice).

    python tests/golden/make_golden.py

For every tile below it writes ``xbarsim/golden/data/ngspice/<name>.cir`` (the netlist, via
``xbarsim.io.spice.write_netlist``) and ``xbarsim/golden/data/ngspice/<name>.npz`` with

* ``g`` (n_rows, n_cols) [S], ``v`` (batch, n_rows) [V],
* ``r_source`` (n_rows,), ``r_sense`` (n_cols,), ``r_row``, ``r_col`` [Ohm],
* ``i_spice`` (batch, n_cols) [A]: the sense currents printed by ngspice (17 digits),
* ``ngspice_version``, ``title``, ``seed``.

It then prints, per tile, the largest difference from xbarsim's nodal solver, for the README.
The seed is fixed: the same ngspice version must reproduce the same files. Review any diff by
eye and explain it in the commit message (xbarsim/golden/data/ngspice/README.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
#: the files ship with the package (part of the default golden suite, docs/golden.md)
HERE = ROOT / "xbarsim" / "golden" / "data" / "ngspice"

from xbarsim.hardware.circuit import sense_currents  # noqa: E402
from xbarsim.io.spice import ngspice_version, run_ngspice, write_netlist  # noqa: E402

SEED = 20260123

TXSIM = dict(g=(1e-6, 1e-5), r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
HARSH = dict(g=(50e-6, 500e-6), r_source=100.0, r_sense=100.0, r_row=10.0, r_col=10.0)

# name: (shape, regime); a regime value may be a callable (rng, n) -> per-line vector
TILES = {
    "txsim_4x4": ((4, 4), TXSIM),
    "txsim_8x5": ((8, 5), TXSIM),
    "txsim_3x11": ((3, 11), TXSIM),
    "txsim_16x16": ((16, 16), TXSIM),
    "harsh_8x8": ((8, 8), HARSH),
    "harsh_5x12": ((5, 12), HARSH),
    "perline_6x7": ((6, 7), dict(g=(1e-6, 1e-4), r_source=lambda rng, n: rng.uniform(20, 300, n),
                                 r_sense=lambda rng, n: rng.uniform(20, 300, n),
                                 r_row=2.0, r_col=3.0)),
    "zeros_7x4": ((7, 4), dict(g=(1e-6, 1e-3),
                               r_source=lambda rng, n: np.where(np.arange(n) % 2 == 0, 0.0,
                                                                rng.uniform(10, 200, n)),
                               r_sense=0.0, r_row=0.0, r_col=5.0)),
}


def drives(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Four drive vectors (4, n_rows) [V]: all 1 V, uniform [0, 1], uniform [-1, 1], row 0 only."""
    one_hot = np.zeros(n_rows)
    one_hot[0] = 1.0
    return np.vstack([np.ones(n_rows), rng.uniform(0.0, 1.0, n_rows),
                      rng.uniform(-1.0, 1.0, n_rows), one_hot])


def make(name: str, k: int, version: str) -> float:
    """Write one tile's .cir and .npz; return max |i_spice - i_nodal| / max (|v| @ g)."""
    (n_rows, n_cols), regime = TILES[name]
    rng = np.random.default_rng([SEED, k])
    g = rng.uniform(*regime["g"], (n_rows, n_cols))

    def line(key: str, n: int) -> np.ndarray:
        val = regime[key]
        return np.asarray(val(rng, n) if callable(val) else np.full(n, val), dtype=np.float64)

    r_source, r_sense = line("r_source", n_rows), line("r_sense", n_cols)
    r_row, r_col = float(regime["r_row"]), float(regime["r_col"])
    v = drives(rng, n_rows)
    title = f"xbarsim golden tile {name} (seed {SEED}, {k})"
    cir = HERE / f"{name}.cir"
    par = dict(r_source=r_source, r_sense=r_sense, r_row=r_row, r_col=r_col)
    write_netlist(cir, g, v, title=title, **par)
    i_spice = run_ngspice(cir)
    np.savez_compressed(HERE / f"{name}.npz", g=g, v=v, i_spice=i_spice, r_row=r_row,
                        r_col=r_col, r_source=r_source, r_sense=r_sense,
                        ngspice_version=np.str_(version), title=np.str_(title),
                        seed=np.int64(SEED))
    i_nodal = sense_currents(g, v, **par)
    scale = np.max(np.abs(v) @ g, axis=1, keepdims=True)       # ideal current scale [A]
    return float(np.max(np.abs(i_spice - i_nodal) / scale))


def main() -> None:
    """Regenerate every golden tile and print the observed errors."""
    version = ngspice_version()
    print(f"ngspice version: {version}")
    for k, name in enumerate(TILES):
        err = make(name, k, version)
        print(f"{name:14s} max |i_spice - i_nodal| / max (|v| @ g) = {err:.2e}")


if __name__ == "__main__":
    main()
