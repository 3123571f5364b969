"""Training step (batch 128) of LeNet-5 and MLP 784-256-128-10: software, Cross-NI, PyTorch.

``python benchmarks/bench_train.py [--repeats 5]`` runs the click command ``xbarsim bench
train`` (same options, same process settings of xbarsim.runtime, same table). PyTorch is
optional: ``pip install torch==2.13.0``.
"""

import sys

from xbarsim.cli import main

if __name__ == "__main__":
    main(["bench", "train", *sys.argv[1:]], prog_name="bench_train.py")
