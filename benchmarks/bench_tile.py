"""Benchmark of the g_eff solvers on square tiles (issue 2, item 6).

    python benchmarks/bench_tile.py [--sizes 32,64,128,256] [--regimes txsim,harsh]
                                    [--repeats 5] [--nodal-max-size N]

This runs the same click command as ``xbarsim bench tile`` (same options, same code path:
:func:`xbarsim.studies.bench.run_tile_bench` and ``format_bench_table``), so both print the
same table. Run it on an otherwise idle machine; set NUMBA_NUM_THREADS to pin the thread count.
"""

from __future__ import annotations

import platform
import sys

from xbarsim.cli import main

if __name__ == "__main__":
    import os

    from xbarsim.runtime import tune_blas_idle

    tune_blas_idle()    # before NumPy loads OpenBLAS (main() below would be too late)

    import numba
    import numpy as np
    import scipy

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads), "
          f"numpy {np.__version__}, scipy {scipy.__version__}", flush=True)
    # through the main group, so bad options give the same clean exit-2 messages
    main(["bench", "tile", *sys.argv[1:]], prog_name="bench_tile.py")
