"""xbarsim: training deep neural networks on simulated resistive-crossbar hardware.

The public API is imported lazily, so ``import xbarsim`` compiles nothing and stays fast
(the CLI's ``--help`` does not pay for Numba or h5py).

Circuit core
------------
sense_currents
    Column sense currents of one crossbar for row input voltages (golden nodal solver).
effective_conductance
    The matrix ``g_eff`` with ``i = v @ g_eff`` (methods ``"nodal"``, ``"fcm"``, ``"aam"``).
InterpolatedSolver
    TxSim's interpolated FCM: exact refresh every L calls, stored distortion in between.
Parasitics
    The four parasitic resistances of one crossbar, validated once.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "sense_currents": "xbarsim.hardware.circuit",
    "effective_conductance": "xbarsim.hardware.circuit",
    "node_voltages": "xbarsim.hardware.circuit",
    "backward_currents": "xbarsim.hardware.circuit",
    "rho_bound": "xbarsim.hardware.circuit",
    "Parasitics": "xbarsim.hardware.circuit",
    "InterpolatedSolver": "xbarsim.hardware.solvers",
    "ConvergenceError": "xbarsim.errors",
    "ConfigError": "xbarsim.errors",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'xbarsim' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
