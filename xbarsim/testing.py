"""Named tolerances and helpers shared by the test suite (and by users validating simulators).

Each tolerance carries its reason. Use ``numpy.testing.assert_allclose(actual, desired,
rtol=..., atol=...)`` with these, never ``decimal=``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Tolerances:
    """Test tolerances (relative unless noted)."""

    kernel_rtol: float = 1e-12
    """Kernel vs slow reference, same maths in float64: summation-order error only."""
    nodal_rtol: float = 1e-10
    """Nodal (sparse LU) vs dense solve: direct LU of a well-conditioned SPD system."""
    residual: float = 1e-12
    """Relative KCL residual ||Y x - b|| / ||b|| of a direct solve."""
    spice_rtol: float = 1e-9
    """Nodal vs ngspice: 17 printed digits; observed errors ~1e-12 (golden/data/ngspice/README.md)."""
    spice_atol: float = 1e-15
    """Absolute floor [A] for ngspice comparisons (currents near zero)."""
    fcm_rtol: float = 1e-10
    """FCM default tolerance (relative to max |g_eff|)."""
    grad_rtol: float = 1e-5
    """Central differences at h ~ 1e-6: O(h^2) truncation plus O(eps/h) round-off."""
    grad_atol: float = 1e-8
    """Absolute floor for gradient checks."""


TOL = Tolerances()


def dot_atol(v: NDArray[np.float64], g: NDArray[np.float64], c: float = 8.0) -> NDArray[np.float64]:
    """Scale-aware absolute tolerance of ``v @ g``: ``c * n * eps * (|v| @ |g|)``."""
    n = g.shape[0]
    return c * n * np.finfo(np.float64).eps * (np.abs(v) @ np.abs(g))


def numerical_gradient(f, x: NDArray[np.float64], h: float = 1e-6) -> NDArray[np.float64]:
    """Central-difference gradient of the scalar function ``f`` at ``x`` (float64).

    The step is ``h * max(1, |x_k|)`` per component.
    """
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    flat = x.reshape(-1)
    gflat = grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        step = h * max(1.0, abs(old))
        flat[k] = old + step
        fp = f(x)
        flat[k] = old - step
        fm = f(x)
        flat[k] = old
        gflat[k] = (fp - fm) / (2 * step)
    return grad
