"""Named, independent random streams derived from one seed.

Each consumer (data shuffling, weight init, one stream per tile, ...) gets its own
``numpy.random.Generator`` spawned from ``SeedSequence(seed)`` keyed by its *name*, so adding a
layer never changes the noise another tile sees. Kernels never draw from a stream; the device
update draws its write noise from counter-based Philox keyed by a number each noisy tile
draws once from its stream (:mod:`xbarsim.kernels.philox`).
"""

from __future__ import annotations

import hashlib

import numpy as np


def stream(seed: int, name: str) -> np.random.Generator:
    """Return the generator for stream ``name`` under ``seed``.

    The stream depends only on ``(seed, name)``: the name is hashed into the spawn key.
    """
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(key,)))


def streams(seed: int, names: tuple[str, ...] | list[str]) -> dict[str, np.random.Generator]:
    """Return ``{name: stream(seed, name)}`` for every name."""
    return {n: stream(seed, n) for n in names}
