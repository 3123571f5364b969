"""Exact refresh of every array of a network, batched vs array by array, against the GEMM rate.

``python benchmarks/bench_refresh.py [--models lenet5,mlp] [--rounds 5]`` runs the click
command ``xbarsim bench refresh`` (same options, same process settings, same table).
"""

import sys

from xbarsim.cli import main

if __name__ == "__main__":
    main(["bench", "refresh", *sys.argv[1:]], prog_name="bench_refresh.py")
