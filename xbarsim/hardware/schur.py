"""Exact ``g_eff`` by sign-preserving nested dissection onto the terminals (direct solver).

``g_eff[i, j] = -K[s_i, t_j]``, where ``K`` is the Schur complement of the crossbar's nodal
(Laplacian) matrix onto its ideal sources ``s_i`` (behind ``r_source``) and virtual grounds
``t_j`` (behind ``r_sense``). ``K`` is formed by merging boxes of cells (see
:mod:`xbarsim.kernels.schur` for the arithmetic and why it is accurate entry by entry):

1. *Cells* (:func:`~xbarsim.kernels.schur.leaf_maps`). Cell ``(i, j)`` owns its device, the row
   wire to ``(i, j + 1)`` and the column wire to ``(i + 1, j)`` (in the bottom row: the sense
   resistance to ``t_j``); the first column owns the source resistance. Its map lives on four
   slots: ``L`` = row node ``(i, j)`` (the source ``s_i`` in column 0), ``R`` = row node
   ``(i, j + 1)``, ``T`` = column node ``(i, j)`` (unconnected in row 0), ``B`` = column node
   ``(i + 1, j)`` (the ground ``t_j`` in the last row).
2. *Equal boxes* (:func:`~xbarsim.kernels.schur.merge_level`): pairs of equal boxes are merged
   side by side, then on top of each other, all boxes of a level at once, up to boxes of
   ``box x box`` cells. The grid is padded to a multiple of ``box`` with empty cells (no
   devices, no wires), whose nodes are isolated and cost nothing.
3. *Recursive bisection* of the grid of boxes (:func:`~xbarsim.kernels.schur.merge_boxes`),
   each merge eliminating the row or column nodes two boxes share with dense, blocked
   arithmetic (BLAS products, accumulated in place). Unconnected slots are dropped first.

The symbolic part (which node every slot is, the merge program, where each child's entries go
in its parent, the memory layout) depends on the shape alone and is computed once per shape
(:func:`plan`). The maps live in one flat *arena* per array; maps already merged and finished
work blocks are reused (1.3 MB for 64 x 64). A zero resistance (ideal driver, ideal virtual
ground, or a zero wire) is replaced by ``delta = 1e-16 / (n_rows * n_cols * max(g))`` Ohm,
which changes every current by less than ``delta * n_cols * max(g)`` relative (the input
conductance of a row is at most ``n_cols * max(g)``), about 1e-16 / n_rows: far below
round-off.

Cost: 33 ``n^3`` (16 x 16) to 45 ``n^3`` (256 x 256) flops for ``n x n`` (:func:`flop_count`;
40 ``n^3`` = 10.5 Mflop at 64 x 64, three quarters of it in BLAS products), no iteration,
independent of the conductance range. The result has no tolerance to set: it is exact to
round-off, entry by entry. The root's two subtrees (each from its cells up) are independent
and can run in two threads; several arrays of one shape are solved together by
:func:`g_eff_batch` (one kernel call per stage for all of them).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xbarsim.hardware.circuit import Parasitics
from xbarsim.kernels import schur as kernels

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Zero resistances are replaced by ``ZERO_OHM_SCALE / (n_rows * n_cols * max(g))`` [Ohm].
ZERO_OHM_SCALE = 1e-16

#: Pivots per panel of the blocked elimination in the box merges.
PANEL = 16

#: Boxes of the equal-box levels processed together (kept in cache).
CHUNK = 64

Node = tuple[str, int, int]   # ("U" | "W", real row, real column) or ("s", i, 0) / ("t", 0, j)


def box_size(n_rows: int, n_cols: int) -> int:
    """Edge of the equal boxes for an ``n_rows x n_cols`` array (a power of two <= 8).

    The largest of 8, 4, 2 that is at most a third of the longer side and pads the array by at
    most 30 % of its cells (padding cells cost as much as real ones in the equal-box levels),
    else 1. Measured on one thread (``python benchmarks/bench_schur_box.py``, output in
    ``data/bench/schur_box.txt``): 8 is the fastest or within 3 % of it for every shape from
    32 x 32 to 256 x 256, and up to 1.7x faster than 16 (32 x 32, 16 x 64: the equal-box
    levels vectorise across the boxes of a level and run short loops when few are left). 4 is
    the fastest at 16 x 16 and at 24 x 24, where the default 8 is 11 % slower.
    """
    for box in (8, 4, 2):
        padded = -(-n_rows // box) * box * (-(-n_cols // box) * box)
        if 3 * box <= max(n_rows, n_cols) and padded <= 1.3 * n_rows * n_cols:
            return box
    return 1


def _level_maps(h: int, w: int, horizontal: bool) -> tuple[int, int, IntArray, IntArray]:
    """Shared count, parent slot count and slot positions of one merge of two ``h x w`` boxes.

    Slots are ``[L (h), R (h), T (w), B (w)]``; the parent's order is ``[shared, L, R, T, B]``.
    """
    ar_h, ar_w = np.arange(h), np.arange(w)
    if horizontal:   # A left of B: A.R == B.L shared; parent h x 2w
        p = h
        pos_a = np.r_[p + ar_h, ar_h, p + 2 * h + ar_w, p + 2 * h + 2 * w + ar_w]
        pos_b = np.r_[ar_h, p + h + ar_h, p + 2 * h + w + ar_w, p + 2 * h + 3 * w + ar_w]
        return p, 2 * h + 4 * w, pos_a.astype(np.int64), pos_b.astype(np.int64)
    p = w            # A above B: A.B == B.T shared; parent 2h x w
    pos_a = np.r_[p + ar_h, p + 2 * h + ar_h, p + 4 * h + ar_w, ar_w]
    pos_b = np.r_[p + h + ar_h, p + 3 * h + ar_h, ar_w, p + 4 * h + w + ar_w]
    return p, 4 * h + 2 * w, pos_a.astype(np.int64), pos_b.astype(np.int64)


def _scatter_blocks(where: IntArray, p: int, q: int) -> IntArray:
    """How a child's map is added into its merge's work block, as strided rectangular blocks.

    ``where`` gives the position of each of the child's nodes in the order ``[shared (p),
    outer (q)]``. The work block is ``[t (p x n) | parent (q x q)]`` (``n = p + q``): the entry
    coupling nodes at positions ``hi > lo`` goes to ``t[lo, hi]`` when ``lo`` is shared, else
    to the parent's strict lower triangle ``(hi - p, lo - p)``. The child's nodes fall into
    runs of consecutive indices with consecutive positions, all shared or all outer; the
    entries ``(a, b)``, ``a > b``, of two runs then land on a strided block.

    Returns
    -------
    (n_blocks, 7) int64
        Per block: ``a0, a1, b0, b1`` (child rows ``a0:a1`` against columns ``b0:b1``, only
        ``b < a`` used), then ``base, stride_a, stride_b``: entry ``(a, b)`` goes to
        ``base + (a - a0) stride_a + (b - b0) stride_b`` in the work block.
    """
    n = p + q
    starts = [0]
    for k in range(1, where.size):
        if where[k] != where[k - 1] + 1 or where[k] == p:
            starts.append(k)
    bounds = list(zip(starts, starts[1:] + [where.size], strict=True))
    blocks = []
    for ui, (a0, a1) in enumerate(bounds):
        for b0, b1 in bounds[:ui + 1]:
            pa, pb = int(where[a0]), int(where[b0])
            if pa >= pb:         # hi = the row's node (a run against itself: a > b, pa > pb)
                if pb < p:
                    base, sa, sb = pb * n + pa, 1, n
                else:
                    base, sa, sb = p * n + (pa - p) * q + (pb - p), q, 1
            elif pa < p:         # hi = the column's node
                base, sa, sb = pa * n + pb, n, 1
            else:
                base, sa, sb = p * n + (pb - p) * q + (pa - p), 1, q
            blocks.append([a0, a1, b0, b1, base, sa, sb])
    return np.array(blocks, dtype=np.int64).reshape(-1, 7)


@dataclass(frozen=True)
class SchurPart:
    """One independent subtree of the nested dissection: a block of boxes and its merges.

    Attributes
    ----------
    cell_row, cell_col : (n_cells,) int64 — real cell of each slot of the part's first batch
        (out of range = padding), in the batch order of :func:`~xbarsim.kernels.schur.merge_level`.
    keep, keep_start : int64 arrays — connected slots of each of the part's boxes (see
        ``gather_boxes``), boxes in row-major order within the part.
    box_offset : (n_boxes,) int64 — arena offsets of those boxes' maps.
    first_step, last_step : int — the part's box merges are steps ``[first_step, last_step)``.
    """

    cell_row: IntArray
    cell_col: IntArray
    keep: IntArray
    keep_start: IntArray
    box_offset: IntArray
    first_step: int
    last_step: int


@dataclass(frozen=True)
class SchurPlan:
    """Symbolic part of the direct solver for one array shape (see the module notes).

    Attributes
    ----------
    n_rows, n_cols : int — array shape.
    box : int — edge of the equal boxes.
    levels : list of (pos_a, pos_b, p, q) — equal-box merges, bottom-up.
    parts : tuple of SchurPart — the root's two subtrees (one part when there is one box);
        each is computed from its cells to its merged map independently of the other.
    steps, blocks : int64 arrays — the merge program and the scatter blocks of every child
        (see :func:`~xbarsim.kernels.schur.merge_boxes`); the parts' steps come first, the root
        merge (when there are two parts) is the last step.
    positions : int64 array — each child node's position in its merge (``steps[:, 5]`` gives
        where a step's start; the kernels use ``blocks``, built from them).
    root_offset, root_size : int — the terminals' map in the arena.
    source_index, ground_index : int64 arrays — position of ``s_i`` / ``t_j`` in that map.
    arena_size : int — floats of the arena.
    """

    n_rows: int
    n_cols: int
    box: int
    levels: list[tuple[IntArray, IntArray, int, int]]
    parts: tuple[SchurPart, ...]
    steps: IntArray
    positions: IntArray
    blocks: IntArray
    root_offset: int
    root_size: int
    source_index: IntArray
    ground_index: IntArray
    arena_size: int

    @property
    def n_steps(self) -> int:
        """Box merges after the equal-box levels."""
        return int(self.steps.shape[0])


@functools.lru_cache(maxsize=32)
def plan(n_rows: int, n_cols: int, box: int | None = None) -> SchurPlan:
    """Build (and cache) the symbolic part of the direct solver for one array shape.

    Parameters
    ----------
    n_rows, n_cols : int
        Array shape, >= 1.
    box : int, optional
        Edge of the equal boxes, a power of two; default :func:`box_size`.
    """
    if n_rows < 1 or n_cols < 1:
        raise ValueError(f"shape: expected n_rows, n_cols >= 1, got ({n_rows}, {n_cols})")
    box = box_size(n_rows, n_cols) if box is None else int(box)
    if box < 1 or box & (box - 1):
        raise ValueError(f"box: expected a power of two >= 1, got {box}")
    m_pad = -(-n_rows // box) * box
    n_pad = -(-n_cols // box) * box
    top = m_pad - n_rows                   # padding rows above the array
    n_br, n_bc = m_pad // box, n_pad // box

    levels = []
    h = w = 1
    while h < box or w < box:
        horizontal = w <= h
        levels.append(_level_maps(h, w, horizontal) + (horizontal,))
        if horizontal:
            w *= 2
        else:
            h *= 2

    def batch_cells(b0: int, b1: int, c0: int, c1: int) -> tuple[IntArray, IntArray]:
        """Real cells of the first batch of boxes [b0, b1) x [c0, c1) (row-major boxes).

        Batch order: parent ``x`` merges children ``x`` and ``n_parents + x`` at every level.
        """
        order = np.arange((b1 - b0) * (c1 - c0)).reshape(b1 - b0, c1 - c0)
        for *_, horizontal in reversed(levels):
            n_par = order.size
            if horizontal:
                child = np.empty((order.shape[0], 2 * order.shape[1]), dtype=np.int64)
                child[:, 0::2], child[:, 1::2] = order, order + n_par
            else:
                child = np.empty((2 * order.shape[0], order.shape[1]), dtype=np.int64)
                child[0::2, :], child[1::2, :] = order, order + n_par
            order = child
        cell_row = np.empty(order.size, dtype=np.int64)
        cell_col = np.empty(order.size, dtype=np.int64)
        rows, cols = np.indices(order.shape)
        cell_row[order.ravel()] = rows.ravel() + b0 * box - top
        cell_col[order.ravel()] = cols.ravel() + c0 * box
        return cell_row, cell_col

    def slot_nodes(bi: int, bj: int) -> list[Node | None]:
        """Node of every slot of box (bi, bj) (None = unconnected)."""
        i0, j0 = bi * box - top, bj * box      # real coordinates of the box's first cell

        def row_node(i: int, j: int) -> Node | None:
            return ("U", i, j) if 0 <= i and 1 <= j <= n_cols - 1 else None

        def col_node(i: int, j: int) -> Node | None:
            return ("W", i, j) if 1 <= i <= n_rows - 1 and j < n_cols else None

        left = [(("s", i0 + a, 0) if i0 + a >= 0 else None) if j0 == 0 else row_node(i0 + a, j0)
                for a in range(box)]
        right = [row_node(i0 + a, j0 + box) for a in range(box)]
        top_ = [col_node(i0, j0 + b) for b in range(box)]
        if i0 + box == n_rows:
            bottom = [("t", 0, j0 + b) if j0 + b < n_cols else None for b in range(box)]
        else:
            bottom = [col_node(i0 + box, j0 + b) for b in range(box)]
        return left + right + top_ + bottom

    keep: list[int] = []
    keep_start = [0]
    box_nodes: dict[tuple[int, int], list[Node]] = {}
    box_index: dict[tuple[int, int], int] = {}
    box_size_: list[int] = []       # floats of each box map
    for bi in range(n_br):
        for bj in range(n_bc):
            nodes = slot_nodes(bi, bj)
            kept = [k for k, nd in enumerate(nodes) if nd is not None]
            keep.extend(kept)
            keep_start.append(len(keep))
            box_nodes[(bi, bj)] = [nodes[k] for k in kept]   # type: ignore[misc]
            box_index[(bi, bj)] = len(box_size_)
            box_size_.append(len(kept) ** 2)
    n_boxes = len(box_size_)

    # the merge program on symbolic maps: ids < n_boxes are box maps, id n_boxes + s is the
    # work block [t (p x n) | parent map (q x q)] of step s; arena offsets are assigned below
    steps: list[list[int]] = []
    positions: list[int] = []
    scatter: list[IntArray] = []
    t_size: list[int] = []
    out_size: list[int] = []

    def kind(nd: Node) -> int:
        return {"U": 0, "W": 0, "s": 1, "t": 2}[nd[0]]

    def bisect(b0: int, b1: int, c0: int, c1: int) -> tuple[int, list[Node]]:
        """Merge boxes [b0, b1) x [c0, c1); returns (map id, node order)."""
        if b1 - b0 == 1 and c1 - c0 == 1:
            return box_index[(b0, c0)], box_nodes[(b0, c0)]
        if c1 - c0 >= b1 - b0:
            mid = (c0 + c1) // 2
            (id_a, nodes_a), (id_b, nodes_b) = bisect(b0, b1, c0, mid), bisect(b0, b1, mid, c1)
        else:
            mid = (b0 + b1) // 2
            (id_a, nodes_a), (id_b, nodes_b) = bisect(b0, mid, c0, c1), bisect(mid, b1, c0, c1)
        in_a = set(nodes_a)
        shared = [nd for nd in nodes_b if nd in in_a]
        is_shared = set(shared)
        outer = [nd for nd in nodes_a + nodes_b if nd not in is_shared]
        outer.sort(key=kind)                      # [plain, sources, grounds], stable
        where = {nd: k for k, nd in enumerate(shared + outer)}
        counts = [sum(kind(nd) == c for nd in outer) for c in range(3)]
        p, q = len(shared), len(outer)
        steps.append([id_a, len(nodes_a), id_b, len(nodes_b), n_boxes + len(steps),
                      len(positions), p, *counts, sum(len(b) for b in scatter)])
        positions.extend(where[nd] for nd in nodes_a + nodes_b)
        for nodes in (nodes_a, nodes_b):
            scatter.append(_scatter_blocks(np.array([where[nd] for nd in nodes]), p, q))
        steps[-1].append(sum(len(b) for b in scatter) - len(scatter[-1]))
        t_size.append(p * (p + q))
        out_size.append(q * q)
        return n_boxes + len(steps) - 1, outer

    root_id, root_nodes = bisect(0, n_br, 0, n_bc)
    if any(kind(nd) == 0 for nd in root_nodes):
        raise AssertionError("schur plan: an inner node was not eliminated")
    # the root's two subtrees, split as bisect splits them; post-order: the first subtree is
    # the first (its boxes - 1) steps, the second the next (its boxes - 1), the root last
    if n_br * n_bc == 1:
        blocks = [(0, 1, 0, 1)]
    elif n_bc >= n_br:
        blocks = [(0, n_br, 0, n_bc // 2), (0, n_br, n_bc // 2, n_bc)]
    else:
        blocks = [(0, n_br // 2, 0, n_bc), (n_br // 2, n_br, 0, n_bc)]

    # arena offsets: each part in its own region (the two run at once in threads), memory of
    # maps already merged and of finished work blocks reused first-fit within the region
    # (the arena stays a fraction of the sum of all maps, and freshly written maps land in
    # memory that is still in cache)
    start = [0] * (n_boxes + len(steps))    # offset of each map, or of each work block

    def parent_map(map_id: int) -> tuple[int, int]:
        """(offset, floats) of a map: a box map, or the parent part of a work block."""
        if map_id < n_boxes:
            return start[map_id], box_size_[map_id]
        k = map_id - n_boxes
        return start[map_id] + t_size[k], out_size[k]

    def allocate(ids: list[int], first: int, last: int, base: int) -> int:
        free: list[list[int]] = []           # [offset, size], sorted, coalesced
        top = base

        def take(size: int) -> int:
            nonlocal top
            for k, (off, room) in enumerate(free):
                if room >= size:
                    if room == size:
                        free.pop(k)
                    else:
                        free[k] = [off + size, room - size]
                    return off
            top += size
            return top - size

        def give(off: int, size: int) -> None:
            free.append([off, size])
            free.sort()
            merged: list[list[int]] = []
            for f in free:
                if merged and merged[-1][0] + merged[-1][1] == f[0]:
                    merged[-1][1] += f[1]
                else:
                    merged.append(f)
            free[:] = merged

        for b in ids:
            start[b] = take(box_size_[b])
        for s_ in range(first, last):
            block = n_boxes + s_
            start[block] = take(t_size[s_] + out_size[s_])
            for child in (steps[s_][0], steps[s_][2]):
                give(*parent_map(child))
            give(start[block], t_size[s_])
        return top

    parts = []
    first_step = 0
    region = 0
    for b0, b1, c0, c1 in blocks:
        ids = [box_index[(bi, bj)] for bi in range(b0, b1) for bj in range(c0, c1)]
        kept = [keep[keep_start[b]:keep_start[b + 1]] for b in ids]
        cell_row, cell_col = batch_cells(b0, b1, c0, c1)
        last_step = first_step + len(ids) - 1
        region = allocate(ids, first_step, last_step, region)
        parts.append(SchurPart(
            cell_row=cell_row, cell_col=cell_col,
            keep=np.array([k for ks in kept for k in ks], dtype=np.int64),
            keep_start=np.cumsum([0] + [len(ks) for ks in kept], dtype=np.int64),
            box_offset=np.array([start[b] for b in ids], dtype=np.int64),
            first_step=first_step, last_step=last_step))
        first_step = last_step
    if first_step + len(blocks) - 1 != len(steps):
        raise AssertionError("schur plan: the parts do not cover the merge program")
    arena_size = region
    if len(blocks) == 2:                    # the root merge, after both parts
        start[root_id] = region
        arena_size = region + t_size[-1] + out_size[-1]
    for row in steps:
        row[0] = parent_map(row[0])[0]
        row[2] = parent_map(row[2])[0]
        row[4] = parent_map(row[4])[0]
    root_offset = parent_map(root_id)[0]
    where = {nd: k for k, nd in enumerate(root_nodes)}
    return SchurPlan(
        n_rows=n_rows, n_cols=n_cols, box=box,
        levels=[(pa, pb, p, q) for p, q, pa, pb, _ in levels],
        parts=tuple(parts),
        steps=np.array(steps, dtype=np.int64).reshape(-1, 12),
        blocks=(np.concatenate(scatter) if scatter else np.zeros((0, 7))).astype(np.int64),
        positions=np.array(positions, dtype=np.int64),
        root_offset=int(root_offset), root_size=len(root_nodes),
        source_index=np.array([where[("s", i, 0)] for i in range(n_rows)], dtype=np.int64),
        ground_index=np.array([where[("t", 0, j)] for j in range(n_cols)], dtype=np.int64),
        arena_size=int(arena_size))


def flop_count(n_rows: int, n_cols: int, box: int | None = None) -> int:
    """Floating-point operations of one direct solve of an ``n_rows x n_cols`` array.

    Counted as the kernels execute them (a multiply-add is two): the eliminations of the
    equal-box levels, and per box merge the column-by-column panels, the BLAS products of the
    blocked elimination and of the outer update (whole products, including the entries above
    the diagonal that the merges never read). The leaf maps, scatters and copies are not
    counted. 33 ``n^3`` (16 x 16) to 45 ``n^3`` (256 x 256) for ``n x n``, 40 ``n^3`` at 64 x 64.
    """
    pl = plan(n_rows, n_cols, box)
    flops = 0
    n_cells = sum(part.cell_row.size for part in pl.parts)
    n_par = n_cells
    for _, _, p, q in pl.levels:
        n_par //= 2
        n = p + q
        flops += n_par * sum((n - c - 1) * (n - c - 2) for c in range(p))
    for *_, p, n_plain, n_src, n_gnd, _, _ in pl.steps.tolist():
        q = n_plain + n_src + n_gnd
        n = p + q
        for c0 in range(0, p, PANEL):
            c1 = min(p, c0 + PANEL)
            flops += sum(2 * (n - j - 1) for c in range(c0, c1) for j in range(c + 1, c1))
            flops += 2 * (n - c1) * (p - c1) * (c1 - c0)
        flops += 2 * p * (n_plain * q + n_src * n_gnd)
    return flops


def conductances(g_max: FloatArray | float, parasitics: Parasitics, n_cells: int
                 ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Wire, source and sense conductances [S] per array, zero resistances replaced.

    Parameters
    ----------
    g_max : float or (n_arrays,) ndarray — largest device conductance of each array [S], > 0.
    parasitics : Parasitics
    n_cells : int — cells of one array.

    Returns
    -------
    g_row, g_col : (n_arrays,) ndarray [S]
    g_source : (n_arrays, n_rows) ndarray [S]
    g_sense : (n_arrays, n_cols) ndarray [S]
    """
    delta = ZERO_OHM_SCALE / (n_cells * np.atleast_1d(np.asarray(g_max, dtype=np.float64)))
    p = parasitics
    col = delta[:, None]
    return (1.0 / np.maximum(p.r_row, delta), 1.0 / np.maximum(p.r_col, delta),
            1.0 / np.maximum(p.r_source[None, :], col), 1.0 / np.maximum(p.r_sense[None, :], col))


#: Cells (times arrays) per batch of the equal-box levels: arrays are solved in groups of about
#: this many cells, so that a group's level maps stay in cache.
GROUP_CELLS = 4096


def group_size(n_rows: int, n_cols: int) -> int:
    """Arrays of shape ``(n_rows, n_cols)`` solved together by :func:`g_eff_batch` (>= 1)."""
    return max(1, min(64, GROUP_CELLS // (n_rows * n_cols)))


_LOCAL = threading.local()

#: Largest work memory a thread keeps between solves [floats] (16 MB: a group of 64 x 64
#: arrays; one 256 x 256 solve needs more and gives it back).
KEEP_ARENA_FLOATS = 2 << 20


def work_arena(n_arrays: int, size: int) -> FloatArray:
    """Work memory of :func:`g_eff_batch` for this thread, kept between calls.

    Returns a ``(n_arrays, size)`` view of one buffer per thread, grown when too small (so a
    solver does not hold megabytes of work memory per array, and repeated solves do not pay
    for fresh pages). Two threads never share a buffer; one call's tasks (the two subtrees
    of :func:`g_eff`) write disjoint parts of it.
    """
    need = n_arrays * size
    buf = getattr(_LOCAL, "arena", None)
    if buf is None or buf.size < need:
        buf = np.empty(need)
        _LOCAL.arena = buf
    return buf[:need].reshape(n_arrays, size)


def release_work_arena() -> None:
    """Drop this thread's work memory (it is allocated again by the next solve)."""
    _LOCAL.arena = None


def g_eff(g: FloatArray, parasitics: Parasitics, *, arena: FloatArray | None = None,
          run_parallel: Callable[[list[Callable[[], None]]], None] | None = None,
          box: int | None = None) -> FloatArray:
    """Exact effective conductance [S], shape (n_rows, n_cols), by nested dissection.

    Parameters
    ----------
    g : ndarray of shape (n_rows, n_cols)
        Device conductances [S], finite and >= 0 (validated by the caller).
    parasitics : Parasitics
        Terminal and wire resistances of the same shape.
    arena : ndarray of shape (plan.arena_size,) or (1, plan.arena_size), optional
        Work memory (default: this thread's, see :func:`work_arena`).
    run_parallel : callable, optional
        Runs a list of independent no-argument tasks (the root's two subtrees, each from its
        cells to its merged map), for example in threads; default: one after the other. The
        result is the same bit for bit.
    box : int, optional
        Edge of the equal boxes (a power of two); default :func:`box_size`.
    """
    if arena is not None:
        arena = arena.reshape(1, -1)
    return g_eff_batch(g[None], parasitics, arena=arena, run_parallel=run_parallel, box=box)[0]


def g_eff_batch(g: FloatArray, parasitics: Parasitics, *, arena: FloatArray | None = None,
                run_parallel: Callable[[list[Callable[[], None]]], None] | None = None,
                box: int | None = None) -> FloatArray:
    """Exact ``g_eff`` [S] of several arrays of one shape and parasitics, solved together.

    Every stage runs for all arrays in one kernel call: the cells and the equal-box levels of
    all arrays in one batch (arrays innermost), the box merges array after array inside one
    call. The arithmetic of each array is that of :func:`g_eff` on it alone, so the results
    are the same bit for bit.

    Parameters
    ----------
    g : ndarray of shape (n_arrays, n_rows, n_cols)
        Device conductances [S], finite and >= 0 (validated by the caller).
    parasitics : Parasitics
        Terminal and wire resistances of one array (shared by all).
    arena : ndarray of shape (>= n_arrays, >= plan.arena_size), optional
        Work memory (default, or when too small: this thread's, see :func:`work_arena`).
    run_parallel : callable, optional
        Runs a list of independent no-argument tasks (the root's two subtrees) in threads.
    box : int, optional
        Edge of the equal boxes (a power of two); default :func:`box_size`.

    Returns
    -------
    ndarray of shape (n_arrays, n_rows, n_cols)
        ``g_eff`` [S] of every array (all zero for an array whose ``g`` is all zero).
    """
    n_arrays, n_rows, n_cols = g.shape
    out = np.zeros((n_arrays, n_rows, n_cols))
    if n_arrays == 0:
        return out
    g_max = g.reshape(n_arrays, -1).max(axis=1)
    live = np.flatnonzero(g_max > 0.0)
    if live.size == 0:
        return out
    if live.size < n_arrays:
        g, g_max = g[live], g_max[live]
    g = np.ascontiguousarray(g, dtype=np.float64)
    n_live = live.size
    pl = plan(n_rows, n_cols, box)
    g_row, g_col, g_source, g_sense = conductances(g_max, parasitics, n_rows * n_cols)
    own = arena is None or arena.shape[0] < n_live or arena.shape[1] < pl.arena_size
    if own:
        arena = work_arena(n_live, pl.arena_size)
    elif arena.shape[0] > n_live:
        arena = arena[:n_live]
    steps, blocks = pl.steps, pl.blocks

    def run_part(part: SchurPart) -> None:
        """Cells -> equal boxes -> the part's merged map, written into the arenas."""
        maps = kernels.leaf_maps(g, g_row, g_col, g_source, g_sense, part.cell_row,
                                 part.cell_col)
        for pos_a, pos_b, p, q in pl.levels[:-1]:
            maps = kernels.merge_level(maps, pos_a, pos_b, p, q, CHUNK)
        if pl.levels:
            pos_a, pos_b, p, q = pl.levels[-1]
            kernels.merge_level_into_arenas(maps, pos_a, pos_b, p, q, CHUNK, part.keep,
                                            part.keep_start, arena, part.box_offset)
        else:
            kernels.gather_boxes(np.ascontiguousarray(maps.transpose(2, 0, 1)), part.keep,
                                 part.keep_start, arena, part.box_offset)
        kernels.merge_boxes(arena, steps, blocks, part.first_step, part.last_step, PANEL)

    tasks = [functools.partial(run_part, part) for part in pl.parts]
    if run_parallel is None or len(tasks) == 1:
        for task in tasks:
            task()
    else:
        run_parallel(tasks)
    kernels.merge_boxes(arena, steps, blocks, pl.parts[-1].last_step, pl.n_steps, PANEL)
    d = pl.root_size
    root = arena[:, pl.root_offset:pl.root_offset + d * d].reshape(n_live, d, d)
    # the grounds follow the sources in the root's order: (ground, source) is in the lower
    # triangle, the one the merges write
    out[live] = -root[:, pl.ground_index[None, :], pl.source_index[:, None]]
    if own and arena.size > KEEP_ARENA_FLOATS:
        release_work_arena()
    return out
