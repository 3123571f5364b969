"""Shared fixtures: hypothesis profiles, a fixed RNG, the MNIST directory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# deadline=None everywhere: the first call of a kernel includes its JIT compilation
_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=10, **_common)
settings.register_profile("ci", max_examples=50, **_common)
settings.register_profile("thorough", max_examples=1000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator; never np.random.seed."""
    return np.random.default_rng(20260123)


def mnist_dir() -> Path | None:
    """The MNIST folder from XBARSIM_DATA (or ../shared/data/mnist), or None when absent."""
    for cand in (os.environ.get("XBARSIM_DATA"), REPO.parent / "shared" / "data" / "mnist"):
        if cand and (Path(cand) / "t10k-images-idx3-ubyte.gz").exists():
            return Path(cand)
    return None


@pytest.fixture
def mnist_path() -> Path:
    """Path of the MNIST files; the test is skipped (with the reason) when they are absent."""
    path = mnist_dir()
    if path is None:
        pytest.skip("MNIST not found: set XBARSIM_DATA to a folder with the IDX files")
    return path
