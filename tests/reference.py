"""Slow, obviously-correct oracles for the circuit core (dense NumPy; for tests only).

Two independent formulations of the same crossbar (docs/circuit.md, 'The circuit'):

* :func:`dense_nodal` writes Kirchhoff's current law for *every* node of the circuit (the
  ``2 * n_rows * n_cols`` row/column nodes, one source node per row and one ground node per
  column), merges the nodes joined by a zero resistance (union-find, exact: a 0 Ω branch is a
  short), fixes the nodes merged with a source or a ground (Dirichlet elimination) and solves
  the rest with ``numpy.linalg.solve``.
* :func:`path_g_eff` solves the device-voltage formulation (docs/circuit.md, 'The
  device-voltage formulation'): ``(I + Z D) x = E v`` with the path-resistance kernels
  ``P_row`` / ``P_col``. Zero resistances simply give zero entries of ``Z``, so no special
  case is needed.

Nothing here is fast or clever on purpose.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def _lines(value: ArrayLike, n: int) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    return np.full(n, float(arr)) if arr.ndim == 0 else arr.copy()


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def dense_nodal(g: ArrayLike, v: ArrayLike, *, r_source: ArrayLike = 0.0,
                r_sense: ArrayLike = 0.0, r_row: float = 0.0, r_col: float = 0.0
                ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Dense nodal solve of one crossbar.

    Parameters
    ----------
    g : (n_rows, n_cols) conductances [S].
    v : (n_rows,) or (batch, n_rows) source voltages [V].
    r_source : scalar or (n_rows,) [Ohm]; r_sense : scalar or (n_cols,) [Ohm].
    r_row, r_col : wire resistance per cell segment [Ohm].

    Returns
    -------
    i_out : (batch, n_cols) currents into the column grounds [A].
    u, w : (batch, n_rows, n_cols) row-node and column-node voltages [V].
    (The batch axis is dropped for 1-D ``v``.)
    """
    g = np.asarray(g, dtype=np.float64)
    v2 = np.atleast_2d(np.asarray(v, dtype=np.float64))
    batch = v2.shape[0]
    m, n = g.shape
    rs, rk = _lines(r_source, m), _lines(r_sense, n)

    # node numbering: U[i, j], W[i, j], source S_i, ground K_j
    def node_u(i: int, j: int) -> int:
        return i * n + j

    def node_w(i: int, j: int) -> int:
        return m * n + i * n + j

    def node_s(i: int) -> int:
        return 2 * m * n + i

    def node_k(j: int) -> int:
        return 2 * m * n + m + j

    n_nodes = 2 * m * n + m + n
    resistors: list[tuple[int, int, float]] = []     # (a, b, resistance [Ohm])
    devices: list[tuple[int, int, float]] = []       # (a, b, conductance [S])
    for i in range(m):
        resistors.append((node_s(i), node_u(i, 0), rs[i]))
        for j in range(n - 1):
            resistors.append((node_u(i, j), node_u(i, j + 1), float(r_row)))
    for j in range(n):
        for i in range(m - 1):
            resistors.append((node_w(i, j), node_w(i + 1, j), float(r_col)))
        resistors.append((node_w(m - 1, j), node_k(j), rk[j]))
    for i in range(m):
        for j in range(n):
            devices.append((node_u(i, j), node_w(i, j), g[i, j]))

    # 1. merge the nodes joined by 0 Ohm (exact short circuits)
    uf = _UnionFind(n_nodes)
    for a, b, r in resistors:
        if r == 0.0:
            uf.union(a, b)
    # 2. conductance branches between merged classes (a branch inside one class carries none)
    branches = [(uf.find(a), uf.find(b), 1.0 / r) for a, b, r in resistors if r != 0.0]
    branches += [(uf.find(a), uf.find(b), gg) for a, b, gg in devices]
    branches = [(a, b, cond) for a, b, cond in branches if a != b]
    # 3. fixed classes: a source (v_i) or a ground (0 V); never both (no 0-Ohm path exists)
    fixed: dict[int, FloatArray] = {}
    for i in range(m):
        fixed[uf.find(node_s(i))] = v2[:, i]
    for j in range(n):
        c = uf.find(node_k(j))
        assert c not in fixed, "a source is shorted to a ground"
        fixed[c] = np.zeros(batch)
    classes = sorted({uf.find(a) for a in range(n_nodes)})
    free = [c for c in classes if c not in fixed]
    index = {c: k for k, c in enumerate(free)}
    # 4. KCL at every free class: sum over branches of G (x_p - x_q) = 0, fixed x_q to the RHS
    y = np.zeros((len(free), len(free)))
    rhs = np.zeros((len(free), batch))
    for a, b, cond in branches:
        for p, q in ((a, b), (b, a)):
            if p in index:
                y[index[p], index[p]] += cond
                if q in index:
                    y[index[p], index[q]] -= cond
                else:
                    rhs[index[p]] += cond * fixed[q]
    x = np.linalg.solve(y, rhs) if free else np.zeros((0, batch))

    def volt(node: int) -> FloatArray:
        c = uf.find(node)
        return fixed[c] if c in fixed else x[index[c]]

    # 5. current into ground K_j = sum of the currents of all branches entering the class of
    #    K_j (at 0 V; that class holds only nodes of column j)
    i_out = np.zeros((batch, n))
    for j in range(n):
        kc = uf.find(node_k(j))
        for a, b, cond in branches:
            if b == kc:
                i_out[:, j] += cond * volt(a)
            elif a == kc:
                i_out[:, j] += cond * volt(b)
    u = np.stack([volt(node_u(i, j)) for i in range(m) for j in range(n)], axis=1)
    w = np.stack([volt(node_w(i, j)) for i in range(m) for j in range(n)], axis=1)
    u, w = u.reshape(batch, m, n), w.reshape(batch, m, n)
    if np.ndim(v) == 1:
        return i_out[0], u[0], w[0]
    return i_out, u, w


def dense_currents(g: ArrayLike, v: ArrayLike, **parasitics: ArrayLike) -> FloatArray:
    """:func:`dense_nodal` sense currents [A], shape (n_cols,) or (batch, n_cols)."""
    return dense_nodal(g, v, **parasitics)[0]


def dense_g_eff(g: ArrayLike, **parasitics: ArrayLike) -> FloatArray:
    """Effective conductance [S], (n_rows, n_cols), from unit drives: row i = currents for e_i."""
    g = np.asarray(g, dtype=np.float64)
    return dense_currents(g, np.eye(g.shape[0]), **parasitics)


def path_g_eff(g: ArrayLike, *, r_source: ArrayLike = 0.0, r_sense: ArrayLike = 0.0,
               r_row: float = 0.0, r_col: float = 0.0) -> FloatArray:
    """Effective conductance [S] from the device-voltage formulation (docs/circuit.md).

    ``Z[(i,j),(i,l)] += r_source[i] + r_row * min(j, l)`` (shared row path) and
    ``Z[(i,j),(k,j)] += r_sense[j] + r_col * (n_rows - 1 - max(i, k))`` (shared column path);
    ``(I + Z D) x = E v``; ``g_eff.T = S D (I + Z D)^-1 E``.
    """
    g = np.asarray(g, dtype=np.float64)
    m, n = g.shape
    rs, rk = _lines(r_source, m), _lines(r_sense, n)
    z = np.zeros((m * n, m * n))
    for i in range(m):
        for j in range(n):
            for ll in range(n):
                z[i * n + j, i * n + ll] += rs[i] + r_row * min(j, ll)
            for k in range(m):
                z[i * n + j, k * n + j] += rk[j] + r_col * (m - 1 - max(i, k))
    dg = np.diag(g.reshape(-1))
    e = np.kron(np.eye(m), np.ones((n, 1)))          # (mn, m): copies v_i to the cells of row i
    s = np.kron(np.ones((1, m)), np.eye(n))          # (n, mn): column sums
    x = np.linalg.solve(np.eye(m * n) + z @ dg, e)   # device voltages per unit drive
    return (s @ dg @ x).T


# ---------------------------------------------------------------- converters and tile products
# Written from the documented semantics (docs/physics.md, 'Converters' and 'From weights to
# conductances', the module docstrings of xbarsim.hardware.tile and xbarsim.hardware.converters,
# the field docstrings of the config schema), element by element and plane by plane, without
# the fused kernels or the ADC class.

def transfer(u: FloatArray, kind: str = "none", param: float = 0.0) -> FloatArray:
    """Converter transfer curve f(u) on normalised magnitudes u in [0, 1].

    'none': u; 'bow': u + a u (1 - u); 'tanh': tanh(beta u) / tanh(beta).
    """
    if kind == "none":
        return u
    if kind == "bow":
        return u + param * u * (1.0 - u)
    if kind == "tanh":
        return np.tanh(param * u) / np.tanh(param)
    raise ValueError(f"transfer: unknown kind {kind!r}")


def stream_planes(u: FloatArray, input_bits: int, dac_bits: int | None,
                  signed: str | None) -> tuple[FloatArray, FloatArray, int]:
    """Bit-planes of normalised inputs ``u`` (docs/physics.md, 'Converters'), LSB first.

    Returns ``codes`` (n_planes, *u.shape) (integer DAC codes, or the continuous values for an
    ideal DAC), ``weights`` (n_planes,) and ``code_max`` such that
    ``sum_p weights[p] * codes[p] / code_max`` is the quantised input:

    * unsigned: ``q = round(clip(u, 0, 1) (2**b - 1))`` cut into base-``2**d`` digits with
      shifts ``2**(d s)``;
    * ``two_pass``: ``q = round(clip(u, -1, 1) (2**(b-1) - 1))``; digits of the positive part,
      then of the negative part with negative shifts;
    * ``twos_complement``: ``q`` as a ``b``-bit two's complement: the low ``b - 1`` bits in
      ``d``-bit planes, then the sign bit as its own plane with shift ``-2**(b-1)``;
    * ideal DAC (``dac_bits=None``): one plane ``clip(u, 0, 1)`` (two for two_pass: the
      positive and negative parts, weights +1 and -1).
    """
    u = np.asarray(u, dtype=np.float64)
    if dac_bits is None:
        if signed is None:
            return np.clip(u, 0.0, 1.0)[None], np.array([1.0]), 1
        assert signed == "two_pass", "an ideal DAC streams signed inputs in two passes"
        c = np.clip(u, -1.0, 1.0)
        return np.stack([np.maximum(c, 0.0), np.maximum(-c, 0.0)]), np.array([1.0, -1.0]), 1
    b, d = int(input_bits), int(dac_bits)
    base = 2 ** d
    code_max = base - 1

    def digits(q: NDArray[np.int64], n_bits: int) -> list[NDArray[np.int64]]:
        return [(q // base ** s) % base for s in range(-(-n_bits // d))]

    if signed is None:
        full = 2 ** b - 1
        q = np.rint(np.clip(u, 0.0, 1.0) * full).astype(np.int64)
        planes = digits(q, b)
        shifts = [float(base ** s) for s in range(len(planes))]
    else:
        full = 2 ** (b - 1) - 1
        q = np.rint(np.clip(u, -1.0, 1.0) * full).astype(np.int64)
        if signed == "two_pass":
            pos, neg = digits(np.maximum(q, 0), b - 1), digits(np.maximum(-q, 0), b - 1)
            planes = pos + neg
            shifts = [float(base ** s) for s in range(len(pos))]
            shifts += [-s for s in shifts]
        elif signed == "twos_complement":
            r = q % 2 ** b                          # the b-bit pattern, in [0, 2**b)
            low = digits(r % 2 ** (b - 1), b - 1)
            planes = [*low, r // 2 ** (b - 1)]      # sign bit: code 0 or 1
            shifts = [float(base ** s) for s in range(len(low))] + [-float(2 ** (b - 1))]
        else:
            raise ValueError(f"signed: {signed!r}")
    weights = np.array(shifts) * code_max / full
    return np.stack(planes).astype(np.float64), weights, code_max


class RefADC:
    """One ADC with its range calibration (docs/physics.md, 'Converters'), written out plainly.

    Unipolar: ``u = clip(I / i_max, 0, 1)``; bipolar: the odd extension on ``[-1, 1]``;
    ``code = round(n f(u))``, ``I_hat = i_max code / n`` with ``n = 2**bits - 1``. While
    calibrating, every call first widens ``i_max`` to the call's statistic of the currents it
    converts (all of them: every bit-plane, sample and column of this converter): their maximum
    (unipolar: ``max(max I, 0)``; bipolar: ``max |I|``) or their ``percentile`` (of
    ``max(I, 0)`` or ``|I|``, linear interpolation); the running maximum over calls is kept and
    frozen after ``window`` calls.
    """

    def __init__(self, bits: int | None, i_max: float | None = None, *, kind: str = "none",
                 param: float = 0.0, bipolar: bool = False, calibration: str = "max",
                 percentile: float = 99.99, window: int | None = None) -> None:
        self.bits, self.i_max, self.kind, self.param = bits, i_max, kind, param
        self.bipolar, self.calibration, self.percentile = bipolar, calibration, percentile
        self.window = window
        self.calibrating = bits is not None and i_max is None
        self.n_calls = 0

    def observe(self, i: FloatArray) -> None:
        """One calibration call with the currents ``i`` [A] (any shape)."""
        mag = np.abs(i) if self.bipolar else np.maximum(i, 0.0)
        if self.calibration == "max":
            stat = float(mag.max())
        else:
            flat = np.sort(mag.reshape(-1))
            h = (flat.size - 1) * self.percentile / 100.0      # linear interpolation
            lo = int(np.floor(h))
            hi = min(lo + 1, flat.size - 1)
            stat = float(flat[lo] + (h - lo) * (flat[hi] - flat[lo]))
        self.i_max = stat if self.i_max is None else max(self.i_max, stat)
        self.n_calls += 1
        if self.window is not None and self.n_calls >= self.window:
            self.calibrating = False

    def convert(self, i: FloatArray) -> FloatArray:
        """Digital reconstruction [A] of the currents ``i`` [A]."""
        if self.bits is None:
            return np.array(i, dtype=np.float64)
        assert self.i_max is not None, "ADC without a range"
        if self.i_max <= 0.0:
            return np.zeros_like(i)
        n = 2 ** self.bits - 1
        # normalised as u = i * (1 / i_max), the package's documented ADC arithmetic: with a
        # calibrated range and few DAC levels n * u often lies on an exact rounding tie, which
        # i / i_max and i * (1 / i_max) can resolve differently
        u = i * (1.0 / self.i_max)
        sign = np.where(u < 0, -1.0, 1.0) if self.bipolar else 1.0
        mag = np.clip(np.abs(u) if self.bipolar else u, 0.0, 1.0)
        return sign * self.i_max * np.rint(n * transfer(mag, self.kind, self.param)) / n


class RefArray:
    """One physical read array of a tile: its block of the layer matrix and its ADCs.

    ``g_eff`` (rows, cols) [S] is the effective conductance of the array; ``coef`` its signed
    shift-and-add coefficient (+1/-1 per polarity, times the slice shift when bit-sliced; 2
    for the offset column mapping).
    """

    def __init__(self, rows: slice, cols: slice, coef: float, adc_fwd: RefADC,
                 adc_bwd: RefADC) -> None:
        self.rows, self.cols, self.coef = rows, cols, coef
        self.adc = {True: adc_fwd, False: adc_bwd}
        self.g_eff: FloatArray | None = None


def ref_adc(cfg, *, bipolar: bool = False) -> RefADC:
    """A :class:`RefADC` from an ``ADCConfig`` (its documented fields)."""
    param = {"bow": cfg.bow, "tanh": cfg.tanh_beta}.get(cfg.nonlinearity, 0.0)
    return RefADC(cfg.bits, None if cfg.range == "calibrated" else float(cfg.range),
                  kind=cfg.nonlinearity, param=param, bipolar=bipolar,
                  calibration=cfg.calibration, percentile=cfg.percentile,
                  window=cfg.calibration_batches)


def tile_product(x: FloatArray, arrays: list[RefArray], periphery, *, forward: bool,
                 alpha: float, shape: tuple[int, int], baseline: float = 0.0,
                 layer_adc: RefADC | None = None, calibrate: bool = True) -> FloatArray:
    """Reference ``x @ W`` (``forward``) or ``delta @ W.T`` of a tile (docs/physics.md).

    Parameters
    ----------
    x : (batch, n_in) forward or (batch, n_out) backward inputs.
    arrays : the tile's read arrays with their present ``g_eff`` and ADC states.
    periphery : the ``PeripheryConfig`` of this direction (DAC and ADC settings).
    alpha : conductance per weight unit ``(g_max - g_min) / w_scale`` [S].
    shape : ``(n_in, n_out)`` of the layer.
    baseline : conductance subtracted per cell digitally: ``g_max + g_min`` for the offset
        column mapping (its reference column, ``2 g_mid`` times the driven voltages), else 0.
    layer_adc : the ADC of the stitched layer output (``granularity='layer'``).
    calibrate : training pass (calibrating ADCs widen their ranges first).

    Per batch: ``s = max |x|``, ``u = x / s``, signed streaming when ``u`` has negative entries
    (``twos_complement`` falls back to ``two_pass`` with an ideal DAC), DAC
    ``V = v_read f(code / code_max)`` per plane. ``granularity='tile'``: for every array and
    plane ``I_p = V_p[:, src] @ g_eff`` (``g_eff.T`` backward), its own ADC, shift-and-add
    ``sum_p w_p ADC(I_p)``, times the array coefficient, partial sums added digitally;
    ``'layer'``: the plane-weighted drive ``sum_p w_p V_p`` against the stitched matrix
    ``sum coef g_eff - baseline``, one bipolar ADC. Output ``s * out / (v_read alpha)``.
    """
    n_in, n_out = shape
    dac, adc_cfg = periphery.dac, periphery.adc
    batch = x.shape[0]
    n_dst = n_out if forward else n_in
    scale = float(np.abs(x).max()) if x.size else 0.0
    if scale == 0.0:
        return np.zeros((batch, n_dst))
    u = x / scale
    signed = dac.signed if u.min() < 0 else None
    input_bits = dac.input_bits
    if input_bits is None:
        input_bits = max(dac.bits or 52, 2 if signed else 1)
    if signed == "twos_complement" and dac.bits is None:
        signed = "two_pass"
    codes, weights, code_max = stream_planes(u, input_bits, dac.bits, signed)
    volts = dac.v_read * transfer(codes / code_max, dac.nonlinearity, dac.bow)   # (P, B, n)
    out = np.zeros((batch, n_dst))
    if adc_cfg.granularity == "layer":
        g_layer = np.zeros(shape)
        for arr in arrays:
            g_layer[arr.rows, arr.cols] += arr.coef * arr.g_eff
        g_layer -= baseline
        v = np.tensordot(weights, volts, axes=1)                       # (B, n) [V]
        i = v @ g_layer if forward else v @ g_layer.T
        assert layer_adc is not None
        if calibrate and layer_adc.calibrating:
            layer_adc.observe(i)
        if layer_adc.bits is not None and layer_adc.i_max is None:
            raise RuntimeError("no range yet")
        out = layer_adc.convert(i)
    else:
        done_ref = set()
        for arr in arrays:
            src, dst = (arr.rows, arr.cols) if forward else (arr.cols, arr.rows)
            g = arr.g_eff if forward else arr.g_eff.T
            i = volts[:, :, src] @ g                                   # (P, B, n_dst) [A]
            adc = arr.adc[forward]
            if calibrate and adc.calibrating:
                adc.observe(i)
            if adc.bits is not None and adc.i_max is None:
                raise RuntimeError("no range yet")
            out[:, dst] += arr.coef * np.tensordot(weights, adc.convert(i), axes=1)
            key = (src.start, dst.start)
            if baseline and key not in done_ref:
                # reference column of the block: baseline times the driven voltages, digital
                done_ref.add(key)
                out[:, dst] -= baseline * np.tensordot(weights, volts[:, :, src].sum(axis=2),
                                                       axes=1)[:, None]
    return out * scale / (dac.v_read * alpha)


# --------------------------------------------------------------------------------------------
# extended-precision reference for the accuracy floor of the golden solver
# --------------------------------------------------------------------------------------------

def refined_nodal(g: ArrayLike, v: ArrayLike, *, r_source: ArrayLike, r_sense: ArrayLike,
                  r_row: float, r_col: float, max_steps: int = 40
                  ) -> tuple[NDArray[np.longdouble], dict[str, float]]:
    """Sense currents [A] refined to extended precision, shape (batch, n_cols), longdouble.

    Independent of :class:`xbarsim.hardware.circuit.NodalSystem` on purpose: Kirchhoff's law is
    evaluated node by node on the two voltage grids ``U`` (row nodes) and ``W`` (column nodes),
    without any matrix, in ``np.longdouble`` with every conductance (``1 / r`` too) formed in
    longdouble; the corrections are float64 solves with LAPACK's banded Cholesky factorization
    (``scipy.linalg.cholesky_banded``) of a band matrix assembled here. The voltages are kept
    in longdouble, so the refinement converges to the longdouble solution of the exact circuit
    whatever the float64 solve's own accuracy (it only has to contract the error).

    All resistances must be > 0 (the regimes of the accuracy tests). The returned dict holds
    ``steps``, ``residual`` (the final KCL residual relative to the largest conductance times
    the largest voltage: a normwise backward error, ~1e-19 at convergence) and ``step`` (the
    last correction relative to ``max |x|``).
    """
    ld = np.longdouble
    g64 = np.asarray(g, dtype=np.float64)
    m, n = g64.shape
    v2 = np.atleast_2d(np.asarray(v, dtype=np.float64))
    batch = v2.shape[0]
    rs64, rk64 = _lines(r_source, m), _lines(r_sense, n)
    if min(rs64.min(), rk64.min(), r_row, r_col) <= 0:
        raise ValueError("refined_nodal: every resistance must be > 0")
    gl = g64.astype(ld)
    a_src = ld(1) / rs64.astype(ld)                  # (m,) [S]
    a_snk = ld(1) / rk64.astype(ld)                  # (n,)
    a_row = ld(1) / ld(r_row)
    a_col = ld(1) / ld(r_col)
    vl = v2.astype(ld)                               # (batch, m)

    def kcl(uu: NDArray[np.longdouble], ww: NDArray[np.longdouble]
            ) -> tuple[NDArray[np.longdouble], NDArray[np.longdouble]]:
        """Current leaving every U and W node [A] (0 at the solution), shapes (batch, m, n)."""
        dev = gl * (uu - ww)
        r_u = dev.copy()
        r_w = -dev
        row = a_row * (uu[:, :, :-1] - uu[:, :, 1:])        # from (i, j) to (i, j + 1)
        r_u[:, :, :-1] += row
        r_u[:, :, 1:] -= row
        col = a_col * (ww[:, :-1, :] - ww[:, 1:, :])        # from (i, j) to (i + 1, j)
        r_w[:, :-1, :] += col
        r_w[:, 1:, :] -= col
        src = a_src * (uu[:, :, 0] - vl)                    # (batch, m) into the row
        r_u[:, :, 0] += src
        snk = a_snk * ww[:, -1, :]                          # (batch, n) into the ground
        r_w[:, -1, :] += snk
        return r_u, r_w

    # the same KCL equations as a sparse float64 matrix for the corrections; unknowns
    # interleaved U, W per cell, cells in row-major order
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    n_unknown = 2 * m * n
    ii, jj = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    pu, pw = 2 * (ii * n + jj), 2 * (ii * n + jj) + 1
    diag_u = gl + a_row * ((jj > 0).astype(int) + (jj < n - 1)) + np.where(
        jj == 0, a_src[:, None], ld(0))
    diag_w = gl + a_col * ((ii > 0).astype(int) + (ii < m - 1)) + np.where(
        ii == m - 1, a_snk[None, :], ld(0))
    rows = [pu.ravel(), pw.ravel(), pu.ravel(), pw.ravel(), pu[:, :-1].ravel(),
            pu[:, 1:].ravel(), pw[:-1].ravel(), pw[1:].ravel()]
    cols = [pu.ravel(), pw.ravel(), pw.ravel(), pu.ravel(), pu[:, 1:].ravel(),
            pu[:, :-1].ravel(), pw[1:].ravel(), pw[:-1].ravel()]
    off_row = np.full(m * (n - 1), -float(a_row))
    off_col = np.full((m - 1) * n, -float(a_col))
    vals = [diag_u.astype(np.float64).ravel(), diag_w.astype(np.float64).ravel(), -g64.ravel(),
            -g64.ravel(), off_row, off_row, off_col, off_col]
    mat = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(n_unknown, n_unknown))
    lu = splu(mat, permc_spec="MMD_AT_PLUS_A")      # SuperLU, partial pivoting

    uu = np.zeros((batch, m, n), dtype=ld)
    ww = np.zeros((batch, m, n), dtype=ld)
    last = np.inf
    info = {"steps": 0.0, "residual": np.inf, "step": np.inf}
    for step in range(1, max_steps + 1):
        r_u, r_w = kcl(uu, ww)
        rhs = np.empty((n_unknown, batch))
        rhs[pu.reshape(-1)] = -r_u.reshape(batch, -1).T.astype(np.float64)
        rhs[pw.reshape(-1)] = -r_w.reshape(batch, -1).T.astype(np.float64)
        d = lu.solve(rhs)
        du = d[pu.reshape(-1)].T.reshape(batch, m, n)
        dw = d[pw.reshape(-1)].T.reshape(batch, m, n)
        uu += du.astype(ld)
        ww += dw.astype(ld)
        scale = float(max(np.abs(uu).max(), np.abs(ww).max()))
        size = float(max(np.abs(du).max(), np.abs(dw).max())) / scale if scale else 0.0
        info.update(steps=float(step), step=size)
        if size < 1e-21 or (size >= last / 2 and size < 1e-17):
            break
        last = size
    else:
        raise RuntimeError(f"refined_nodal: no convergence in {max_steps} steps ({info})")
    r_u, r_w = kcl(uu, ww)
    # normwise backward error: residual over (largest conductance) x (largest voltage)
    big = max(gl.max(), a_src.max(), a_snk.max(), a_row, a_col) * max(
        np.abs(vl).max(), np.abs(uu).max(), np.abs(ww).max())
    info["residual"] = float(max(np.abs(r_u).max(), np.abs(r_w).max()) / big) if big else 0.0
    return a_snk * ww[:, -1, :], info
