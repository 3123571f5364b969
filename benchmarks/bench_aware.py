"""Cost of one technology-aware training step (issue 22, section 4).

Two networks on MNIST (batch 64), each with its big layer on ONE crossbar per polarity:

* FCN 784-500-10 on 784 x 500 arrays (fc1 is one 784 x 500 array per polarity);
* CNN (model ``cnn``) on 4096 x 512 arrays (fc1 is one 4096 x 512 array per polarity).

Hardware: TxSim devices (100 kOhm - 1 MOhm), r_source = r_sense = 1 kOhm, wires 1 / 4.6 Ohm,
signed-split mapping, the exact direct solver. For each network one process times, side by
side and interleaved round by round, a training step (forward, loss, backward, optimiser) of
the software model and of the aware model with the exact and the straight-through gradient
(``aam1`` is refused on these arrays: its path expansion diverges, rho bound >> 1); for the
aware steps it also reports the time spent in ``g_eff`` refreshes and in the circuit
gradient, and one exact ``g_eff`` refresh of the big array alone (the FCM direct solver as a
crossbar tile runs it) for the ratio "exact gradient / refresh". Peak
memory (VmHWM, the resident-set high-water mark) is measured in a fresh process per
configuration doing two steps.

Usage::

    python benchmarks/bench_aware.py [--nets fcn cnn] [--rounds 3] [--out data/bench/aware.txt]

Needs MNIST (``$XBARSIM_DATA``). The CNN part takes about 20-30 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NETS = {
    "fcn": {"model": {"name": "mlp", "hidden": [500]}, "xbar": (784, 500), "layer": "fc1"},
    "cnn": {"model": {"name": "cnn"}, "xbar": (4096, 512), "layer": "fc1"},
}
MODES = ("software", "exact", "straight_through")


def _config(net: str, mode: str):
    from xbarsim.config import load_config

    spec = NETS[net]
    rows, cols = spec["xbar"]
    train = {"mode": "software" if mode == "software" else "aware", "batch_size": 64,
             "lr": 0.01, "momentum": 0.9}
    if mode != "software":
        train["aware"] = {"gradient": mode}
    return load_config({
        "seed": 0, "data": {"dataset": "mnist", "n_train": 640, "n_test": 100},
        "model": spec["model"],
        "hardware": {"crossbar": {"n_rows": rows, "n_cols": cols, "r_source": 1000.0,
                                  "r_sense": 1000.0, "r_row": 1.0, "r_col": 4.6},
                     "device": {"r_min": 1.0e5, "r_max": 1.0e6}},
        "train": train})


class _Step:
    """One model, loss and optimiser; ``step(x, y)`` is one training step."""

    def __init__(self, net: str, mode: str, data) -> None:
        from xbarsim import runner
        from xbarsim.nn.losses import LOSSES
        from xbarsim.nn.optim import SGD

        cfg = _config(net, mode)
        self.model, _ = runner.build_model(cfg, data.x_train.shape[1:], data.n_classes)
        self.loss = LOSSES["cross_entropy"]()
        self.opt = SGD(self.model.parameters(), 0.01, momentum=0.9)
        self.backends = [p.backend for n, p in self.model.named_parameters()
                         if n.endswith("weight")]

    def step(self, x, y) -> dict[str, float]:
        before = self._seconds()
        t0 = time.perf_counter()
        out = self.model.forward(x, training=True)
        self.loss.forward(out, y)
        self.model.backward(self.loss.backward(), input_grad=False)
        self.opt.step()
        total = time.perf_counter() - t0
        after = self._seconds()
        return {"step": total, "refresh": after[0] - before[0],
                "gradient": after[1] - before[1]}

    def _seconds(self) -> tuple[float, float]:
        r = sum(b.seconds["refresh"] for b in self.backends if hasattr(b, "seconds"))
        g = sum(b.seconds["gradient"] for b in self.backends if hasattr(b, "seconds"))
        return r, g


def _data():
    from xbarsim import runner

    return runner.load_data(_config("fcn", "software"))


def _refresh_time(net: str) -> float:
    """One exact g_eff of the big array (FCM direct, two threads, as a tile refreshes it)."""
    from xbarsim.hardware.circuit import Parasitics
    from xbarsim.hardware.solvers import FCMSolver

    rows, cols = NETS[net]["xbar"]
    g = np.random.default_rng(0).uniform(1e-6, 1e-5, (rows, cols))
    solver = FCMSolver(Parasitics.build(rows, cols, r_source=1000.0, r_sense=1000.0,
                                        r_row=1.0, r_col=4.6))
    solver.g_eff(g)                                   # compile, allocate
    t0 = time.perf_counter()
    solver.g_eff(g)
    return time.perf_counter() - t0


def _vm_hwm_mb() -> float:
    """Peak resident set size of this process [MB] (VmHWM of /proc/self/status)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(net: str, mode: str) -> None:
    """Two steps of one configuration in this (fresh) process; print JSON with the peak RSS."""
    data = _data()
    x, y = data.x_train[:64], data.y_train[:64]
    s = _Step(net, mode, data)
    times = [s.step(x, y)["step"] for _ in range(2)]
    print(json.dumps({"net": net, "mode": mode, "peak_rss_mb": _vm_hwm_mb(),
                      "step_s": times[-1]}))


def measure(net: str, rounds: int) -> dict:
    data = _data()
    batches = [(data.x_train[k * 64:(k + 1) * 64], data.y_train[k * 64:(k + 1) * 64])
               for k in range(rounds + 1)]
    steps = {m: _Step(net, m, data) for m in MODES}
    for m in MODES:                                   # warm-up: compile, allocate
        steps[m].step(*batches[0])
    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    for k in range(rounds):
        for m in MODES:
            results[m].append(steps[m].step(*batches[k + 1]))
            print(f"{net} round {k + 1} {m}: {results[m][-1]}", file=sys.stderr, flush=True)
    del steps
    refresh = statistics.median(_refresh_time(net) for _ in range(2))
    return {"results": results, "refresh": refresh}


def _rss(net: str, mode: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", net, mode], capture_output=True,
                         text=True, check=True, env=os.environ.copy())
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", choices=list(NETS), default=list(NETS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs=2, metavar=("NET", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    lines = ["# xbarsim: one aware training step (batch 64, MNIST), medians of "
             f"{args.rounds} interleaved rounds", f"# {time.strftime('%Y-%m-%d %H:%M')}; "
             f"python benchmarks/bench_aware.py --rounds {args.rounds}", ""]
    for net in args.nets:
        rows, cols = NETS[net]["xbar"]
        m = measure(net, args.rounds)
        rss = {mode: _rss(net, mode) for mode in MODES}
        res = m["results"]
        med = {mode: {k: statistics.median(r[k] for r in res[mode]) for k in res[mode][0]}
               for mode in MODES}
        sw = med["software"]["step"]
        lines += [f"## {net}: big layer on one {rows} x {cols} array per polarity "
                  f"(2 arrays); exact g_eff refresh of one such array alone: "
                  f"{m['refresh']:.3f} s", "",
                  "| step | total [s] | x software | refreshes [s] | circuit gradient [s] "
                  "| gradient / refreshes | peak RSS [MB] |",
                  "|---|---|---|---|---|---|---|"]
        for mode in MODES:
            d = med[mode]
            ratio = d["gradient"] / d["refresh"] if d["refresh"] > 0 else float("nan")
            lines.append(f"| {mode} | {d['step']:.3g} | {d['step'] / sw:.3g} | "
                         f"{d['refresh']:.3g} | {d['gradient']:.3g} | "
                         f"{'' if mode == 'software' else f'{ratio:.2f}'} | {rss[mode]:.0f} |")
        lines += ["", "per round (total step [s]):"]
        for mode in MODES:
            lines.append(f"  {mode}: " + "/".join(f"{r['step']:.3g}" for r in res[mode]))
        lines.append("")
        print("\n".join(lines), file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
