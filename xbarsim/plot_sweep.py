"""Figures of a sweep (optional extra ``xbarsim[plot]``, needs matplotlib).

* ``metrics_vs_<key>.png`` for every swept key: final test accuracy, best test accuracy and
  final training loss against the key's values, one line per combination of the other swept
  keys; the line is the mean over seeds, the band (or error bar, for keys whose values are not
  numbers) spans the minimum to the maximum over seeds, and each seed is a dot.
* ``curves.png``: test accuracy and training loss against the epoch, one line per point (mean
  over its seeds, band from minimum to maximum).

Only runs that completed or were evaluated enter the metric figures; the curves also show the
epochs that diverged, partial and failed runs completed. Figures are drawn with
:class:`matplotlib.figure.Figure` (no pyplot), as in :mod:`xbarsim.plot`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xbarsim.plot import require_matplotlib
from xbarsim.studies.sweep import format_value, short_keys

__all__ = ["curve_figure", "metric_figures", "sweep_figures"]

METRICS = (("final_test_acc", "final test accuracy [%]", 100.0),
           ("best_test_acc", "best test accuracy [%]", 100.0),
           ("final_train_loss", "final training loss", 1.0))
"""(table column, axis label, scale) of the metric panels."""

_USED = ("completed", "evaluated")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
        and math.isfinite(float(v))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _point_name(row: Mapping[str, Any], keys: Sequence[str], short: Mapping[str, str]) -> str:
    what = ", ".join(f"{short[k]}={format_value(row[k])}" for k in keys)
    if row.get("label"):
        return f"{row['label']} ({what})" if what and len(keys) > 1 else str(row["label"])
    return what or f"point {row['point']}"


def metric_figures(rows: Sequence[Mapping[str, Any]], keys: Sequence[str],
                   out_dir: str | os.PathLike[str], *, title: str = "") -> list[Path]:
    """One figure per swept key: each metric against the key, spread over seeds.

    Parameters
    ----------
    rows : sequence of dict
        The results table (:func:`xbarsim.studies.sweep.collect_rows`).
    keys : sequence of str
        Swept keys.
    out_dir : path-like
        Folder for ``metrics_vs_<key>.png`` (created).
    title : str
        Figure title prefix.

    Returns
    -------
    list of Path
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    short = short_keys(keys)
    used = [r for r in rows if r["status"] in _USED]
    paths = []
    for key in keys:
        others = [k for k in keys if k != key]
        xs_all = list(dict.fromkeys(format_value(r[key]) for r in rows))
        numeric = all(_is_number(r[key]) for r in rows)
        xvals = sorted({float(r[key]) for r in rows}) if numeric else []
        log = numeric and min(xvals) > 0 and max(xvals) / min(xvals) >= 10
        series: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
        for r in rows:   # keep every combination, also those without finished runs
            series.setdefault(tuple(format_value(r[k]) for k in others), [])
        for r in used:
            series[tuple(format_value(r[k]) for k in others)].append(r)
        fig = Figure(figsize=(13.5, 4.2), layout="constrained")
        axes = fig.subplots(1, len(METRICS))
        for ax, (metric, label, scale) in zip(axes, METRICS, strict=True):
            for s_index, (combo, members) in enumerate(series.items()):
                color = f"C{s_index % 10}"
                name = ", ".join(f"{short[k]}={v}" for k, v in zip(others, combo, strict=True))
                by_x: dict[Any, list[float]] = {}
                for r in members:
                    v = float(r[metric])
                    if math.isfinite(v):
                        x = float(r[key]) if numeric else xs_all.index(format_value(r[key]))
                        by_x.setdefault(x, []).append(v * scale)
                if not by_x:
                    continue
                xs = sorted(by_x)
                mean = np.array([np.mean(by_x[x]) for x in xs])
                lo = np.array([min(by_x[x]) for x in xs])
                hi = np.array([max(by_x[x]) for x in xs])
                for x in xs:
                    ax.plot([x] * len(by_x[x]), by_x[x], ".", color=color, alpha=0.45, ms=4)
                if numeric:
                    ax.plot(xs, mean, "o-", color=color, label=name or None)
                    ax.fill_between(xs, lo, hi, color=color, alpha=0.18, linewidth=0)
                else:
                    # categories: no line between them (their order means nothing)
                    ax.errorbar(xs, mean, yerr=[mean - lo, hi - mean], fmt="o", color=color,
                                capsize=4, label=name or None)
            ax.set_xlabel(key)
            ax.set_ylabel(label)
            if log:
                ax.set_xscale("log")
            if numeric:
                ax.set_xticks(xvals)
                ax.set_xticklabels([format_value(v) for v in xvals], rotation=30)
                ax.minorticks_off()
            else:
                ax.set_xticks(range(len(xs_all)))
                ax.set_xticklabels(xs_all, rotation=30)
            ax.grid(alpha=0.3)
        handles, labels = axes[0].get_legend_handles_labels()
        if labels:
            fig.legend(handles, labels, loc="outside right upper", fontsize="small")
        n_used = len(used)
        fig.suptitle(f"{title + ': ' if title else ''}{key} (mean over seeds, band/bars: "
                     f"min-max, dots: seeds; {n_used} of {len(rows)} runs finished)")
        path = out / f"metrics_vs_{_safe(short[key])}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths


def curve_figure(rows: Sequence[Mapping[str, Any]], keys: Sequence[str],
                 histories: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str], *,
                 title: str = "") -> Path | None:
    """Test accuracy and training loss against the epoch, one line per point.

    Parameters
    ----------
    rows : sequence of dict
        The results table.
    keys : sequence of str
        Swept keys (they name the lines, with the point's label).
    histories : mapping of str to dict
        point_id -> history (``epoch``, ``test_acc``, ``train_loss``), e.g. from
        :func:`xbarsim.studies.report.load_histories`.
    path : path-like
        Output PNG.
    title : str
        Figure title.

    Returns
    -------
    Path or None
        None when no run has a completed epoch.
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    short = short_keys(keys)
    points: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        if r["point_id"] in histories and len(histories[r["point_id"]].get("epoch", ())):
            points.setdefault(r["config_id"], []).append(r)
    if not points:
        return None
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax_acc, ax_loss = fig.subplots(1, 2)
    cmap = None
    if len(points) > 10:
        from matplotlib import colormaps

        cmap = colormaps["viridis"]
    for i, members in enumerate(points.values()):
        color = cmap(i / max(1, len(points) - 1)) if cmap is not None else f"C{i}"
        name = _point_name(members[0], keys, short)
        for ax, metric, scale in ((ax_acc, "test_acc", 100.0), (ax_loss, "train_loss", 1.0)):
            curves = [np.asarray(histories[r["point_id"]][metric], dtype=float) * scale
                      for r in members]
            n = max(len(c) for c in curves)
            epochs = np.arange(1, n + 1)
            stack = np.full((len(curves), n), np.nan)
            for j, c in enumerate(curves):
                stack[j, :len(c)] = c
            with np.errstate(all="ignore"):
                mean = np.nanmean(stack, axis=0)
                lo, hi = np.nanmin(stack, axis=0), np.nanmax(stack, axis=0)
            ax.plot(epochs, mean, "o-", ms=3, color=color,
                    label=f"{name} ({len(curves)} seed{'s' if len(curves) > 1 else ''})")
            if len(curves) > 1:
                ax.fill_between(epochs, lo, hi, color=color, alpha=0.15, linewidth=0)
    from matplotlib.ticker import MaxNLocator

    ax_acc.set_ylabel("test accuracy [%]")
    ax_loss.set_ylabel("training loss")
    low, high = ax_loss.get_ylim()
    if low > 0 and high / low > 10:    # losses spanning decades (e.g. a diverging point)
        ax_loss.set_yscale("log")
    for ax in (ax_acc, ax_loss):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize="small" if len(points) <= 8 else "x-small")
    fig.suptitle(f"{title + ': ' if title else ''}learning curves (mean over seeds, band: "
                 "min-max)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def sweep_figures(rows: Sequence[Mapping[str, Any]], keys: Sequence[str],
                  histories: Mapping[str, Mapping[str, Any]],
                  out_dir: str | os.PathLike[str], *, title: str = "") -> list[Path]:
    """Every figure of a sweep into ``out_dir``: the metric figures and ``curves.png``."""
    require_matplotlib()
    paths = metric_figures(rows, keys, out_dir, title=title)
    curves = curve_figure(rows, keys, histories, Path(out_dir) / "curves.png", title=title)
    if curves is not None:
        paths.append(curves)
    return paths
