"""Training step (batch 128) of LeNet-5 and MLP 784-256-128-10: software, Cross-NI, PyTorch.

``python benchmarks/bench_train.py`` (PyTorch is optional: ``pip install torch==2.13.0``).
"""

import argparse

from xbarsim.runtime import tune_allocator
from xbarsim.studies.bench_train import format_train_bench, run_train_bench

if __name__ == "__main__":
    tune_allocator()    # as the CLI does (xbarsim.runtime)
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(format_train_bench(run_train_bench(repeats=args.repeats)))
