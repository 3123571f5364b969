"""Command-line interface: ``xbarsim <command>`` (the single entry point, ``main``).

Each command parses its options, calls one library function and prints or writes the result.
Heavy modules (NumPy solvers, Numba kernels, h5py, matplotlib) are imported inside the commands,
so ``xbarsim --help`` stays fast and compiles nothing.

One module per command or command group registers it on :data:`main`
(:mod:`xbarsim.cli.common`): ``cmd_run`` (run, check-config, show-config), ``cmd_tile``,
``cmd_bench``, ``cmd_sweep``, ``cmd_deploy`` (trained weights on many chips), ``cmd_golden``
(the golden reference suite). Exit codes: 0 success, 2 bad input (one ``Error: ...`` line, no
traceback), 3 diverged training, 130 interrupted; ``golden check`` exits 1 when a quantity
fails its tolerance.
"""

from __future__ import annotations

from xbarsim.cli import (  # noqa: F401  (registers them)
    cmd_bench,
    cmd_deploy,
    cmd_golden,
    cmd_run,
    cmd_sweep,
    cmd_tile,
)
from xbarsim.cli.common import main

__all__ = ["main"]
