"""Box edge of the direct FCM solver side by side: one exact ``g_eff`` per shape and box.

    python benchmarks/bench_schur_box.py [--repeats 30] [--boxes 2,4,8,16]

The direct solver (:mod:`xbarsim.hardware.schur`) first merges equal boxes of ``box x box``
cells, vectorised across the boxes of each level, then merges the boxes by BLAS products.
For each shape (TxSim regime: g uniform in 1-10 uS, r_row 1 Ohm, r_col 4.6 Ohm, 100 Ohm
terminals) this prints the median time [ms] of one solve on one thread for every box edge,
the fastest, the default :func:`xbarsim.hardware.schur.box_size` and default / fastest.
"""

from __future__ import annotations

import argparse

from xbarsim.runtime import tune_blas_idle

tune_blas_idle()

import numpy as np  # noqa: E402

from xbarsim.hardware import schur  # noqa: E402
from xbarsim.hardware.circuit import Parasitics  # noqa: E402
from xbarsim.kernels.blas import one_blas_thread  # noqa: E402
from xbarsim.studies.bench import blas_note, median_time  # noqa: E402

SHAPES = ((8, 8), (16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (16, 64), (64, 16),
          (25, 6), (150, 16), (128, 128), (256, 256))


def main() -> None:  # noqa: D103
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--boxes", default="2,4,8,16")
    args = ap.parse_args()
    boxes = [int(b) for b in args.boxes.split(",")]
    print("| shape | " + " | ".join(f"box {b} [ms]" for b in boxes)
          + " | fastest | default | default/fastest |")
    print("|---|" + "---|" * (len(boxes) + 3))

    def run() -> None:
        rng = np.random.default_rng(0)
        for shape in SHAPES:
            g = rng.uniform(1e-6, 1e-5, shape)
            par = Parasitics.build(*shape, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
            times = {}
            for box in boxes:
                if box <= max(shape):
                    times[box] = median_time(lambda b=box, g=g, par=par: schur.g_eff(g, par, box=b),
                                             args.repeats, min_seconds=0.25)[0]
            best = min(times, key=times.__getitem__)
            default = schur.box_size(*shape)
            ratio = times[default] / times[best] if default in times else float("nan")
            cells = " | ".join(f"{1e3 * times[b]:.3g}" if b in times else "-" for b in boxes)
            print(f"| {shape[0]}x{shape[1]} | {cells} | {best} | {default} | {ratio:.2f} |")

    one_blas_thread(run)()
    print(blas_note())


if __name__ == "__main__":
    main()
