"""Process settings (xbarsim.runtime): freed temporaries stay mapped, idle BLAS workers sleep soon.

Each case runs in a fresh interpreter: the setting is process-wide and cannot be undone.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from xbarsim.runtime import ALLOCATOR_ENV, BLAS_TIMEOUT_ENV, tune_allocator, tune_blas_idle

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


# what OpenBLAS read, after tune_blas_idle() ran before (argv "before") or after NumPy loaded
_BLAS_SCRIPT = """
import sys
from xbarsim.runtime import tune_blas_idle
if sys.argv[1] == "after":
    import numpy
took = tune_blas_idle()
from xbarsim.kernels.blas import idle_wait_log2
print(took, sorted(set(idle_wait_log2())))
"""


def _blas_wait(order: str, env_value: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != BLAS_TIMEOUT_ENV}
    if env_value is not None:
        env[BLAS_TIMEOUT_ENV] = env_value
    return subprocess.run([sys.executable, "-c", _BLAS_SCRIPT, order], env=env,
                          capture_output=True, text=True, check=True).stdout.strip()


openblas = pytest.mark.skipif(not sys.platform.startswith("linux"),
                              reason="OpenBLAS found through /proc/self/maps")


@openblas
def test_blas_idle_wait_is_set_before_numpy_loads():
    assert _blas_wait("before") == "True [20]"


@openblas
def test_blas_idle_wait_cannot_change_once_numpy_is_loaded():
    assert _blas_wait("after") == "False [28]"      # OpenBLAS's default, and it says so


@openblas
def test_blas_idle_wait_keeps_the_users_value():
    assert _blas_wait("before", "24") == "False [24]"
    assert _blas_wait("before", "99") == "False [30]"    # clamped as OpenBLAS clamps it


def test_blas_idle_wait_rejects_out_of_range_values():
    for bad in (3, 31, 20.0, True):
        with pytest.raises(ValueError, match="timeout_log2"):
            tune_blas_idle(bad)


@openblas
def test_cli_sets_the_blas_idle_wait(tmp_path):
    """The CLI's commands (here the benchmark's note line) run with the shorter idle wait."""
    env = {k: v for k, v in os.environ.items() if k != BLAS_TIMEOUT_ENV}
    code = ("from xbarsim.cli import main; main(['bench', '--help'], standalone_mode=False); "
            "from xbarsim.studies.bench import blas_note; print(blas_note())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, cwd=tmp_path).stdout
    assert "spin for 2^20 cycles" in out
