"""One physical crossbar array: programmed conductances, its device, solver and cached ``g_eff``.

A weight block smaller than the physical array occupies its bottom-left corner (rows next to
the sense amplifiers, columns next to the drivers). Unused rows are held at 0 V and unused
cells are unformed (g = 0), so they carry no current; the used block is then *exactly* a
crossbar of the used size with the same terminal resistances, which is what is simulated.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xbarsim.hardware.device import Device
from xbarsim.hardware.solvers import CircuitSolver

FloatArray = NDArray[np.float64]


class Crossbar:
    """Conductances of one array and the solver that turns them into ``g_eff``.

    Parameters
    ----------
    g : ndarray of shape (n_rows, n_cols)
        Initial programmed conductances [S] (copied).
    device : Device
        Device model of this array (its per-device variations have this shape).
    solver : CircuitSolver
        Effective-conductance solver of this array (kept: it may hold warm-start state).

    Notes
    -----
    Every change of ``g`` goes through :meth:`program` or :meth:`update`, which invalidate the
    cached ``g_eff``; it is recomputed lazily by the next product.
    """

    def __init__(self, g: FloatArray, device: Device, solver: CircuitSolver) -> None:
        self._g = np.array(g, dtype=np.float64, order="C")
        self.device = device
        self.solver = solver
        self._g_eff: FloatArray | None = None
        self.n_refresh = 0
        self.version = 0
        """Incremented at every change of ``g`` (lets users cache products of ``g_eff``)."""

    @property
    def g(self) -> FloatArray:
        """Programmed conductances [S] (read-only view)."""
        view = self._g.view()
        view.flags.writeable = False
        return view

    @property
    def shape(self) -> tuple[int, int]:
        """(n_rows, n_cols) of the used block."""
        return self._g.shape  # type: ignore[return-value]

    @property
    def stale(self) -> bool:
        """True when ``g`` changed since ``g_eff`` was last computed."""
        return self._g_eff is None

    def g_eff(self) -> FloatArray:
        """Effective conductance [S] of the present ``g`` (cached until ``g`` changes)."""
        if self._g_eff is None:
            self._g_eff = self.solver.g_eff(self._g)
            self.n_refresh += 1
        return self._g_eff

    def accept_g_eff(self, g_eff: FloatArray) -> None:
        """Store ``g_eff`` [S] that this array's solver computed for the present ``g``.

        For refreshes that solve many arrays together
        (:func:`xbarsim.hardware.tile.refresh_tiles`); counts as one refresh.
        """
        self._g_eff = g_eff
        self.n_refresh += 1

    def program(self, g_target: FloatArray, noise: FloatArray | None = None) -> None:
        """Program target conductances [S] with the device's precision and variations."""
        self._g = np.ascontiguousarray(self.device.program(g_target, noise))
        self._g_eff = None
        self.version += 1

    def update(self, dg_request: FloatArray, noise: FloatArray | None = None) -> None:
        """Apply requested conductance changes [S] through the device's update model.

        ``dg_request`` (and ``noise``) come from the tile: finite float64 of this shape; they
        go to the device unchecked (the tile validated the step it was given).
        """
        dg = np.ascontiguousarray(dg_request, dtype=np.float64)
        self._g = np.ascontiguousarray(self.device.apply_update_trusted(self._g, dg, noise))
        self._g_eff = None
        self.version += 1

    def adopt(self, g: FloatArray) -> None:
        """Take updated conductances [S] without a copy (the tile's update kernel).

        ``g`` must be C-contiguous float64 of this shape that nobody writes to afterwards
        (a view of the kernel's fresh output): earlier :attr:`g` views keep the old values.
        """
        self._g = g
        self._g_eff = None
        self.version += 1

    def set_state(self, g: FloatArray) -> None:
        """Restore conductances exactly (checkpoints); no device physics applied."""
        if g.shape != self._g.shape:
            raise ValueError(f"g: expected shape {self._g.shape}, got {g.shape}")
        self._g = np.array(g, dtype=np.float64, order="C")
        self._g_eff = None
        self.version += 1
