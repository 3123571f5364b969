"""Make a golden suite: tile, layer and MLP-step cases computed by xbarsim's reference paths.

:func:`make_suite` turns a :class:`~xbarsim.golden.spec.SuiteSpec` into the cases of a suite
and :func:`write_suite` writes them (docs/golden.md documents the file). Tile cases come from
the golden nodal solve (:class:`xbarsim.hardware.circuit.NodalSystem`, refined to float64
round-off); layer and MLP cases from :class:`xbarsim.hardware.tile.Tile` and
:mod:`xbarsim.nn` exactly as training runs them, with every random draw they used stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xbarsim.golden import schema
from xbarsim.golden.spec import LayerSpec, MLPSpec, SuiteSpec, TileSpec
from xbarsim.rng import stream

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
Case = dict[str, Any]

__all__ = ["MadeSuite", "RecordingGenerator", "make_suite", "ngspice_cases", "write_suite"]

NGSPICE_TILES = ("txsim_4x4", "txsim_8x5", "txsim_3x11", "txsim_16x16", "harsh_8x8",
                 "harsh_5x12", "perline_6x7", "zeros_7x4")
"""The shipped ngspice-verified tiles (``xbarsim/golden/data/ngspice/<name>.npz``)."""


class RecordingGenerator(np.random.Generator):
    """A NumPy Generator that keeps a copy of every block of standard normals it draws.

    Layer cases hand it to :class:`~xbarsim.hardware.tile.Tile` as its stream, so that the
    sense-noise and write-noise draws the tile made can be stored with the case.
    """

    def __init__(self, bit_generator: np.random.BitGenerator) -> None:
        super().__init__(bit_generator)
        self.normals: list[FloatArray] = []

    def standard_normal(self, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        out = super().standard_normal(*args, **kwargs)
        self.normals.append(np.array(out, dtype=np.float64, copy=True))
        return out


# ---------------------------------------------------------------------------------------------
# tile cases


def _meta(kind: str, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Dataset attributes (units, role, scale, tolerance) from the schema."""
    meta: dict[str, dict[str, Any]] = {}
    for name in data:
        spec = schema.dataset_spec(kind, name)
        if spec is None:
            raise AssertionError(f"dataset {name!r} of a {kind} case is not in the schema")
        meta[name] = {"units": spec.units, "role": spec.role}
        if spec.role == "output":
            meta[name].update(scale=spec.scale, tolerance=schema.DEFAULT_TOLERANCE)
    return meta


def _lines(value: Any, n: int, rng: np.random.Generator) -> FloatArray:
    if isinstance(value, dict):
        return rng.uniform(*value["uniform"], size=n)
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()


def _cancelling(rng: np.random.Generator, g_line: FloatArray) -> FloatArray | None:
    """Signed drives (len(g_line),) whose ideal current through ``g_line`` is 0 (or None).

    Random values in [-1, 1]; the last line with a device then takes the value that cancels
    the others' current, and the vector is scaled to a largest magnitude of 1 V.
    """
    on = np.flatnonzero(g_line > 0)
    if g_line.size < 2 or on.size < 2:
        return None
    v = rng.uniform(-1.0, 1.0, g_line.size)
    last = on[-1]
    others = np.delete(np.arange(g_line.size), last)
    v[last] = -(v[others] @ g_line[others]) / g_line[last]
    return v / np.max(np.abs(v))


def _drives(names: Iterable[str], g_line: Callable[[], FloatArray], n: int,
            rng: np.random.Generator) -> tuple[FloatArray, list[str]]:
    rows, used = [], []
    for name in names:
        if name == "ones":
            vec: FloatArray | None = np.ones(n)
        elif name == "uniform":
            vec = rng.uniform(0.0, 1.0, n)
        elif name == "signed":
            vec = rng.uniform(-1.0, 1.0, n)
        elif name == "one_hot":
            vec = np.zeros(n)
            vec[0] = 1.0
        else:
            vec = _cancelling(rng, g_line())
        if vec is not None:
            rows.append(vec)
            used.append(name)
    return np.vstack(rows), used


def _solve_tile(g: FloatArray, v: FloatArray, d: FloatArray, par: Any,
                node_voltages: bool) -> dict[str, FloatArray]:
    """Compute one tile's reference: nodal g_eff, currents, node maps, backward currents."""
    from xbarsim.hardware.circuit import NodalSystem, backward_currents

    system = NodalSystem(g, par)
    out = {"i_sense": system.currents(v), "g_eff": system.g_eff()}
    if node_voltages:
        out["u"], out["w"] = system.node_maps(v)
    out["i_back"] = backward_currents(g, d, r_source=par.r_source, r_sense=par.r_sense,
                                      r_row=par.r_row, r_col=par.r_col)
    return out


def _tile_data(g: FloatArray, v: FloatArray, d: FloatArray, par: Any,
               node_voltages: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"g": g, "v": v, "d": d, "r_source": par.r_source,
                            "r_sense": par.r_sense, "r_row": np.float64(par.r_row),
                            "r_col": np.float64(par.r_col)}
    data.update(_solve_tile(g, v, d, par, node_voltages))
    return data


def tile_case(spec: TileSpec, seed: int) -> Case:
    """Make one tile case from its specification (draws from stream ``golden/<name>``)."""
    from xbarsim.hardware.circuit import Parasitics, check_conductance

    rng = stream(seed, f"golden/{spec.name}")
    n_rows, n_cols = spec.shape
    g = rng.uniform(spec.g[0], spec.g[1], size=spec.shape)
    if spec.open_fraction > 0:
        g[rng.random(spec.shape) < spec.open_fraction] = 0.0
    g = check_conductance(g)
    par = Parasitics.build(n_rows, n_cols, r_source=_lines(spec.r_source, n_rows, rng),
                           r_sense=_lines(spec.r_sense, n_cols, rng), r_row=spec.r_row,
                           r_col=spec.r_col)
    v, used = _drives(spec.vectors, lambda: g[:, 0], n_rows, rng)
    d, used_back = _drives(spec.back_vectors, lambda: g[0, :], n_cols, rng)
    data = _tile_data(g, v, d, par, spec.node_voltages)
    attrs = {"case_kind": "tile", "source": "xbarsim nodal solve (refined to float64 round-off)",
             "regime": spec.regime, "n_rows": n_rows, "n_cols": n_cols,
             "vectors": used, "back_vectors": used_back,
             "description": _describe_tile(spec, par)}
    return {"attrs": attrs, "data": data, "meta": _meta("tile", data)}


def _describe_tile(spec: TileSpec, par: Any) -> str:
    def r(x: FloatArray) -> str:
        return f"{x[0]:g}" if np.all(x == x[0]) else f"{x.min():.3g}..{x.max():.3g} per line"

    opened = f", {100 * spec.open_fraction:g} % open devices" if spec.open_fraction else ""
    return (f"{spec.shape[0]} x {spec.shape[1]}, g uniform {spec.g[0]:g}..{spec.g[1]:g} S"
            f"{opened}; r_source {r(par.r_source)}, r_sense {r(par.r_sense)}, "
            f"r_row {par.r_row:g}, r_col {par.r_col:g} Ohm")


def ngspice_cases(seed: int) -> dict[str, Case]:
    """Make the shipped ngspice-verified tiles into tile cases ``ngspice_<name>``.

    ``g``, ``v`` and the parasitics are those of the netlist; the outputs are xbarsim's nodal
    solve (more accurate than ngspice's 17 printed digits and its own round-off, ~1e-13) and
    ngspice's currents are stored as ``i_spice`` (role ``info``).
    """
    from xbarsim.hardware.circuit import Parasitics

    folder = resources.files("xbarsim.golden").joinpath("data", "ngspice")
    cases: dict[str, Case] = {}
    for name in NGSPICE_TILES:
        with resources.as_file(folder.joinpath(f"{name}.npz")) as path, \
                np.load(path, allow_pickle=False) as npz:
            raw = {k: npz[k] for k in npz.files}
        g = np.asarray(raw["g"], dtype=np.float64)
        par = Parasitics.build(*g.shape, r_source=raw["r_source"], r_sense=raw["r_sense"],
                               r_row=float(raw["r_row"]), r_col=float(raw["r_col"]))
        rng = stream(seed, f"golden/ngspice_{name}")
        d, used_back = _drives(("ones", "signed", "cancelling"), lambda g=g: g[0, :],
                               g.shape[1], rng)
        data = _tile_data(g, np.asarray(raw["v"], dtype=np.float64), d, par, True)
        data["i_spice"] = np.asarray(raw["i_spice"], dtype=np.float64)
        attrs = {"case_kind": "tile", "regime": name.split("_")[0],
                 "source": f"netlist {name}.cir solved by {raw['ngspice_version']} (i_spice); "
                           f"outputs from xbarsim's nodal solve",
                 "n_rows": g.shape[0], "n_cols": g.shape[1],
                 "vectors": ["ones", "uniform", "signed", "one_hot"],
                 "back_vectors": used_back,
                 "description": f"ngspice-verified tile {name} ({g.shape[0]} x {g.shape[1]})"}
        cases[f"ngspice_{name}"] = {"attrs": attrs, "data": data, "meta": _meta("tile", data)}
    return cases


# ---------------------------------------------------------------------------------------------
# layer cases


def _hardware(raw: dict[str, Any], where: str) -> Any:
    from xbarsim.config import load_config

    hw = load_config({"hardware": raw}).hardware
    if hw.solver.method not in ("fcm", "nodal", "ideal"):
        raise ValueError(f"{where}.hardware.solver.method: {hw.solver.method!r} is an "
                         f"approximation; a golden case needs an exact solver (fcm or nodal) "
                         f"or ideal")
    for direction in ("forward", "backward"):
        adc = getattr(hw, direction).adc
        if adc.sense_noise > 0 and adc.granularity != "layer":
            raise ValueError(f"{where}.hardware.{direction}.adc.sense_noise: golden cases store "
                             f"the sense noise per conversion only with granularity 'layer' "
                             f"(got {adc.granularity!r}); set sense_noise to 0 or granularity "
                             f"to layer")
    return hw


def _hardware_yaml(hw: Any) -> str:
    import yaml

    from xbarsim.config import config_to_dict

    return yaml.safe_dump(config_to_dict(hw), sort_keys=False, default_flow_style=False)


def _per_device(tile: Any, values: Callable[[Any], FloatArray | None]) -> FloatArray | None:
    """Stack one array per master device (n_blocks, n_arrays, rows, cols), NaN-padded."""
    cb = tile.hw.crossbar
    out = np.full((len(tile.blocks), tile.mapping.n_arrays, cb.n_rows, cb.n_cols), np.nan)
    found = False
    for b, blk in enumerate(tile.blocks):
        for a, xbar in enumerate(blk.masters):
            arr = values(xbar)
            if arr is not None:
                found = True
                out[b, a, :xbar.shape[0], :xbar.shape[1]] = arr
    return out if found else None


def _read_g_eff(tile: Any) -> FloatArray:
    cb = tile.hw.crossbar
    reads = [tile.read_arrays(blk) for blk in tile.blocks]
    out = np.full((len(reads), len(reads[0]), cb.n_rows, cb.n_cols), np.nan)
    for b, arrays in enumerate(reads):
        for a, xbar in enumerate(arrays):
            out[b, a, :xbar.shape[0], :xbar.shape[1]] = xbar.g_eff()
    return out


def _blocks(tile: Any) -> NDArray[np.int64]:
    return np.array([[b.block.rows.start, b.block.rows.stop, b.block.cols.start,
                      b.block.cols.stop] for b in tile.blocks], dtype=np.int64)


def _adc_ranges(tile: Any, forward: bool) -> FloatArray | None:
    hw = tile.hw.forward if forward else tile.hw.backward
    if hw.adc.bits is None:
        return None
    if hw.adc.granularity == "layer":
        adcs = [tile._adc_layer_fwd if forward else tile._adc_layer_bwd]
    else:
        adcs = [a for blk in tile.blocks for a in (blk.adc_fwd if forward else blk.adc_bwd)]
    return np.array([np.nan if a.i_max is None else a.i_max for a in adcs])


def _applied_zero(device: Any, dg: FloatArray) -> NDArray[np.bool_]:
    """Devices whose pulse-rounded applied change is 0 (not written, no noise)."""
    pulse = float(device.params[2])
    if pulse > 0:
        return np.floor(np.abs(dg) / pulse + 0.5) == 0
    return dg == 0


def _invert_write_noise(device: Any, g0: FloatArray, request: FloatArray,
                        g1: FloatArray) -> FloatArray:
    """Find standard normals that turn ``g0`` into ``g1`` under ``request`` (realised noise).

    Used when the draws themselves were not observed (the write noise is generated inside
    the update kernel): for a device inside its range the value solves
    ``g1 = (g0 + dg_nl) + sigma * xi`` to the last bit; for a device that ended at a bound, a
    value that clips it there.
    """
    from xbarsim.kernels import update as kernels

    p = device.params
    g_min, g_max, pulse = float(p[0]), float(p[1]), float(p[2])
    c_sqrt, c_lin, c2c = float(p[3]), float(p[4]), float(p[5])
    dg = request * device.step_gain if device.step_gain is not None else request
    v = (np.full(g0.shape, device.v) if device.v_device is None
         else np.asarray(device.v_device, dtype=np.float64))
    xi = np.zeros(g0.shape)
    for k in np.ndindex(g0.shape):
        applied, nl = kernels.pulsed_response_scalar(device.model_code, g0[k], dg[k], v[k],
                                                     -np.expm1(-v[k]), g_min, g_max, pulse)
        sigma = float(np.sqrt(c_sqrt * c_sqrt * abs(applied) + (c_lin * applied) ** 2
                              + (c2c * nl) ** 2))
        if applied == 0.0 or sigma == 0.0:
            continue
        base = g0[k] + nl
        target = g1[k]
        x = (target - base) / sigma

        def value(x: float, base: float = base, sigma: float = sigma) -> float:
            return min(max(base + sigma * x, g_min), g_max)

        direction = np.inf if value(x) < target else -np.inf
        for _ in range(64):
            if value(x) == target:
                break
            x = float(np.nextafter(x, direction))
        xi[k] = x
    return xi


def _capture_update(tile: Any, recorder: RecordingGenerator, dw: FloatArray,
                    apply: Callable[[FloatArray], None] | None = None) -> dict[str, Any]:
    """Run ``tile.apply_step(dw)`` (or ``apply``) and return what reproduces the update."""
    g_before = tile.conductances()
    requests = [tile.mapping.split_update_trusted(dw[blk.block.rows, blk.block.cols],
                                                  [x.g for x in blk.masters], tile.w_scale)
                for blk in tile.blocks]
    before = [[np.array(x.g) for x in blk.masters] for blk in tile.blocks]
    recorder.normals.clear()
    (apply or tile.apply_step)(dw)
    g_after = tile.conductances()
    masters = [(b, a, x) for b, blk in enumerate(tile.blocks) for a, x in enumerate(blk.masters)]
    noisy = masters[0][2].device.noisy
    xi: dict[tuple[int, int], FloatArray] = {}
    if noisy:
        drawn = recorder.normals[0].reshape(-1) if len(recorder.normals) == 1 else None
        total = sum(x.g.size for _, _, x in masters)
        offset = 0
        for b, a, x in masters:
            new = g_after[b, a, :x.shape[0], :x.shape[1]]
            candidate = None
            if drawn is not None and drawn.size == total:
                candidate = drawn[offset:offset + x.g.size].reshape(x.shape)
                offset += x.g.size
                if not np.array_equal(x.device.apply_update_trusted(
                        before[b][a], requests[b][a], candidate), new):
                    candidate = None
            if candidate is None:     # the draws were not observed: the realised noise
                candidate = _invert_write_noise(x.device, before[b][a], requests[b][a], new)
            dg = (requests[b][a] * x.device.step_gain if x.device.step_gain is not None
                  else requests[b][a])
            candidate = np.where(_applied_zero(x.device, dg), 0.0, candidate)
            again = x.device.apply_update_trusted(before[b][a], requests[b][a], candidate)
            if not np.array_equal(again, new):
                bad = np.argwhere(again != new)[0]
                raise RuntimeError(f"{tile.name}: the stored write noise does not reproduce "
                                   f"the update of block {b}, array {a} at {tuple(bad)}")
            xi[(b, a)] = candidate
    data: dict[str, Any] = {"dw": dw, "g_programmed": g_before, "g_updated": g_after}
    cb = tile.hw.crossbar
    req = np.full(g_before.shape, np.nan)
    for b, blk in enumerate(tile.blocks):
        for a, x in enumerate(blk.masters):
            req[b, a, :x.shape[0], :x.shape[1]] = requests[b][a]
    data["dg_request"] = req
    if noisy:
        xi_all = np.full(g_before.shape, np.nan)
        for (b, a), values in xi.items():
            rows, cols = values.shape
            xi_all[b, a, :rows, :cols] = values
        data["xi_write"] = xi_all
    assert req.shape[2:] == (cb.n_rows, cb.n_cols)
    return data


def _random_parameters(tile: Any) -> dict[str, FloatArray]:
    out = {}
    gain = _per_device(tile, lambda x: x.device.step_gain)
    if gain is not None:
        out["step_gain"] = gain
    pv = _per_device(tile, lambda x: x.device.pv_factor)
    if pv is not None:
        out["pv_factor"] = pv
    return out


def _sense_noise(tile: Any, recorder: RecordingGenerator, forward: bool, shape: tuple[int, int],
                 where: str) -> FloatArray | None:
    hw = tile.hw.forward if forward else tile.hw.backward
    if hw.adc.sense_noise <= 0:
        return None
    if len(recorder.normals) != 1 or recorder.normals[0].shape != shape:
        raise RuntimeError(f"{where}: expected one block of {shape} sense-noise draws, "
                           f"recorded {[n.shape for n in recorder.normals]}")
    return recorder.normals[0]


def layer_case(spec: LayerSpec, seed: int) -> Case:
    """Make one layer case: program W, forward x, backward delta, one SGD update."""
    from xbarsim.hardware.tile import Tile

    where = f"layers ({spec.name})"
    hw = _hardware(spec.hardware, where)
    rng = stream(seed, f"golden/{spec.name}")
    weights = rng.normal(0.0, 1.0 / np.sqrt(spec.n_in), (spec.n_in, spec.n_out))
    x = rng.uniform(0.0, 1.0, (spec.batch, spec.n_in))
    delta = rng.normal(0.0, 0.1, (spec.batch, spec.n_out))
    recorder = RecordingGenerator(stream(seed, f"golden/{spec.name}/tile").bit_generator)
    tile = Tile(spec.n_in, spec.n_out, hw, rng=recorder, name=spec.name, w_init=weights)
    data: dict[str, Any] = {"weights": weights, "x": x, "delta": delta,
                            "lr": np.float64(spec.lr), "blocks": _blocks(tile)}
    data.update(_random_parameters(tile))
    data["w_scale"] = np.float64(tile.w_scale)
    recorder.normals.clear()
    data["y_forward"] = tile.forward(x, calibrate=True)
    noise = _sense_noise(tile, recorder, True, (spec.batch, spec.n_out), where)
    if noise is not None:
        data["xi_sense_forward"] = noise
    recorder.normals.clear()
    data["y_backward"] = tile.backward(delta, calibrate=True)
    noise = _sense_noise(tile, recorder, False, (spec.batch, spec.n_in), where)
    if noise is not None:
        data["xi_sense_backward"] = noise
    for forward, key in ((True, "adc_range_forward"), (False, "adc_range_backward")):
        ranges = _adc_ranges(tile, forward)
        if ranges is not None:
            data[key] = ranges
    data["g_eff"] = _read_g_eff(tile)
    dw = -spec.lr * (x.T @ delta)
    data.update(_capture_update(tile, recorder, dw))
    data["weights_updated"] = tile.get_weights()
    attrs = {"case_kind": "layer", "source": "xbarsim.hardware.tile.Tile",
             "n_in": spec.n_in, "n_out": spec.n_out, "batch": spec.batch, "lr": spec.lr,
             "hardware_yaml": _hardware_yaml(hw), "mapping": hw.mapping.scheme,
             "n_arrays": tile.mapping.n_arrays,
             "description": f"{spec.n_in} x {spec.n_out} layer on {hw.crossbar.n_rows} x "
                            f"{hw.crossbar.n_cols} crossbars ({len(tile.blocks)} blocks), "
                            f"batch {spec.batch}"}
    return {"attrs": attrs, "data": data, "meta": _meta("layer", data)}


# ---------------------------------------------------------------------------------------------
# one MLP training step


def mlp_case(spec: MLPSpec, seed: int) -> Case:
    """Make one MLP case: forward, softmax cross-entropy, backward and one plain SGD step."""
    from xbarsim.hardware.tile import Tile
    from xbarsim.nn.linear import Linear
    from xbarsim.nn.losses import SoftmaxCrossEntropy
    from xbarsim.nn.models import mlp
    from xbarsim.nn.optim import SGD

    where = f"mlp ({spec.name})"
    hw = _hardware(spec.hardware, where)
    tiles: dict[str, tuple[Any, RecordingGenerator]] = {}

    def factory(name: str, n_in: int, n_out: int, w: FloatArray) -> Any:
        recorder = RecordingGenerator(
            stream(seed, f"golden/{spec.name}/tile/{name}").bit_generator)
        tile = Tile(n_in, n_out, hw, rng=recorder, name=name, w_init=w)
        tiles[name] = (tile, recorder)
        return tile

    model = mlp(spec.sizes, "relu", seed=int(stream(seed, f"golden/{spec.name}/init")
                                             .integers(2**31)), weight_factory=factory)
    rng = stream(seed, f"golden/{spec.name}")
    x = rng.uniform(0.0, 1.0, (spec.batch, spec.sizes[0]))
    labels = rng.integers(0, spec.sizes[-1], spec.batch).astype(np.int64)
    data: dict[str, Any] = {"x": x, "labels": labels, "lr": np.float64(spec.lr)}
    linears = [layer for layer in model.layers if isinstance(layer, Linear)]
    for layer in linears:
        tile = tiles[layer.name][0]
        data[f"{layer.name}/weights"] = tile.get_weights()
        data[f"{layer.name}/bias"] = np.array(layer.bias.value) if layer.bias else None
        data[f"{layer.name}/blocks"] = _blocks(tile)
    a = x
    for layer in model.layers:
        a = layer.forward(a, training=True)
        if isinstance(layer, Linear):
            data[f"{layer.name}/y_forward"] = a
    loss = SoftmaxCrossEntropy()
    data["logits"] = a
    data["loss"] = np.float64(loss(a, labels))
    grad = loss.backward()
    first = next(k for k, layer in enumerate(model.layers) if layer.parameters())
    for k in range(len(model.layers) - 1, first - 1, -1):
        layer = model.layers[k]
        if isinstance(layer, Linear):
            data[f"{layer.name}/grad_output"] = grad
        if k == first:
            layer.backward(grad, input_grad=False)
            break
        grad = layer.backward(grad)
        if isinstance(layer, Linear):
            data[f"{layer.name}/y_backward"] = grad
    updates: dict[str, dict[str, Any]] = {}
    for layer in linears:
        tile, recorder = tiles[layer.name]

        def apply_step(dw: FloatArray, tile: Any = tile, recorder: Any = recorder,
                       name: str = layer.name, original: Any = tile.apply_step) -> None:
            updates[name] = _capture_update(tile, recorder, np.asarray(dw, dtype=np.float64),
                                            original)

        tile.apply_step = apply_step                        # captured, then applied
    SGD(model.parameters(), spec.lr).step()
    for layer in linears:
        name = layer.name
        update = updates[name]
        data[f"{name}/g_programmed"] = update["g_programmed"]
        if "xi_write" in update:
            data[f"{name}/xi_write"] = update["xi_write"]
        data[f"{name}/g_updated"] = update["g_updated"]
        data[f"{name}/weights_updated"] = tiles[name][0].get_weights()
        if layer.bias is not None:
            data[f"{name}/bias_updated"] = np.array(layer.bias.value)
    data = {k: v for k, v in data.items() if v is not None}
    attrs = {"case_kind": "mlp_step", "source": "xbarsim.nn (mlp, SoftmaxCrossEntropy, SGD)",
             "sizes": np.array(spec.sizes, dtype=np.int64), "activation": "relu",
             "loss": "softmax cross-entropy (mean over the batch)", "batch": spec.batch,
             "lr": spec.lr, "optimizer": "plain SGD (no momentum, no weight decay)",
             "layers": [layer.name for layer in linears],
             "hardware_yaml": _hardware_yaml(hw),
             "description": f"one SGD step of an MLP {list(spec.sizes)} on "
                            f"{hw.crossbar.n_rows} x {hw.crossbar.n_cols} crossbars"}
    return {"attrs": attrs, "data": data, "meta": _meta("mlp_step", data)}


# ---------------------------------------------------------------------------------------------
# the suite


@dataclass
class MadeSuite:
    """The cases of a suite and what making them took.

    Attributes
    ----------
    cases : dict of str to dict
        Case name -> ``{"attrs", "data", "meta"}`` (:func:`xbarsim.io.hdf5.write_golden`).
    seconds : dict of str to float
        Wall time of each case [s].
    spec : SuiteSpec
        The specification.
    """

    cases: dict[str, Case]
    seconds: dict[str, float]
    spec: SuiteSpec

    @property
    def total_seconds(self) -> float:
        """Time to make every case [s]."""
        return float(sum(self.seconds.values()))


def make_suite(spec: SuiteSpec, *, progress: Callable[[str], None] | None = None) -> MadeSuite:
    """Compute every case of ``spec``.

    Parameters
    ----------
    spec : SuiteSpec
        From :func:`xbarsim.golden.spec.load_spec`.
    progress : callable, optional
        Called with the name of each case before it is made.

    Returns
    -------
    MadeSuite

    Raises
    ------
    ValueError
        A case the reference cannot make (an approximate solver, sense noise with per-array
        ADCs, conductances outside the range of the nodal solve), naming the case.
    """
    jobs: list[tuple[str, Callable[[], Case]]] = []
    if spec.ngspice:
        jobs.append(("ngspice", lambda: {}))
    jobs += [(t.name, lambda t=t: tile_case(t, spec.seed)) for t in spec.tiles]
    jobs += [(s.name, lambda s=s: layer_case(s, spec.seed)) for s in spec.layers]
    jobs += [(s.name, lambda s=s: mlp_case(s, spec.seed)) for s in spec.mlp]
    cases: dict[str, Case] = {}
    seconds: dict[str, float] = {}
    for name, job in jobs:
        if progress is not None:
            progress(name)
        t0 = time.perf_counter()
        try:
            if name == "ngspice":
                made = ngspice_cases(spec.seed)
            else:
                made = {name: job()}
        except ValueError as exc:
            raise ValueError(f"case {name}: {exc}") from None
        dt = time.perf_counter() - t0
        for case_name, case in made.items():
            cases[case_name] = case
            seconds[case_name] = dt / len(made)
        logger.info("golden case %s: %.2f s", name, dt)
    return MadeSuite(cases=cases, seconds=seconds, spec=spec)


def write_suite(made: MadeSuite, path: str | Path, *, force: bool = False) -> Path:
    """Write a made suite to ``path`` (HDF5, docs/golden.md).

    Raises
    ------
    FileExistsError, OSError
        ``path`` exists and ``force`` is False, or cannot be written.
    """
    from xbarsim.io import hdf5

    for name, case in made.cases.items():
        case["attrs"]["make_seconds"] = made.seconds.get(name)
    attrs = {"layout_version": schema.LAYOUT_VERSION, "spec_yaml": made.spec.text,
             "spec_source": made.spec.source, "seed": made.spec.seed,
             "reference": "xbarsim: nodal solve refined to float64 round-off (tiles); Tile and "
                          "nn exactly as in training (layers, MLP step)",
             "tolerance": schema.DEFAULT_TOLERANCE,
             "case_names": list(made.cases),
             "make_seconds": made.total_seconds}
    return hdf5.write_golden(path, kind=schema.SUITE_KIND, cases=made.cases, attrs=attrs,
                             force=force)
