"""Weight initialisation from an explicit, named ``numpy.random.Generator``.

Every function has the signature ``init(rng, n_in, n_out) -> (n_in, n_out) float64``, where
``n_in`` is the fan-in (``c_in * kh * kw`` for a convolution) and ``n_out`` the fan-out
(``c_out``). Model builders draw each layer's weights from its own stream
``xbarsim.rng.stream(seed, "init/<layer name>")``, so adding a layer does not change the others.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

__all__ = ["he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "INITS", "get_init"]


def he_normal(rng: np.random.Generator, n_in: int, n_out: int) -> NDArray[np.float64]:
    """He et al. (2015) normal: ``N(0, 2 / n_in)``, for ReLU networks."""
    return rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))


def he_uniform(rng: np.random.Generator, n_in: int, n_out: int) -> NDArray[np.float64]:
    """He uniform: ``U(-a, a)`` with ``a = sqrt(6 / n_in)``."""
    a = np.sqrt(6.0 / n_in)
    return rng.uniform(-a, a, size=(n_in, n_out))


def glorot_normal(rng: np.random.Generator, n_in: int, n_out: int) -> NDArray[np.float64]:
    """Glorot & Bengio (2010) normal: ``N(0, 2 / (n_in + n_out))``."""
    return rng.normal(0.0, np.sqrt(2.0 / (n_in + n_out)), size=(n_in, n_out))


def glorot_uniform(rng: np.random.Generator, n_in: int, n_out: int) -> NDArray[np.float64]:
    """Glorot uniform: ``U(-a, a)`` with ``a = sqrt(6 / (n_in + n_out))``."""
    a = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-a, a, size=(n_in, n_out))


INITS: dict[str, Callable[[np.random.Generator, int, int], NDArray[np.float64]]] = {
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
}


def get_init(name: str) -> Callable[[np.random.Generator, int, int], NDArray[np.float64]]:
    """Look up an initialiser by name.

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    """
    try:
        return INITS[name]
    except KeyError:
        raise ValueError(f"init: unknown initialiser {name!r}; choose one of "
                         f"{sorted(INITS)}") from None
