"""Allocator tuning (xbarsim.runtime): freed temporaries stay mapped, and it can be switched off.

Each case runs in a fresh interpreter: the setting is process-wide and cannot be undone.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from xbarsim.runtime import ALLOCATOR_ENV, tune_allocator

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt only")

# rounds of temporaries as a training step and an evaluation make them (20 MB from NumPy,
# 48 MB from Numba, which gets no huge pages); prints the page faults of the last five rounds
# and what tune_allocator returned
_SCRIPT = """
import resource, sys
import numba
import numpy as np
from xbarsim.runtime import tune_allocator
tuned = tune_allocator() if sys.argv[1] == "1" else False
@numba.njit
def numba_ones(n):
    out = np.empty(n)
    out[:] = 1.0
    return out
def one_round():
    tmp = [np.ones(2_500_000 + 1000 * k) for k in range(4)] + [numba_ones(6_000_000)]
    del tmp
for _ in range(3):
    one_round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    one_round()
print(tuned, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def _faults(tune: bool, env_value: str | None = None) -> tuple[bool, float]:
    env = {k: v for k, v in os.environ.items() if k != ALLOCATOR_ENV}
    if env_value is not None:
        env[ALLOCATOR_ENV] = env_value
    out = subprocess.run([sys.executable, "-c", _SCRIPT, "1" if tune else "0"], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", float(out[1])


@glibc
def test_tuned_allocator_stops_refaulting_freed_temporaries():
    tuned, faults_tuned = _faults(True)
    _, faults_default = _faults(False)
    assert tuned
    # 128 MB per round; glibc's defaults fault a good part of it again every round (about
    # 14 000 faults here, 12 000 of them the 48 MB Numba block), the tuned heap almost none
    assert faults_tuned < 0.1 * max(faults_default, 100.0)


@glibc
def test_environment_variable_switches_it_off():
    tuned, _ = _faults(True, env_value="0")
    assert not tuned


def test_rejects_negative_sizes():
    with pytest.raises(ValueError, match="trim_threshold"):
        tune_allocator(mmap_threshold=-1)
    with pytest.raises(ValueError, match="trim_threshold"):
        tune_allocator(trim_threshold=-1)


@glibc
def test_cli_tunes_the_allocator(tmp_path):
    """Every xbarsim command runs with the tuned allocator (its debug log says so)."""
    env = {k: v for k, v in os.environ.items() if k != ALLOCATOR_ENV}
    out = subprocess.run([sys.executable, "-m", "xbarsim", "-vv", "bench", "--help"], env=env,
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "glibc malloc tuned" in out.stderr and "(ok)" in out.stderr
