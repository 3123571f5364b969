"""Run a Chakraborty et al. (TETCI 2018) reproduction study: train, deploy on chips, summarise.

Usage::

    python examples/studies/chakraborty.py STUDY.yaml --out DIR [--smoke] [--dry-run]
                                           [--only AXIS ...] [--data-dir DIR]

``STUDY.yaml`` (``chakraborty_fcn.yaml``, ``chakraborty_cnn.yaml``) holds a base run
configuration, the trainings to compare and the axes, each varied one at a time around the
base. For every point, seed and training the script

1. trains the network with :func:`xbarsim.runner.run` into
   ``DIR/runs/<point>/<training>_s<seed>.h5`` (hardware-independent trainings once per seed,
   in ``DIR/runs/any/``), starting from the
   software-trained weights when the training says ``init: software``;
2. deploys it with :func:`xbarsim.deploy.deploy` on ``chips`` fresh chips of the point's
   hardware (chip seeds ``deploy_chip_seed + k``) into ``DIR/deploy/<point>/...h5``;
3. writes ``DIR/summary.csv`` (one row per point, seed and training: ideal accuracy of the
   digital weights and the chip distribution) and ``DIR/summary.md`` (means over seeds), and
   with matplotlib one figure per axis, ``DIR/<axis>.png``.

It is resumable: completed runs and existing deployments are skipped, a run with a checkpoint
is resumed. ``--smoke`` applies the study's ``smoke`` section (tiny data, one seed, two chips,
small arrays) to check that everything runs as written; ``--dry-run`` lists what would run.
"""

from __future__ import annotations

import argparse
import copy
import csv
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from xbarsim.config import config_to_dict, load_config
from xbarsim.errors import ConfigError

logger = logging.getLogger("chakraborty")


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = copy.deepcopy(value)


def _value_label(value: Any) -> str:
    items = value if isinstance(value, (list, tuple)) else [value]
    return "x".join(f"{v:g}" if isinstance(v, float) else str(v) for v in items)


def load_study(path: Path, smoke: bool) -> dict[str, Any]:
    """Read the study file and apply its ``smoke`` section when asked."""
    study = yaml.safe_load(path.read_text())
    if not isinstance(study, dict) or "base" not in study or "axes" not in study:
        raise ValueError(f"{path}: expected a mapping with name, seeds, chips, base, "
                         "trainings and axes")
    study.setdefault("name", path.stem)
    study.setdefault("seeds", [0])
    study.setdefault("chips", 10)
    study.setdefault("deploy_chip_seed", 1000)
    if smoke:
        sm = study.get("smoke") or {}
        for key in ("seeds", "chips"):
            if key in sm:
                study[key] = sm[key]
        for dotted, value in (sm.get("set") or {}).items():
            _set(study["base"], dotted, value)
        for spec in study["trainings"].values():
            spec.setdefault("set", {}).update(sm.get("trainings_set") or {})
        for axis, values in (sm.get("axes") or {}).items():
            study["axes"][axis]["values"] = values
    return study


def points(study: dict[str, Any], only: list[str] | None) -> list[dict[str, Any]]:
    """List the base point and every one-at-a-time variation, deduplicated."""
    base = study["base"]
    out = [{"name": "base", "axis": "base", "value": "", "raw": copy.deepcopy(base)}]
    seen = {yaml.safe_dump(config_to_dict(load_config(base)))}
    for axis, spec in study["axes"].items():
        if only and axis not in only:
            continue
        for value in spec["values"]:
            values = value if isinstance(value, (list, tuple)) else [value]
            if len(values) != len(spec["keys"]):
                raise ValueError(f"axes.{axis}: value {value!r} does not match keys "
                                 f"{spec['keys']}")
            raw = copy.deepcopy(base)
            for key, v in zip(spec["keys"], values, strict=True):
                _set(raw, key, v)
            key = yaml.safe_dump(config_to_dict(load_config(raw)))
            label = _value_label(value)
            if key in seen:            # the base itself: keep it under the axis too
                out.append({"name": "base", "axis": axis, "value": label, "raw": raw,
                            "alias": True})
                continue
            seen.add(key)
            out.append({"name": f"{axis}-{label}", "axis": axis, "value": label, "raw": raw})
    return out


def run_config(point: dict[str, Any], spec: dict[str, Any], seed: int, out: Path,
               weights: Path | None) -> Any:
    """Build the configuration of one training run at one point."""
    raw = copy.deepcopy(point["raw"])
    raw["seed"] = int(seed)
    for dotted, value in (spec.get("set") or {}).items():
        _set(raw, dotted, value)
    _set(raw, "output.out", str(out))
    if weights is not None:
        _set(raw, "train.weights", str(weights))
    return load_config(raw)


def train(cfg: Any, out: Path, data_dir: str | None) -> str:
    """Train unless done; resume from a checkpoint. Returns what happened."""
    from xbarsim import runner
    from xbarsim.io import hdf5

    if out.exists():
        status = hdf5.read_run(out)["attrs"].get("status")
        if status in ("completed", "diverged"):
            return f"skip ({status})"
    ckpt = runner.checkpoint_path_for(cfg, out)
    resume = ckpt.exists()
    t0 = time.perf_counter()
    result = runner.run(cfg, out=out, resume=resume, force=not resume, data_dir=data_dir)
    return (f"{'resumed' if resume else 'trained'}: {result.status}, test acc "
            f"{result.test_acc:.4f}, {time.perf_counter() - t0:.0f} s")


def main(argv: list[str] | None = None) -> int:
    """Run the study (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true", help="tiny settings (smoke section)")
    parser.add_argument("--dry-run", action="store_true", help="list the work, do nothing")
    parser.add_argument("--estimate", action="store_true",
                        help="time two training steps of every distinct configuration and one "
                             "test-set pass on a chip, and print the cost of the whole study")
    parser.add_argument("--only", nargs="+", metavar="AXIS", help="only these axes (+ base)")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in ("xbarsim", "xbarsim.train.trainer"):
        logging.getLogger(name).setLevel(logging.WARNING)
    study = load_study(args.study, args.smoke)
    pts = points(study, args.only)
    trainings = study["trainings"]
    seeds = [int(s) for s in study["seeds"]]
    if args.estimate:
        return estimate(study, pts, args.data_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "study.yaml").write_text(yaml.safe_dump(
        {k: v for k, v in study.items() if k != "smoke"}, sort_keys=False))
    rows = []
    from xbarsim.deploy import deploy

    for point in pts:
        for seed in seeds:
            for tname, spec in trainings.items():
                independent = bool(spec.get("hardware_independent"))
                run_dir = args.out / "runs" / ("any" if independent else point["name"])
                run_file = run_dir / f"{tname}_s{seed}.h5"
                weights = None
                if spec.get("init") == "software":
                    weights = args.out / "runs" / "any" / f"software_s{seed}.h5"
                dep_file = args.out / "deploy" / point["name"] / f"{tname}_s{seed}.h5"
                if args.dry_run:
                    print(f"{point['name']:>24} seed {seed} {tname:>12}: train {run_file}"
                          f"{' (init ' + str(weights) + ')' if weights else ''}; deploy "
                          f"{dep_file}")
                    continue
                if point.get("alias"):
                    rows.append(_row(point, seed, tname, dep_file))
                    continue
                run_dir.mkdir(parents=True, exist_ok=True)
                cfg = run_config(point, spec, seed, run_file, weights)
                msg = train(cfg, run_file, args.data_dir)
                logger.info("%s seed %d %s: %s", point["name"], seed, tname, msg)
                if not dep_file.exists():
                    dep_file.parent.mkdir(parents=True, exist_ok=True)
                    chip_cfg = load_config(point["raw"])
                    res = deploy(run_file, chip_cfg.hardware, chips=int(study["chips"]),
                                 overrides=[f"hardware.variation.chip_seed="
                                            f"{int(study['deploy_chip_seed'])}"],
                                 out=dep_file, data_dir=args.data_dir)
                    logger.info("%s seed %d %s: deployed on %d chips: mean %.4f worst %.4f "
                                "(digital %.4f)", point["name"], seed, tname,
                                res.accuracies.size, res.mean, res.worst, res.ideal_acc)
                rows.append(_row(point, seed, tname, dep_file))
    if args.dry_run:
        return 0
    _write_summary(args.out, rows, study)
    return 0


def estimate(study: dict[str, Any], pts: list[dict[str, Any]], data_dir: str | None) -> int:
    """Measure per-step and per-chip times and print the study's cost (hours, 1 process)."""
    import math

    from xbarsim import runner
    from xbarsim.nn.losses import LOSSES
    from xbarsim.nn.optim import SGD
    from xbarsim.train import evaluate

    data = None
    step_cache: dict[str, float] = {}
    chip_cache: dict[str, float] = {}
    total = 0.0
    lines = []
    n_seeds = len(study["seeds"])
    for point in pts:
        if point.get("alias"):
            continue
        point_cost = 0.0
        for tname, spec in study["trainings"].items():
            if spec.get("hardware_independent") and point["name"] != "base":
                n_train_runs = 0
            else:
                n_train_runs = n_seeds
            cfg = run_config(point, spec, 0, Path("unused.h5"), None)
            if data is None:
                data = runner.load_data(cfg, data_dir)
                x, y = data.x_train[:cfg.train.batch_size], data.y_train[:cfg.train.batch_size]
            # the cost depends on the model, the array size and the training mode, not on
            # resistance values (the direct solver's work is the same)
            c = config_to_dict(cfg)
            key = yaml.safe_dump([c["model"], c["hardware"]["crossbar"]["n_rows"],
                                  c["hardware"]["crossbar"]["n_cols"], c["train"]["mode"],
                                  c["train"]["aware"]["gradient"], c["train"]["batch_size"]])
            if key not in step_cache:
                model, _ = runner.build_model(cfg, data.x_train.shape[1:], data.n_classes)
                loss = LOSSES[cfg.train.loss]()
                opt = SGD(model.parameters(), cfg.train.lr, momentum=cfg.train.momentum)
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    loss.forward(model.forward(x, training=True), y)
                    model.backward(loss.backward(), input_grad=False)
                    opt.step()
                    times.append(time.perf_counter() - t0)
                step_cache[key] = min(times[1:])
            n_train = cfg.data.n_train or data.x_train.shape[0]
            steps = cfg.train.epochs * math.ceil(n_train / cfg.train.batch_size)
            train_s = n_train_runs * steps * step_cache[key]
            hw_key = yaml.safe_dump([c["model"], c["hardware"]["crossbar"]["n_rows"],
                                     c["hardware"]["crossbar"]["n_cols"]])
            if hw_key not in chip_cache:
                chip_cfg = load_config(point["raw"])
                model, _ = runner.build_model(chip_cfg, data.x_train.shape[1:], data.n_classes,
                                              hardware=True)
                t0 = time.perf_counter()
                evaluate(model, data.x_test, data.y_test, batch_size=1000)
                chip_cache[hw_key] = time.perf_counter() - t0
            deploy_s = n_seeds * int(study["chips"]) * chip_cache[hw_key]
            point_cost += train_s + deploy_s
            lines.append(f"{point['name']:>24} {tname:>12}: step {step_cache[key]:8.3f} s x "
                         f"{steps} x {n_train_runs} runs = {train_s / 3600:7.2f} h; deploy "
                         f"{chip_cache[hw_key]:6.1f} s x {n_seeds * int(study['chips'])} chips "
                         f"= {deploy_s / 3600:6.2f} h")
            print(lines[-1], flush=True)
        total += point_cost
    print(f"total: {total / 3600:.1f} h in one process on this machine (training steps and "
          f"test passes only)")
    return 0


def _row(point: dict[str, Any], seed: int, training: str, dep_file: Path) -> dict[str, Any]:
    from xbarsim.io import hdf5

    d = hdf5.read_deployment(dep_file)
    a = d["attrs"]
    return {"point": point["name"], "axis": point["axis"], "value": point["value"],
            "seed": seed, "training": training, "ideal_acc": a["ideal_acc"],
            "mean_acc": a["mean_acc"], "std_acc": a["std_acc"], "worst_acc": a["worst_acc"],
            "best_acc": a["best_acc"], "n_chips": a["n_chips"]}


def _write_summary(out: Path, rows: list[dict[str, Any]], study: dict[str, Any]) -> None:
    with (out / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    trainings = list(study["trainings"])
    # per (axis, value): mean over seeds of the chip means (and the software ideal)
    table: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in rows:
        cell = table.setdefault((r["axis"], r["value"]), {})
        cell.setdefault(r["training"], []).append(r["mean_acc"])
        if r["training"] == "software":
            cell.setdefault("ideal", []).append(r["ideal_acc"])
        cell.setdefault(r["training"] + "/worst", []).append(r["worst_acc"])
    head = ("| axis | value | ideal (software, digital) | "
            + " | ".join(f"{t} on chips" for t in trainings) + " |")
    lines = [f"# {study['name']}: mean test accuracy over {len(study['seeds'])} seed(s) of the "
             f"mean over {study['chips']} chips (worst chip in brackets)", "", head,
             "|" + "---|" * (3 + len(trainings))]
    for (axis, value), cell in table.items():
        ideal = 100 * np.mean(cell.get("ideal", [np.nan]))
        parts = [f"{100 * np.mean(cell[t]):.2f} ({100 * np.mean(cell[t + '/worst']):.2f})"
                 if t in cell else "" for t in trainings]
        lines.append(f"| {axis} | {value} | {ideal:.2f} | " + " | ".join(parts) + " |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    from matplotlib.figure import Figure

    for axis in dict.fromkeys(r["axis"] for r in rows if r["axis"] != "base"):
        values = list(dict.fromkeys(r["value"] for r in rows if r["axis"] == axis))
        fig = Figure(figsize=(6.5, 4.0), layout="constrained")
        ax = fig.add_subplot()
        for t in trainings:
            ys = [100 * np.mean(table[(axis, v)][t]) for v in values]
            ax.plot(range(len(values)), ys, marker="o", label=t)
        ideal = [100 * np.mean(table[(axis, v)].get("ideal", [np.nan])) for v in values]
        ax.plot(range(len(values)), ideal, "k:", label="ideal (software, digital)")
        ax.set_xticks(range(len(values)), values)
        ax.set_xlabel(axis)
        ax.set_ylabel("test accuracy on chips [%]")
        ax.set_title(f"{study['name']}: {axis}")
        ax.legend(fontsize="small")
        fig.savefig(out / f"{axis}.png", dpi=110)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
