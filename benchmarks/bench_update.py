"""Device update of a training step: the serial-noise path against the keyed parallel kernel.

``python benchmarks/bench_update.py [--rounds 15]`` prints the table of
:func:`xbarsim.studies.bench_update.run_update_bench` (MLP 784-256-128-10 and LeNet-5 tiles on
the TxSim preset, 1 and 2 threads, medians of interleaved rounds); its output is kept in
``data/bench/update.txt``.
"""

import argparse
import os
import platform

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")   # as the CLI (xbarsim.runtime)
os.environ.setdefault("OMP_WAIT_POLICY", "passive")      # as the CLI

import numba  # noqa: E402
import numpy as np  # noqa: E402

from xbarsim.studies.bench_update import format_update_bench, run_update_bench  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--models", default="mlp,lenet5")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = run_update_bench(tuple(args.models.split(",")), rounds=args.rounds)
    print(f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    print(f"numpy {np.__version__}, numba {numba.__version__} ({numba.threading_layer()} "
          f"threading layer), {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(format_update_bench(rows))
