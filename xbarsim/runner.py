"""The run driver: ``run(cfg, out=...) -> RunResult`` (what ``xbarsim run`` calls).

It builds the data (``cfg.data``), the model (``cfg.model``; in crossbar mode every weighted
layer is a :class:`~xbarsim.hardware.tile.Tile` configured by ``cfg.hardware``), the loss,
optimizer and learning-rate schedule (``cfg.train``), trains with
:func:`xbarsim.train.fit` and writes the HDF5 run file (layout in :mod:`xbarsim.io.hdf5`).

Features
--------
* **Checkpoints.** After every epoch the complete training state (weights, tile states,
  optimizer momentum, schedule position, random-stream states, history) is written atomically
  to the checkpoint file (``output.checkpoint``, default ``<out stem>.ckpt.h5``) and the run
  file is rewritten with status ``"running"``. ``resume=True`` continues from the checkpoint
  and gives the same numbers as an uninterrupted run (bit for bit in software mode and with
  the stateless solvers; see :mod:`xbarsim.train.checkpoint`). The configuration may differ
  from the checkpoint's only in ``train.epochs``, ``train.checkpoint_every_epoch``,
  ``data.data_dir``, ``data.download`` and ``output``.
* **Divergence.** A NaN/inf loss, a loss above ``train.divergence_threshold`` or non-finite
  parameters stop training cleanly: the run file keeps the history and the weights of the last
  completed epoch, its status is ``"diverged"``, and :class:`RunResult` says in which epoch.
* **Evaluate-only.** ``train.evaluate_only`` with ``train.weights`` (a run file or a
  checkpoint) programs the saved weights onto the configured hardware with ``set_weights``
  and reports the test accuracy: this deploys, e.g., a software-trained network on non-ideal
  crossbars. Calibrating ADC ranges are first calibrated on training batches (at most
  ``hardware.forward.adc.calibration_batches`` of them), never on the test set.

Randomness comes from named streams of ``cfg.seed`` (:mod:`xbarsim.rng`): ``data/shuffle``
(batch order), ``data/split`` (validation split), ``init/<layer>`` (initial weights) and
``tile/<layer>`` (device variation, write and sense noise of that layer's tile).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xbarsim.config import RunConfig, config_to_dict, dump_config
from xbarsim.errors import ConfigError

__all__ = ["RunResult", "run", "build_model", "load_data", "checkpoint_path_for"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

# config keys that may change between an interrupted run and its resumption
_RESUMABLE_CHANGES = ("train.epochs", "train.checkpoint_every_epoch", "data.data_dir",
                      "data.download", "output.")


@dataclass
class RunResult:
    """Outcome of :func:`run`.

    Attributes
    ----------
    status : {"completed", "diverged", "evaluated"}
        How the run ended.
    out : Path
        The run file written.
    history : dict of str to ndarray
        Per-epoch metrics (``epoch``, ``train_loss``, ``train_acc``, ``test_acc``, ``lr``,
        ``seconds`` [s], and ``val_acc`` with a validation split); empty for evaluate-only.
    test_acc : float
        Test accuracy of the weights stored in ``out`` (last completed epoch), NaN if none.
    epochs_done : int
        Completed epochs (including those before a resume).
    diverged_epoch : int or None
        1-based epoch in which training diverged.
    message : str
        Why the run stopped early ("" when it completed).
    checkpoint : Path or None
        Checkpoint file (None for evaluate-only runs).
    plots : list of Path
        Figures written (``plot_dir``).
    """

    status: str
    out: Path
    history: dict[str, FloatArray] = field(default_factory=dict)
    test_acc: float = float("nan")
    epochs_done: int = 0
    diverged_epoch: int | None = None
    message: str = ""
    checkpoint: Path | None = None
    plots: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# data


@dataclass
class _Data:
    x_train: FloatArray
    y_train: NDArray[np.int64]
    x_test: FloatArray
    y_test: NDArray[np.int64]
    x_val: FloatArray | None
    y_val: NDArray[np.int64] | None
    normalization: dict[str, FloatArray]
    n_classes: int
    source: dict[str, Any] = field(default_factory=dict)  # run-file attrs: folder, md5s


def _data_folder(cfg_dir: str | None, cli_dir: str | Path | None) -> tuple[str | Path | None, str]:
    """Return the data folder asked for and its name: ``--data-dir`` wins over ``data.data_dir``.

    No fall-back from one to the other: the folder named here must hold the data (otherwise
    the loader's error names it); ``(None, "")`` when neither is given ($XBARSIM_DATA, then
    the cache apply).
    """
    if cli_dir is not None and str(cli_dir) != "":
        if cfg_dir and Path(cfg_dir) != Path(cli_dir):
            logger.info("--data-dir %s replaces data.data_dir %s", cli_dir, cfg_dir)
        return cli_dir, "--data-dir"
    if cfg_dir:
        return cfg_dir, "data.data_dir"
    return None, ""


def load_data(cfg: RunConfig, data_dir: str | Path | None = None,
              normalization: dict[str, FloatArray] | None = None) -> _Data:
    """Load, limit, split and standardise the dataset of ``cfg.data``.

    Parameters
    ----------
    cfg : RunConfig
        Uses ``cfg.data`` and ``cfg.seed``.
    data_dir : path-like, optional
        The CLI's ``--data-dir``; replaces ``data.data_dir``. The folder given must hold the
        data (no fall-back to ``$XBARSIM_DATA``, the cache or a download).
    normalization : dict, optional
        ``{"mean", "std"}`` to use instead of the training-set statistics (deploying saved
        weights must standardise inputs exactly as in their training run).

    Returns
    -------
    _Data
        Arrays in NCHW (or (n, features)) float64, labels int64, and the provenance
        attributes of the files read (folder, names, md5s).

    Warns
    -----
    UserWarning
        ``train.batch_size`` is larger than the training set (every epoch is one partial
        batch).
    """
    from xbarsim import data
    from xbarsim.rng import stream

    d = cfg.data
    source: dict[str, Any] = {}
    folder, origin = _data_folder(d.data_dir, data_dir)
    try:
        if d.dataset == "mnist":
            x_tr, y_tr, x_te, y_te, src = data.load_mnist(
                folder, n_train=d.n_train, n_test=d.n_test, download=d.download,
                data_dir_name=origin or "data_dir", return_source=True)
            source = src.attrs()
            n_classes = 10
        elif d.dataset == "cifar10":
            import os

            if folder is None and os.environ.get("XBARSIM_DATA"):
                folder, origin = os.environ["XBARSIM_DATA"], "$XBARSIM_DATA"
            if folder is None:
                raise ConfigError(["data.data_dir: CIFAR-10 is not downloaded automatically; "
                                   "set data.data_dir (or --data-dir / $XBARSIM_DATA) to the "
                                   "folder of the binary batches"])
            try:
                x_tr, y_tr, x_te, y_te, src = data.load_cifar10(
                    folder, n_train=d.n_train, n_test=d.n_test, return_source=True)
            except data.DataNotFoundError as exc:
                raise data.DataNotFoundError(f"{origin}: {exc}") from None
            source = src.attrs()
            n_classes = 10
        else:
            assert d.n_train is not None and d.n_test is not None  # checked by DataConfig
            x_tr, y_tr, x_te, y_te = data.synthetic(d.n_train, d.n_test, shape=d.synthetic_shape,
                                                    n_classes=d.synthetic_classes, seed=cfg.seed)
            n_classes = d.synthetic_classes
    except ValueError as exc:  # data.n_train / data.n_test larger than the data set: dotted
        if isinstance(exc, data.DataError) or not str(exc).startswith(("n_train:", "n_test:")):
            raise
        raise ValueError(f"data.{exc}") from None
    x_val = y_val = None
    if d.validation_fraction > 0:
        n_val = int(round(d.validation_fraction * x_tr.shape[0]))
        if n_val < 1 or n_val >= x_tr.shape[0]:
            raise ConfigError([f"data.validation_fraction: {d.validation_fraction} of "
                               f"{x_tr.shape[0]} training samples leaves no validation or no "
                               f"training sample; change it or data.n_train"])
        order = stream(cfg.seed, "data/split").permutation(x_tr.shape[0])
        val, keep = np.sort(order[:n_val]), np.sort(order[n_val:])
        x_val, y_val = x_tr[val], y_tr[val]
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    norm: dict[str, FloatArray] = {}
    if d.normalize:
        if normalization:
            mean = np.asarray(normalization["mean"], dtype=np.float64)
            std = np.asarray(normalization["std"], dtype=np.float64)
        else:
            axes = (0, 2, 3) if x_tr.ndim == 4 else (0,)
            mean, std = x_tr.mean(axis=axes), x_tr.std(axis=axes)
            std = np.where(std > 0, std, 1.0)
        norm = {"mean": mean, "std": std}
        shape = (1, -1, 1, 1) if x_tr.ndim == 4 else (1, -1)

        def standardise(x: FloatArray) -> FloatArray:
            return np.ascontiguousarray((x - mean.reshape(shape)) / std.reshape(shape))

        x_tr, x_te = standardise(x_tr), standardise(x_te)
        if x_val is not None:
            x_val = standardise(x_val)
    n_fit = x_tr.shape[0]
    if not cfg.train.evaluate_only and cfg.train.batch_size > n_fit:
        import warnings

        after = " left after the validation split" if x_val is not None else ""
        warnings.warn(f"train.batch_size = {cfg.train.batch_size} is larger than the {n_fit} "
                      f"training samples{after}: every epoch is one step on a single partial "
                      f"batch of {n_fit}; lower train.batch_size (or raise data.n_train)",
                      stacklevel=2)
    return _Data(x_tr, y_tr, x_te, y_te, x_val, y_val, norm, n_classes, source)


# ---------------------------------------------------------------------------------------------
# model


def _unsupported(cfg: RunConfig) -> list[str]:
    m = cfg.model
    problems = []
    if m.dropout != 0.0:
        problems.append(f"model.dropout: {m.dropout} is not supported by the model builders "
                        "yet; set it to 0.0")
    if not m.bias:
        problems.append("model.bias: false is not supported by the model builders yet; set it "
                        "to true")
    if m.batch_norm and m.name in ("mlp", "lenet5"):
        problems.append(f"model.batch_norm: not available for model {m.name!r} (only "
                        "vgg_small; resnet20 always has it); set it to false")
    if m.activation != "relu" and m.name != "mlp":
        problems.append(f"model.activation: {m.activation!r} is only configurable for 'mlp'; "
                        f"{m.name!r} uses relu")
    return problems


def build_model(cfg: RunConfig, input_shape: tuple[int, ...], n_classes: int, *,
                hardware: bool | None = None) -> tuple[Any, dict[str, Any]]:
    """Build the network of ``cfg.model`` for inputs of ``input_shape``.

    Parameters
    ----------
    cfg : RunConfig
        Model, seed, and (crossbar mode) hardware settings.
    input_shape : tuple of int
        Shape of one sample: (channels, height, width) or (features,).
    n_classes : int
        Output width.
    hardware : bool, optional
        Put weights on crossbar tiles; default ``cfg.train.mode == "crossbar"``.

    Returns
    -------
    model : Sequential
    rngs : dict of str to numpy.random.Generator
        The tiles' noise streams ``tile/<layer>`` (empty in software mode), for checkpoints.

    Raises
    ------
    ConfigError
        A model option the builders do not implement, or an input shape the model cannot take.
    """
    from xbarsim.nn import models
    from xbarsim.rng import stream

    problems = _unsupported(cfg)
    m = cfg.model
    if m.name in ("lenet5", "vgg_small", "resnet20") and len(input_shape) != 3:
        problems.append(f"model.name: {m.name!r} needs image inputs (channels, height, width), "
                        f"but the data have shape {input_shape}; use 'mlp' or image data")
    if m.name == "lenet5" and len(input_shape) == 3 and input_shape[1:] != (28, 28):
        problems.append(f"model.name: 'lenet5' is built for 28x28 images, the data are "
                        f"{input_shape[1]}x{input_shape[2]}; use vgg_small or resnet20")
    if problems:
        raise ConfigError(problems)
    use_hw = cfg.train.mode == "crossbar" if hardware is None else hardware
    rngs: dict[str, np.random.Generator] = {}
    factory = None
    if use_hw:
        from xbarsim.hardware.tile import Tile

        def factory(name: str, n_in: int, n_out: int, w_init: FloatArray) -> Tile:
            rng = rngs[f"tile/{name}"] = stream(cfg.seed, f"tile/{name}")
            return Tile(n_in, n_out, cfg.hardware, rng=rng, name=name, w_init=w_init)

    common = {"seed": cfg.seed, "weight_factory": factory, "init": m.init}
    if m.name == "mlp":
        sizes = [int(np.prod(input_shape)), *m.hidden, n_classes]
        model = models.mlp(sizes, m.activation, **common)
    elif m.name == "lenet5":
        model = models.lenet5(in_channels=input_shape[0], n_classes=n_classes, **common)
    elif m.name == "vgg_small":
        model = models.vgg_small(in_channels=input_shape[0], n_classes=n_classes,
                                 input_size=input_shape[1], batchnorm=m.batch_norm, **common)
    else:
        model = models.resnet20(in_channels=input_shape[0], n_classes=n_classes, **common)
    return model, rngs


# ---------------------------------------------------------------------------------------------
# run files


def checkpoint_path_for(cfg: RunConfig, out: Path) -> Path:
    """Checkpoint file of a run writing ``out``: ``output.checkpoint`` or ``<out stem>.ckpt.h5``."""
    if cfg.output.checkpoint is not None:
        return Path(cfg.output.checkpoint)
    return out.with_name(out.stem + ".ckpt.h5")


def _layer_records(snapshot: dict[str, Any]) -> dict[str, dict[str, tuple[Any, str]]]:
    """``/layers`` datasets from a checkpoint snapshot (weights of the last good epoch)."""
    layers: dict[str, dict[str, tuple[Any, str]]] = {}
    for key, value in snapshot["model"].items():
        lname, _, param = key.rpartition(".")
        if not lname:
            lname, param = param, "value"
        ds = "weights" if param == "weight" else param
        layers.setdefault(lname, {})[ds] = (value, "1")
    for lname, tstate in snapshot.get("tiles", {}).items():
        rec = layers.setdefault(lname, {})
        rec["g"] = (tstate["g"], "S")
        rec["w_scale"] = (tstate["w_scale"], "1")
    return layers


def _config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_diff(a, b, path + ".")
        elif a != b and not any(path == k or (k.endswith(".") and path.startswith(k))
                                for k in _RESUMABLE_CHANGES):
            out.append(f"{path} ({a!r} in the checkpoint, {b!r} now)")
    return out


class _Writer:
    """Writes the run file and the checkpoint of one run."""

    def __init__(self, cfg: RunConfig, out: Path, ckpt: Path | None,
                 normalization: dict[str, FloatArray], weights_source: str | None) -> None:
        self.cfg, self.out, self.ckpt = cfg, out, ckpt
        self.normalization = normalization
        self.attrs: dict[str, Any] = {
            "config_yaml": dump_config(cfg), "seed": cfg.seed, "mode": cfg.train.mode,
            "model": cfg.model.name, "weights_source": weights_source,
        }

    def checkpoint(self, snapshot: dict[str, Any]) -> None:
        from xbarsim.io import hdf5

        if self.ckpt is None:
            return
        tree = {k: v for k, v in snapshot.items() if k != "attrs"}
        if self.normalization:
            tree["normalization"] = self.normalization
        hdf5.write_checkpoint(self.ckpt, tree, attrs={**self.attrs, **snapshot["attrs"]})

    def run_file(self, snapshot: dict[str, Any], *, status: str, test_acc: float,
                 message: str = "", diverged_epoch: int | None = None) -> None:
        from xbarsim.io import hdf5

        hist = snapshot["history"]
        attrs = {**self.attrs, "status": status, "epochs_done": int(len(hist.get("epoch", []))),
                 "test_acc": float(test_acc), "message": message,
                 "diverged_epoch": diverged_epoch}
        hdf5.write_run(self.out, attrs=attrs, history=hist, layers=_layer_records(snapshot),
                       solver=snapshot.get("solver") or None,
                       normalization=self.normalization or None, force=True)


def _check_outputs(out: Path, ckpt: Path | None, *, force: bool, resume: bool) -> None:
    """Refuse, before any work, to overwrite files of another run."""
    for path, what in ((out, "output file"), (ckpt, "checkpoint")):
        if path is None:
            continue
        if path.is_dir():
            raise IsADirectoryError(f"{path}: is a directory, expected a file name for the "
                                    f"{what}")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"{path}: directory {path.parent} does not exist")
        if path.exists() and not (force or resume):
            hint = ("continue it with --resume, or use --force to start over" if path == ckpt
                    else "use --force to overwrite it or --resume to continue that run")
            raise FileExistsError(f"{path}: {what} exists; {hint}")


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int, desc: str) -> Iterator[Callable[[], None] | None]:
    """Yield the update function of a tqdm bar on stderr (None when off or without tqdm)."""
    bar = None
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            bar = None
        else:
            bar = tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)
    try:
        yield (bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()


# ---------------------------------------------------------------------------------------------
# the driver


def run(cfg: RunConfig, *, out: Path | str, resume: bool = False, force: bool = False,
        plot_dir: Path | str | None = None, progress: bool = False,
        data_dir: Path | str | None = None) -> RunResult:
    """Train (or evaluate) the network described by ``cfg`` and write the HDF5 run file.

    Parameters
    ----------
    cfg : RunConfig
        The resolved configuration (:func:`xbarsim.config.load_config`).
    out : path-like
        Run file (layout in :mod:`xbarsim.io.hdf5`).
    resume : bool
        Continue from the checkpoint (``output.checkpoint`` or ``<out stem>.ckpt.h5``).
    force : bool
        Overwrite an existing run file and checkpoint. Without it (and without ``resume``)
        existing files are an error, raised before any work.
    plot_dir : path-like, optional
        Write the training-curve PNG ``<out stem>_training.png`` there (needs matplotlib).
    progress : bool
        Show a tqdm progress bar per epoch on stderr (silently off without tqdm).
    data_dir : path-like, optional
        Dataset folder (the CLI's ``--data-dir``); replaces ``data.data_dir``. A folder given
        here or in the config must hold the data: no fall-back to another folder.

    Returns
    -------
    RunResult

    Raises
    ------
    ConfigError
        Options the builders do not implement, impossible data splits.
    FileExistsError
        ``out`` or the checkpoint exists without ``force``/``resume``.
    FileNotFoundError
        ``resume`` without a checkpoint; missing dataset; missing ``train.weights`` file.
    ValueError
        A checkpoint or weights file that does not fit the configuration.
    """
    out = Path(out)
    plot_path = None
    if plot_dir is not None:
        from xbarsim import plot

        plot.require_matplotlib()
        plot_path = Path(plot_dir) / f"{out.stem}_training.png"
    if cfg.train.evaluate_only:
        _check_outputs(out, None, force=force, resume=False)
        return _evaluate_only(cfg, out, data_dir, plot_path)

    from xbarsim.io import hdf5
    from xbarsim.nn.losses import LOSSES
    from xbarsim.nn.optim import SGD, make_schedule
    from xbarsim.rng import stream
    from xbarsim.train import TrainingDiverged, checkpoint, evaluate, fit

    ckpt_path = checkpoint_path_for(cfg, out)
    _check_outputs(out, ckpt_path, force=force, resume=resume)
    saved: tuple[dict[str, Any], dict[str, Any]] | None = None
    if resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"{ckpt_path}: no checkpoint to resume from (it is written "
                                    f"after every epoch of a run with --out {out}); run without "
                                    "--resume to start")
        saved = hdf5.read_checkpoint(ckpt_path)
        import yaml

        diff = _config_diff(config_to_dict_from_yaml(saved[1]["config_yaml"], yaml),
                            config_to_dict(cfg))
        if diff:
            raise ValueError(f"{ckpt_path}: cannot resume, the configuration differs from the "
                             f"checkpoint's in: {'; '.join(diff)}")

    norm_saved = dict(saved[0].get("normalization", {})) if saved else None
    weights_state = None
    weights_source = None
    if cfg.train.weights is not None:
        weights_state, wnorm = _read_weights(cfg)
        weights_source = cfg.train.weights
        norm_saved = norm_saved or wnorm or None
    data = load_data(cfg, data_dir, normalization=norm_saved)
    model, tile_rngs = build_model(cfg, data.x_train.shape[1:], data.n_classes)
    if weights_state is not None and saved is None:
        _load_weights(model, weights_state, cfg.train.weights)

    t = cfg.train
    loss = LOSSES[t.loss]()
    optimizer = SGD(model.parameters(), t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    kwargs: dict[str, float] = {}
    if t.schedule == "step":
        kwargs = {"step_size": t.step_size, "gamma": t.gamma}
    elif t.schedule == "cosine":
        kwargs = {"epochs": t.epochs, "min_lr": t.lr_min, "warmup": t.warmup_epochs}
    schedule = make_schedule(t.schedule, t.lr, **kwargs)
    shuffle_rng = stream(cfg.seed, "data/shuffle")
    rngs = {"data/shuffle": shuffle_rng, **tile_rngs}

    from xbarsim.data import BatchIterator

    batches = BatchIterator(data.x_train, data.y_train, t.batch_size, rng=shuffle_rng,
                            shuffle=cfg.data.shuffle)
    extra: dict[str, list[float]] = {"val_acc": []} if data.x_val is not None else {}
    offsets: dict[str, dict[str, float]] = {}
    start_epoch = 0
    history = None
    if saved is not None:
        state = {**saved[0], "attrs": saved[1]}
        start_epoch, history, extra_saved, offsets = checkpoint.restore(
            state, model, optimizer, rngs=rngs)
        extra.update(extra_saved)
        logger.info("resuming %s after epoch %d", ckpt_path, start_epoch)

    writer = _Writer(cfg, out, ckpt_path if t.checkpoint_every_epoch else None,
                     data.normalization, weights_source)
    writer.attrs.update(data.source)  # the data folder and the md5 of every file read

    def snapshot(epoch: int, hist: Any) -> dict[str, Any]:
        return checkpoint.capture(model, optimizer, epoch=epoch, history=hist, rngs=rngs,
                                  extra_history=extra, solver_offsets=offsets,
                                  attrs={"seed": cfg.seed})

    from xbarsim.train import History

    last_good = snapshot(start_epoch, history if history is not None else History())
    test_acc = (float(history.test_acc[-1]) if history is not None and len(history)
                else float("nan"))
    bar_update: list[Callable[[], None] | None] = [None]

    def on_epoch_end(epoch: int, hist: Any) -> None:
        nonlocal last_good, test_acc
        if data.x_val is not None:
            assert data.y_val is not None
            extra["val_acc"].append(evaluate(model, data.x_val, data.y_val))
        test_acc = hist.test_acc[-1]
        last_good = snapshot(epoch, hist)
        writer.checkpoint(last_good)
        writer.run_file(last_good, status="running", test_acc=test_acc)

    def on_batch_end(epoch: int, batch: int, value: float) -> None:
        if bar_update[0] is not None:
            bar_update[0]()

    status, message, diverged_epoch = "completed", "", None
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, t.epochs):
            # one fit call per epoch, so the progress bar restarts every epoch
            with _progress_bar(progress, len(batches), f"epoch {epoch + 1}/{t.epochs}") as upd:
                bar_update[0] = upd
                history = fit(model, loss, optimizer, batches, epochs=epoch + 1,
                              schedule=schedule, eval_data=(data.x_test, data.y_test),
                              eval_batch_size=max(t.batch_size, 1000),
                              max_loss=t.divergence_threshold, start_epoch=epoch,
                              history=history, on_batch_end=on_batch_end,
                              on_epoch_end=on_epoch_end)
    except TrainingDiverged as exc:
        status, message, diverged_epoch = "diverged", str(exc), exc.epoch
        # the trainer has logged the error itself; say what is kept
        logger.info("keeping the %d completed epoch(s) in %s", int(last_good["attrs"]["epoch"]),
                    out)
    bar_update[0] = None
    writer.run_file(last_good, status=status, test_acc=test_acc, message=message,
                    diverged_epoch=diverged_epoch)
    hist_arrays = {k: np.asarray(v) for k, v in last_good["history"].items()}
    plots = []
    if plot_path is not None and hist_arrays.get("epoch", np.empty(0)).size:
        from xbarsim import plot

        plots.append(plot.training_curves(hist_arrays, plot_path,
                                          title=f"{cfg.model.name}, {cfg.train.mode} mode"))
    return RunResult(status=status, out=out, history=hist_arrays, test_acc=float(test_acc),
                     epochs_done=int(last_good["attrs"]["epoch"]),
                     diverged_epoch=diverged_epoch, message=message,
                     checkpoint=ckpt_path if t.checkpoint_every_epoch else None, plots=plots)


def config_to_dict_from_yaml(text: str, yaml: Any) -> dict[str, Any]:
    """Parse a stored ``config_yaml`` into the plain dict form of :func:`config_to_dict`."""
    value = yaml.safe_load(text)
    return value if isinstance(value, dict) else {}


def _read_weights(cfg: RunConfig) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    from xbarsim.io import hdf5

    assert cfg.train.weights is not None
    path = Path(cfg.train.weights)
    if not path.is_file():
        raise FileNotFoundError(f"train.weights: {path}: no such file; give a run file (.h5) "
                                "or checkpoint written by xbarsim run")
    try:
        return hdf5.read_weights(path)
    except ValueError as exc:
        raise ValueError(f"train.weights: {exc}") from None


def _load_weights(model: Any, state: dict[str, FloatArray], source: str | None) -> None:
    """Program saved weights onto ``model`` (hardware layers through ``set_weights``)."""
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f"train.weights: {source} does not fit the configured model "
                         f"(missing {missing}, unexpected {unexpected}); check model.name and "
                         "model.hidden")
    try:
        model.load_state_dict(state)
    except ValueError as exc:
        raise ValueError(f"train.weights: {source}: {exc}; check model.hidden") from None


def _calibrate_adcs(model: Any, cfg: RunConfig, x: FloatArray) -> int:
    """Calibrate ADC ranges on training batches; return the number of batches used.

    At most ``hardware.forward.adc.calibration_batches`` batches pass forward in evaluation
    mode inside :func:`~xbarsim.hardware.tile.calibrating_adcs`; the test set is evaluated
    afterwards, outside it, and so never changes a range.
    """
    from xbarsim.hardware.tile import calibrating_adcs
    from xbarsim.train import checkpoint

    tiles = checkpoint.hardware_layers(model)
    if not tiles or cfg.hardware.forward.adc.bits is None \
            or cfg.hardware.forward.adc.range != "calibrated":
        return 0
    bs = cfg.train.batch_size
    n = 0
    with calibrating_adcs(tiles.values()):
        for i in range(0, x.shape[0], bs):
            if n >= cfg.hardware.forward.adc.calibration_batches:
                break
            model.forward(x[i:i + bs], training=False)
            n += 1
    return n


def _evaluate_only(cfg: RunConfig, out: Path, data_dir: Path | str | None,
                   plot_path: Path | None) -> RunResult:
    from xbarsim.train import History, checkpoint, evaluate

    t0 = time.perf_counter()
    state, wnorm = _read_weights(cfg)
    data = load_data(cfg, data_dir, normalization=wnorm or None)
    model, _ = build_model(cfg, data.x_train.shape[1:], data.n_classes)
    _load_weights(model, state, cfg.train.weights)
    n_cal = _calibrate_adcs(model, cfg, data.x_train)
    acc = evaluate(model, data.x_test, data.y_test, batch_size=max(cfg.train.batch_size, 1000))
    seconds = time.perf_counter() - t0
    logger.info("evaluate-only: test acc %.4f (%d calibration batches, %.1f s)", acc, n_cal,
                seconds)
    snap = checkpoint.capture(model, None, epoch=0, history=History(), rngs={})
    writer = _Writer(cfg, out, None, data.normalization, cfg.train.weights)
    writer.attrs.update(data.source)
    writer.attrs["calibration_batches_used"] = n_cal
    writer.attrs["seconds"] = seconds
    writer.run_file(snap, status="evaluated", test_acc=acc)
    return RunResult(status="evaluated", out=out, history={}, test_acc=float(acc),
                     epochs_done=0, checkpoint=None)
