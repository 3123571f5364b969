"""OpenBLAS's idle wait side by side: training steps with OPENBLAS_THREAD_TIMEOUT 28 and 20.

    python benchmarks/bench_blas_idle.py [--rounds 3] [--repeats 5] [--waits 28,20]

OpenBLAS reads its idle wait once, when it loads, so each setting runs in its own
interpreter; the settings alternate for ``--rounds`` rounds and the table gives, per step, the
median over rounds of each setting's median step time [ms] and the ratio to the first setting
(< 1: faster). 28 is OpenBLAS's default, 20 what xbarsim's CLI sets
(:func:`xbarsim.runtime.tune_blas_idle`). Steps are those of ``xbarsim bench train``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

# one interpreter: the steps of `xbarsim bench train` without PyTorch, medians in seconds
_CHILD = """
import json, sys
from xbarsim.runtime import tune_allocator
tune_allocator()
from xbarsim.kernels.blas import idle_wait_log2
from xbarsim.studies import bench_train as bt
repeats = int(sys.argv[1])
out = {"wait": sorted(set(idle_wait_log2()))}
for model in ("lenet5", "mlp"):
    out[model + " software"] = bt._median_step(bt._xbarsim_step(model, None, 128, 0), repeats, 2)
    out[model + " Cross-NI exact"] = bt._median_step(
        bt._xbarsim_step(model, bt.cross_ni_hardware("fcm"), 128, 0), repeats, 2)
print(json.dumps(out))
"""


def run_child(wait: int, repeats: int) -> dict[str, float]:
    """Step medians [s] in a fresh interpreter with ``OPENBLAS_THREAD_TIMEOUT=wait``."""
    env = {**os.environ, "OPENBLAS_THREAD_TIMEOUT": str(wait)}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(repeats)], env=env, check=True,
                          capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result.pop("wait") != [wait]:
        raise RuntimeError(f"OpenBLAS did not take OPENBLAS_THREAD_TIMEOUT={wait}")
    return result


def main() -> None:
    """Alternate the settings, print medians over rounds and ratios to the first setting."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--waits", default="28,20")
    args = ap.parse_args()
    waits = [int(w) for w in args.waits.split(",")]
    runs: dict[int, list[dict[str, float]]] = {w: [] for w in waits}
    for _ in range(args.rounds):
        for w in waits:
            runs[w].append(run_child(w, args.repeats))
    steps = list(runs[waits[0]][0])
    med = {w: {s: statistics.median(r[s] for r in runs[w]) for s in steps} for w in waits}
    head = " | ".join(f"2^{w} [ms]" for w in waits)
    ratios = " | ".join(f"2^{w}/2^{waits[0]}" for w in waits[1:])
    print(f"| step | {head} | {ratios} |")
    print("|---" * (1 + 2 * len(waits) - 1) + "|")
    for s in steps:
        times = " | ".join(f"{1e3 * med[w][s]:.3g}" for w in waits)
        rel = " | ".join(f"{med[w][s] / med[waits[0]][s]:.2f}" for w in waits[1:])
        print(f"| {s} | {times} | {rel} |")
    print(f"\nMedians over {args.rounds} alternating rounds, each a fresh interpreter.")


if __name__ == "__main__":
    main()
