"""Reports of a sweep folder: the results table grouped over seeds, and the stored histories.

Everything here reads files only (``sweep.json``, the run files and their records), so a report
can be made while a sweep runs, after it was interrupted, or on another machine.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xbarsim.studies.sweep import (
    FINAL_STATUSES,
    collect_rows,
    format_value,
    read_manifest,
    run_file,
    short_keys,
)

__all__ = ["SweepResults", "format_groups", "format_runs", "group_over_seeds", "load_histories",
           "load_results", "render_table"]

STAT_METRICS = ("final_test_acc", "best_test_acc", "final_train_loss", "wall_time_s")
"""Metrics summarised over the seeds of a point."""


@dataclass
class SweepResults:
    """The runs of a sweep folder as stored.

    Attributes
    ----------
    out_dir : Path
    manifest : dict
        ``sweep.json``.
    keys : list of str
        Swept keys.
    rows : list of dict
        One row per run (columns of :data:`xbarsim.studies.sweep.TABLE_COLUMNS` plus the keys).
    """

    out_dir: Path
    manifest: dict[str, Any]
    keys: list[str]
    rows: list[dict[str, Any]]


def load_results(out_dir: str | os.PathLike[str]) -> SweepResults:
    """Read a sweep folder: its manifest and the current state of every run.

    Raises
    ------
    FileNotFoundError, ValueError
        Not a sweep folder, or an unreadable manifest.
    """
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    keys = list(manifest.get("keys", []))
    return SweepResults(out_dir, manifest, keys, collect_rows(out_dir, manifest["runs"], keys))


def _stats(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (ddof 1; NaN for one value), min and max."""
    vals = [v for v in values if math.isfinite(v)]
    nan = float("nan")
    if not vals:
        return {"mean": nan, "std": nan, "min": nan, "max": nan, "n": 0}
    mean = sum(vals) / len(vals)
    std = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1
           else nan)
    return {"mean": mean, "std": std, "min": min(vals), "max": max(vals), "n": len(vals)}


def group_over_seeds(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
                     ) -> list[dict[str, Any]]:
    """One entry per point: its swept values and statistics over its seeds.

    Only finished runs that completed or were evaluated enter the statistics; diverged,
    failed, partial and pending runs are counted in ``statuses``.

    Returns
    -------
    list of dict
        ``point``, ``config_id``, ``label``, the swept keys, ``n_runs``, ``n_used``,
        ``statuses`` (status -> count) and, per metric of :data:`STAT_METRICS`, a dict with
        ``mean``, ``std``, ``min``, ``max``, ``n``; in the order of the points.
    """
    groups: dict[str, dict[str, Any]] = {}
    members: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        cid = row["config_id"]
        if cid not in groups:
            groups[cid] = {"point": row["point"], "config_id": cid, "label": row["label"],
                           **{k: row.get(k) for k in keys}}
            members[cid] = []
        members[cid].append(row)
    out = []
    for cid, group in groups.items():
        runs = members[cid]
        used = [r for r in runs if r["status"] in ("completed", "evaluated")]
        statuses: dict[str, int] = {}
        for r in runs:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        group.update(n_runs=len(runs), n_used=len(used), statuses=statuses,
                     seeds=[r["seed"] for r in runs])
        for metric in STAT_METRICS:
            group[metric] = _stats([float(r[metric]) for r in used])
        out.append(group)
    return out


def _pct(v: float) -> str:
    return "-" if not math.isfinite(v) else f"{100 * v:.2f}"


def _num(v: float, fmt: str) -> str:
    return "-" if not math.isfinite(v) else format(v, fmt)


def render_table(header: list[str], body: list[list[str]], right: set[int]) -> str:
    """Align a text table: ``header``, a rule, then ``body``; columns in ``right`` flush right."""
    widths = [max(len(header[i]), *(len(r[i]) for r in body)) if body else len(header[i])
              for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


def format_groups(groups: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> str:
    """Text table of :func:`group_over_seeds`: accuracies in percent, times in seconds."""
    short = short_keys(keys)
    has_label = any(g["label"] for g in groups)
    header = ["point", *(["label"] if has_label else []), *(short[k] for k in keys), "runs",
              "test acc mean", "std", "min", "max", "best acc mean", "train loss",
              "s/run", "status"]
    body = []
    for g in groups:
        acc, best = g["final_test_acc"], g["best_test_acc"]
        status = ", ".join(f"{n} {s}" for s, n in g["statuses"].items())
        body.append([str(g["point"]), *([g["label"]] if has_label else []),
                     *(format_value(g[k]) for k in keys), f"{g['n_used']}/{g['n_runs']}",
                     _pct(acc["mean"]), _pct(acc["std"]), _pct(acc["min"]), _pct(acc["max"]),
                     _pct(best["mean"]), _num(g["final_train_loss"]["mean"], ".4f"),
                     _num(g["wall_time_s"]["mean"], ".1f"), status])
    first_num = 1 + has_label + len(keys)
    right = set(range(first_num, len(header) - 1)) | {0}
    return render_table(header, body, right)


def format_runs(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> str:
    """Text table of every run (one row per point and seed)."""
    short = short_keys(keys)
    has_label = any(r["label"] for r in rows)
    header = ["run", "point_id", *(["label"] if has_label else []), *(short[k] for k in keys),
              "seed", "status", "epochs", "test acc", "best acc", "train loss", "s", "error"]
    body = []
    for i, r in enumerate(rows, 1):
        error = str(r.get("error") or "")
        body.append([str(i), r["point_id"], *([r["label"]] if has_label else []),
                     *(format_value(r[k]) for k in keys), str(r["seed"]), r["status"],
                     _num(float(r["epochs_done"]), ".0f"), _pct(r["final_test_acc"]),
                     _pct(r["best_test_acc"]), _num(r["final_train_loss"], ".4f"),
                     _num(r["wall_time_s"], ".1f"),
                     error if len(error) <= 80 else error[:77] + "..."])
    n_lead = 2 + has_label + len(keys)
    right = {0, n_lead, *range(n_lead + 2, n_lead + 7)}
    return render_table(header, body, right)


def load_histories(out_dir: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]
                   ) -> dict[str, dict[str, Any]]:
    """Per-epoch history of every run that has a run file: point_id -> {metric: ndarray}."""
    from xbarsim.io import hdf5

    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        path = run_file(Path(out_dir), row["point_id"])
        if row["status"] in (*FINAL_STATUSES, "partial", "failed") and path.is_file():
            try:
                out[row["point_id"]] = hdf5.read_run_summary(path)["history"]
            except (OSError, ValueError):
                continue
    return out
