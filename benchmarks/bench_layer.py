"""Crossbar layer step (400x120, batch 128, TxSim hardware) vs NumPy.

``python benchmarks/bench_layer.py [--repeats 15]`` runs the click command ``xbarsim bench
layer`` (same options, same process settings of xbarsim.runtime, same table).
"""

import sys

from xbarsim.cli import main

if __name__ == "__main__":
    main(["bench", "layer", *sys.argv[1:]], prog_name="bench_layer.py")
