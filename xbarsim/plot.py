"""Figures (optional extra ``xbarsim[plot]``, needs matplotlib).

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot), so no GUI
backend or global state is involved and the module is safe in batch jobs and tests.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["deployment_histogram", "heatmap", "require_matplotlib", "tile_figures",
           "training_curves"]

INSTALL_HINT = "install it with: pip install 'xbarsim[plot]' (or pip install matplotlib)"


def require_matplotlib() -> None:
    """Raise a clear ImportError when matplotlib is missing.

    Raises
    ------
    ImportError
        matplotlib cannot be imported; the message says how to install it.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(f"plotting needs matplotlib, which is not installed; {INSTALL_HINT}"
                          ) from None


def _draw(fig: Any, ax: Any, data: NDArray[np.float64], *, title: str, cbar_label: str,
          log: bool, cmap: str) -> None:
    """One heat map with labelled axes and a colorbar on ``ax``."""
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import MaxNLocator

    n_rows, n_cols = data.shape
    norm = None
    if log:
        positive = data[np.isfinite(data) & (data > 0)]
        if positive.size:
            data = np.where(data > 0, data, np.nan)
            lo, hi = float(positive.min()), float(positive.max())
            norm = LogNorm(vmin=lo, vmax=hi if hi > lo else lo * 10)
    image = ax.imshow(data, origin="upper", cmap=cmap, norm=norm, interpolation="nearest",
                      aspect="auto")
    ax.set_title(title)
    ax.set_xlabel("column j (bit line; sensed at the bottom)")
    ax.set_ylabel("row i (word line; driven at the left)")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=min(n_cols, 8), integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=min(n_rows, 8), integer=True))
    fig.colorbar(image, ax=ax).set_label(cbar_label)


def heatmap(data: NDArray[np.float64] | list[NDArray[np.float64]],
            path: str | os.PathLike[str], *, title: str | list[str],
            cbar_label: str | list[str], log: bool = False, cmap: str = "viridis",
            suptitle: str | None = None) -> Path:
    """Write one crossbar map (or several side by side) as a PNG heat map.

    Parameters
    ----------
    data : ndarray of shape (n_rows, n_cols), or a list of them
        Values per cell, row ``i`` drawn top to bottom, column ``j`` left to right (the
        orientation of the circuit figure in :mod:`xbarsim.hardware`: drivers on the left,
        sense amplifiers at the bottom). A list gives one panel per map.
    path : path-like
        Output PNG file.
    title : str or list of str
        Panel title(s).
    cbar_label : str or list of str
        Colorbar label(s) including the unit, e.g. ``"voltage [V]"``.
    log : bool
        Logarithmic colour scale (positive, finite values only; others are blank).
    cmap : str
        Matplotlib colour map name.
    suptitle : str, optional
        Figure title above all panels.

    Returns
    -------
    Path
        The file written.
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    maps = [np.asarray(d, dtype=np.float64) for d in (data if isinstance(data, list) else [data])]
    titles = title if isinstance(title, list) else [title]
    labels = cbar_label if isinstance(cbar_label, list) else [cbar_label]
    n_rows, n_cols = maps[0].shape
    height = max(3.2, min(8.0, 5.0 * n_rows / max(n_cols, 1) + 1.2))
    fig = Figure(figsize=(6.4 * len(maps), height), layout="constrained")
    for k, m in enumerate(maps):
        _draw(fig, fig.add_subplot(1, len(maps), k + 1), m, title=titles[k],
              cbar_label=labels[k], log=log, cmap=cmap)
    if suptitle:
        fig.suptitle(suptitle)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def _si(value: float, unit: str) -> str:
    """``value`` with an SI prefix, e.g. ``_si(1e-5, "S") == "10 uS"`` (ASCII only)."""
    for factor, prefix in ((1e-12, "p"), (1e-9, "n"), (1e-6, "u"), (1e-3, "m"), (1.0, ""),
                           (1e3, "k"), (1e6, "M")):
        if abs(value) < 1000 * factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def tile_figure_paths(out_dir: str | os.PathLike[str], aam: bool, nodal: bool = True
                      ) -> dict[str, Path]:
    """File names :func:`tile_figures` writes into ``out_dir``, keyed by map name.

    The node-voltage and IR-drop maps need the nodal solve (``nodal``); the AAM error map
    needs AAM (``aam``).
    """
    out = Path(out_dir)
    names = {}
    if nodal:
        names = {"row_nodes": "tile_row_nodes.png", "col_nodes": "tile_col_nodes.png",
                 "ir_drop": "tile_ir_drop.png"}
    if aam:
        names["aam_error"] = "tile_aam_error.png"
    return {k: out / v for k, v in names.items()}


def tile_figure_vector(study: Any) -> int:
    """Return the input vector whose node and IR-drop maps :func:`tile_figures` draws.

    It is the vector with the largest IR drop (``study.ir_drop_argmax[0]``), the one the text
    summary names (0 when there are no maps).
    """
    return 0 if study.ir_drop_argmax is None else int(study.ir_drop_argmax[0])


def tile_figures(study: Any, out_dir: str | os.PathLike[str], *, force: bool = False,
                 vector: int | None = None) -> list[Path]:
    """PNG heat maps of a tile study (:class:`xbarsim.studies.tile.TileStudy`).

    Writes, for one input vector (by default the one with the largest IR drop, which the
    text summary names; the titles say which): the row-node voltages ``u`` (beside the drop
    from the driver ``v_i - u_ij``, which shows the word-line IR drop that the input pattern
    hides in ``u`` itself), the column-node voltages ``w`` and the IR drop
    ``v_i - (u - w)_ij``; and, when AAM was run, the relative error of AAM against the exact
    ``g_eff`` per cell (as in TxSim Fig. 6), on a log scale. Without the nodal solve
    (``study.u is None``) only the AAM map is drawn.

    Parameters
    ----------
    study : TileStudy
        The study to draw.
    out_dir : path-like
        Directory, created if missing.
    force : bool
        Overwrite existing PNG files; otherwise an existing file is an error.
    vector : int, optional
        Input vector to draw instead of the one with the largest IR drop.

    Returns
    -------
    list of Path
        Files written.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    FileExistsError
        A target file exists and ``force`` is False (nothing is written then).
    IndexError
        ``vector`` is not an index of the study's input vectors.
    """
    require_matplotlib()
    cell_err = study.aam_cell_error()
    has_maps = study.u is not None
    paths = tile_figure_paths(out_dir, aam=cell_err is not None, nodal=has_maps)
    batch = int(study.v.shape[0])
    b = tile_figure_vector(study) if vector is None else int(vector)
    if not 0 <= b < batch:
        raise IndexError(f"vector: expected 0 <= vector < {batch}, got {vector}")
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise FileExistsError(f"--plot: {', '.join(existing)} exist(s); use --force to "
                              f"overwrite")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    n_rows, n_cols = study.shape
    shape = f"{n_rows}x{n_cols} tile"
    which = f"input vector {b}"
    if vector is None and study.ir_drop_argmax is not None:
        which += " (largest IR drop)"
    written = []
    if has_maps:
        written += [
            heatmap([study.u[b], study.v[b][:, None] - study.u[b]], paths["row_nodes"],
                    cmap="viridis", suptitle=f"Row (word-line) nodes, {which}, {shape}",
                    title=["row-node voltage $u_{ij}$",
                           "drop from the driver $v_i - u_{ij}$ (r_source + r_row)"],
                    cbar_label=["$u$ [V]", "$v_i - u_{ij}$ [V]"]),
            heatmap(study.w[b], paths["col_nodes"], cmap="magma",
                    title=f"Column (bit-line) node voltage $w_{{ij}}$, {which}, {shape}",
                    cbar_label="$w$ above the virtual ground [V]"),
            heatmap(study.ir_drop[b], paths["ir_drop"], cmap="inferno",
                    title=f"IR drop $v_i - (u_{{ij}} - w_{{ij}})$, {which}, {shape}",
                    cbar_label="drive voltage not across the device [V]"),
        ]
    if cell_err is not None:
        written.append(heatmap(
            cell_err, paths["aam_error"], log=True, cmap="cividis",
            title=f"AAM (K={study.aam_order}) vs exact, per cell: "
                  r"$|g_{\mathrm{eff}}^{\mathrm{AAM}} - g_{\mathrm{eff}}| / g_{\mathrm{eff}}$"
                  f"\ng {_si(float(study.g.min()), 'S')} - {_si(float(study.g.max()), 'S')}, "
                  f"{shape}, rho bound {study.rho_bound:.3g}, "
                  f"max error {float(cell_err.max()):.2g}",
            cbar_label="relative error per cell (dimensionless)"))
    return written


def training_curves(history: Any, path: str | os.PathLike[str], *,
                    title: str | None = None) -> Path:
    """Write the training curves of a run as one PNG: loss (left) and accuracies (right).

    Parameters
    ----------
    history : mapping of str to array_like
        Per-epoch metrics as in ``/history`` of a run file (:func:`xbarsim.io.hdf5.read_run`):
        ``epoch``, ``train_loss``, ``train_acc``, ``test_acc`` and optionally ``val_acc``.
    path : path-like
        Output PNG; its directory is created if missing. An existing file is replaced (the
        run driver decides whether that is allowed).
    title : str, optional
        Figure title, wrapped onto several lines when long; the run driver names the model,
        the dataset and the hardware (``"lenet5 on mnist, Cross-NI (IR drop (fcm), ...)"``,
        :func:`xbarsim.runner.hardware_label`).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    ValueError
        ``history`` has no epochs.
    """
    require_matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epoch = np.asarray(history["epoch"], dtype=np.float64)
    if epoch.size == 0:
        raise ValueError("history: no completed epoch to plot")
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epoch, np.asarray(history["train_loss"]), "o-", label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("mean training loss (dimensionless)")
    ax_loss.set_title("Loss")
    for key, label in (("train_acc", "train"), ("val_acc", "validation"), ("test_acc", "test")):
        if key in history and np.asarray(history[key]).size == epoch.size:
            ax_acc.plot(epoch, 100.0 * np.asarray(history[key], dtype=np.float64), "o-",
                        label=label)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy [%]")
    ax_acc.set_title("Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        # long titles (a Cross-NI run lists its non-idealities) wrap onto more lines
        fig.suptitle("\n".join(textwrap.wrap(title, 110)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def deployment_histogram(accuracies: NDArray[np.float64], path: str | os.PathLike[str], *,
                         ideal: float | None = None, title: str = "") -> Path:
    """Histogram of the test accuracies of one network deployed on many chips (PNG).

    Parameters
    ----------
    accuracies : ndarray of shape (n_chips,)
        Test accuracy of each chip, in [0, 1].
    path : path-like
        Output PNG file.
    ideal : float, optional
        Accuracy of the digital weights (drawn as a vertical line).
    title : str
        Figure title.
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    acc = 100.0 * np.asarray(accuracies, dtype=np.float64).reshape(-1)
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    lo, hi = float(acc.min()), float(acc.max())
    bins = max(5, min(30, acc.size)) if hi > lo else 1
    ax.hist(acc, bins=bins, range=None if hi > lo else (lo - 0.5, hi + 0.5), color="tab:blue",
            edgecolor="white", label=f"{acc.size} chips")
    ax.axvline(float(acc.mean()), color="tab:orange", linestyle="--",
               label=f"mean {acc.mean():.2f} %")
    if ideal is not None and np.isfinite(ideal):
        ax.axvline(100.0 * ideal, color="black", linestyle=":",
                   label=f"digital weights {100.0 * ideal:.2f} %")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("test accuracy [%]")
    ax.set_ylabel("chips")
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    out = Path(path)
    fig.savefig(out, dpi=120)
    return out
