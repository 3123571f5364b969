"""One 64x64 g_eff through xbarsim.effective_conductance vs SciPy's sparse LU (MMD ordering).

``python benchmarks/bench_api.py [--size 64] [--rounds 7]`` runs the click command ``xbarsim
bench api`` (same options, same process settings of xbarsim.runtime, same report).
"""

import sys

from xbarsim.cli import main

if __name__ == "__main__":
    main(["bench", "api", *sys.argv[1:]], prog_name="bench_api.py")
