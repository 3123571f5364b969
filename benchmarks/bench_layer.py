"""Crossbar layer step (400x120, batch 128, TxSim hardware) vs NumPy.

``python benchmarks/bench_layer.py`` (same as ``xbarsim bench layer``).
"""

import argparse

from xbarsim.runtime import tune_allocator
from xbarsim.studies.bench_layer import format_layer_bench, run_layer_bench

if __name__ == "__main__":
    tune_allocator()    # as the CLI does (xbarsim.runtime)
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    print(format_layer_bench(run_layer_bench(repeats=args.repeats)))
