"""Training step (batch 128): software, Cross-NI exact and interpolated, PyTorch; peak memory.

``python benchmarks/bench_train.py [--models lenet5,mlp,resnet20,vgg_small] [--rounds 3]``
runs the click command ``xbarsim bench train`` (same options, same process settings of
xbarsim.runtime, same table). PyTorch is optional: ``pip install torch==2.13.0``.
"""

import sys

from xbarsim.cli import main

if __name__ == "__main__":
    main(["bench", "train", *sys.argv[1:]], prog_name="bench_train.py")
