"""Kernels of the direct solver: sign-preserving nested dissection onto the terminals.

The crossbar is a linear resistive network; ``g_eff[i, j] = -K[source_i, sense_j]`` where ``K``
is the Schur complement of its nodal (Laplacian) matrix onto the ideal sources and grounds.
``K`` is computed by merging boxes of cells bottom-up (a nested dissection): each box is
described by the Schur complement of its own part of the network onto its boundary nodes
(its Dirichlet-to-Neumann map, a Laplacian), and merging two boxes adds their maps on the
union of their boundaries and eliminates the nodes they share.

Every elimination is *sign-preserving* (GTH elimination): a map is stored by its off-diagonal
entries only (all <= 0), each pivot is recomputed as the sum of the magnitudes of its row's
off-diagonal entries (a Laplacian's rows sum to zero), and every update adds terms of one sign.
No subtraction of nearly equal numbers occurs anywhere, so each entry of ``g_eff`` is accurate
to a small multiple of the unit round-off *relative to itself*, whatever the ratio of wire and
device conductances (1 S wires against 1 uS devices).

Storage conventions
-------------------
* A box of ``h x w`` cells has ``2h + 2w`` slots ``[L (h), R (h), T (w), B (w)]``: the row
  nodes it shares with the box to its left and right, the column nodes it shares with the box
  above and below (see :mod:`xbarsim.hardware.schur` for the node each slot stands for).
* Batched maps of equal boxes have shape ``(n_slots, n_slots, n_boxes * n_arrays)`` (boxes
  and arrays innermost, entry ``box * n_arrays + array``, so the loops vectorise across both);
  they are symmetric with zero diagonals.
* After the equal-box levels, every map is a square C-ordered block of its array's *arena* (a
  flat float64 array, one row of a ``(n_arrays, size)`` array per array); only its strict lower
  triangle (entry ``(i, j)``, ``i > j``) is read, and the box merges write only that.
* A pivot whose row is all zero (an isolated node: padding, a cut wire, ``g == 0`` cells) is
  skipped: its elimination changes nothing.
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels import fblas
from xbarsim.kernels._jit import jit


@jit
def leaf_maps(g, g_row, g_col, g_source, g_sense, cell_row, cell_col):
    """Compute the maps of single cells on their slots ``[L, R, T, B]`` [S].

    Returns shape (4, 4, n_cells * n_arrays), strict lower triangles (the rest 0).

    Batch entry ``c * n_arrays + x`` is cell ``c`` of array ``x`` (arrays innermost, so the
    pairing of :func:`merge_level` -- parent ``k`` merges children ``k`` and ``n_parents + k``
    -- holds for every array at once). Cell ``c`` of the (padded) grid is real cell
    ``(cell_row[c], cell_col[c])`` when both are in range, else padding (all zero). A cell owns
    its device (row node to column node), the row wire to its right neighbour and the column
    wire to the node below; in the bottom row that wire is the sense resistance to the ground
    ``t_j`` (slot B). The first column also owns the source resistance and eliminates its row
    node (slot L is then the source ``s_i``); the top row eliminates its column node (slot T is
    then unconnected).

    Parameters
    ----------
    g : (n_arrays, n_rows, n_cols) float64 — device conductances [S], >= 0.
    g_row, g_col : (n_arrays,) float64 — conductance of one row / column wire segment [S], > 0.
    g_source : (n_arrays, n_rows) float64 — source conductances [S], > 0.
    g_sense : (n_arrays, n_cols) float64 — sense conductances [S], > 0.
    cell_row, cell_col : (n_cells,) int64 — real cell of each slot of the batch.
    """
    n_arrays, n_rows, n_cols = g.shape
    n_cells = cell_row.size
    out = np.zeros((4, 4, n_cells * n_arrays))
    for c in range(n_cells):
        i = cell_row[c]
        j = cell_col[c]
        if i < 0 or i >= n_rows or j < 0 or j >= n_cols:
            continue
        for x in range(n_arrays):
            e = c * n_arrays + x
            gd = g[x, i, j]
            lr = g_row[x] if j + 1 < n_cols else 0.0   # L-R: row wire (cut at the right edge)
            lt = gd                                    # L-T: device
            tb = g_col[x] if i + 1 < n_rows else g_sense[x, j]
            rt = 0.0
            lb = 0.0
            rb = 0.0
            if j == 0:
                # eliminate the row node: L becomes the source s_i
                gs = g_source[x, i]
                d = gs + lr + lt
                inv = 1.0 / d if d > 0.0 else 0.0
                rt = lr * lt * inv
                lr = gs * lr * inv
                lt = gs * lt * inv
            if i == 0:
                # eliminate the column node (coupled to L, R and B): T is left unconnected
                d = lt + rt + tb
                inv = 1.0 / d if d > 0.0 else 0.0
                lr += lt * rt * inv
                lb = lt * tb * inv
                rb = rt * tb * inv
                lt = 0.0
                rt = 0.0
                tb = 0.0
            out[1, 0, e] = -lr
            out[2, 0, e] = -lt
            out[2, 1, e] = -rt
            out[3, 2, e] = -tb
            out[3, 0, e] = -lb
            out[3, 1, e] = -rb
    return out


@jit
def _level_chunk(child, pos_a, pos_b, p, x0, nx, n_par, k, inv, f):
    """Merge the pairs ``x0 .. x0 + nx - 1`` of a level into ``k`` and eliminate ``p`` slots.

    ``k`` (n, n, >= nx) receives, in its strict lower triangle, the merged maps in the parent
    order ``[shared (p), outer]`` with the shared slots eliminated (see :func:`merge_level`).
    Loops over the batch run over views from index 0: LLVM then vectorises them.
    """
    n = k.shape[0]
    m = child.shape[0]
    for i in range(1, n):
        k[i, :i] = 0.0
    for a in range(1, m):
        for b in range(a):
            for side in range(2):
                pos = pos_a if side == 0 else pos_b
                first = x0 if side == 0 else n_par + x0
                ra = pos[a]
                rb = pos[b]
                dst = k[ra, rb] if ra > rb else k[rb, ra]
                src = child[a, b, first:first + nx]
                for x in range(nx):
                    dst[x] += src[x]
    # sign-preserving elimination of the shared slots (lower triangle: k[i, j], i > j), two
    # pivots per pass over the trailing triangle (each entry gets the same two updates in the
    # same order as pivot by pivot: the result is the same bit for bit, the traffic halves)
    piv = 0
    while piv < p:
        two = piv + 1 < p
        _pivot_factors(k, piv, nx, inv, f[0])
        if two:
            # bring column piv + 1 up to date with pivot piv first, then its own factors
            kp = k[piv + 1, piv]
            for i in range(piv + 2, n):
                dst = k[i, piv + 1]
                fi = f[0, i]
                for x in range(nx):
                    dst[x] -= fi[x] * kp[x]
            _pivot_factors(k, piv + 1, nx, inv, f[1])
            for i in range(piv + 2, n):
                f0 = f[0, i]
                f1 = f[1, i]
                for j in range(piv + 2, i):
                    dst = k[i, j]
                    s0 = k[j, piv]
                    s1 = k[j, piv + 1]
                    for x in range(nx):
                        dst[x] = (dst[x] - f0[x] * s0[x]) - f1[x] * s1[x]
            piv += 2
        else:
            for i in range(piv + 1, n):
                f0 = f[0, i]
                for j in range(piv + 1, i):
                    dst = k[i, j]
                    s0 = k[j, piv]
                    for x in range(nx):
                        dst[x] -= f0[x] * s0[x]
            piv += 1


@jit
def _pivot_factors(k, piv, nx, inv, f):
    """``f[i] = k[i, piv] / pivot`` for the rows below ``piv`` (pivot = row sum magnitude)."""
    n = k.shape[0]
    inv[:nx] = 0.0
    for i in range(piv + 1, n):
        col = k[i, piv]
        for x in range(nx):
            inv[x] -= col[x]
    for x in range(nx):
        inv[x] = 1.0 / inv[x] if inv[x] > 0.0 else 0.0
    for i in range(piv + 1, n):
        col = k[i, piv]
        fi = f[i]
        for x in range(nx):
            fi[x] = col[x] * inv[x]


@jit
def merge_level(child, pos_a, pos_b, n_inner, n_outer, chunk):
    """Merge pairs of equal boxes, all pairs of one level at once.

    Parameters
    ----------
    child : (m, m, 2 * n_parents) float64
        Maps of the children (strict lower triangles read): parent ``x`` merges child ``x``
        (A) with child ``n_parents + x`` (B).
    pos_a, pos_b : (m,) int64
        Position of each child slot in the parent's order ``[shared (n_inner), outer]``.
    n_inner : int — shared slots, eliminated (``p``).
    n_outer : int — slots of the parent (``q``).
    chunk : int — boxes processed together (they stay in cache).

    Returns
    -------
    ndarray of shape (n_outer, n_outer, n_parents)
        Maps of the parents on their ``n_outer`` slots (strict lower triangles; the rest 0).
    """
    n_par = child.shape[2] // 2
    p = n_inner
    n = p + n_outer
    out = np.zeros((n_outer, n_outer, n_par))
    width = min(chunk, n_par)
    k = np.empty((n, n, width))
    inv = np.empty(width)
    f = np.empty((2, n, width))
    for x0 in range(0, n_par, width):
        nx = min(width, n_par - x0)
        _level_chunk(child, pos_a, pos_b, p, x0, nx, n_par, k, inv, f)
        for a in range(1, n_outer):
            for b in range(a):
                src = k[p + a, p + b]
                dst = out[a, b, x0:x0 + nx]
                for x in range(nx):
                    dst[x] = src[x]
    return out


@jit
def merge_level_into_arenas(child, pos_a, pos_b, n_inner, n_outer, chunk, keep, keep_start,
                            arena, arena_start):
    """Merge the last equal-box level and write the kept slots of every box to its arena.

    As :func:`merge_level` followed by :func:`gather_boxes`, without the intermediate maps:
    parent ``e = box * n_arrays + array`` is written (strict lower triangle) to
    ``arena[array, arena_start[box]:]`` on its kept slots ``keep[keep_start[box]:
    keep_start[box + 1]]`` (ascending).
    """
    n_arrays = arena.shape[0]
    n_par = child.shape[2] // 2
    p = n_inner
    n = p + n_outer
    width = min(chunk, n_par)
    k = np.empty((n, n, width))
    inv = np.empty(width)
    f = np.empty((2, n, width))
    for x0 in range(0, n_par, width):
        nx = min(width, n_par - x0)
        _level_chunk(child, pos_a, pos_b, p, x0, nx, n_par, k, inv, f)
        for x in range(nx):
            e = x0 + x
            box = e // n_arrays
            mem = arena[e - box * n_arrays]
            k0 = keep_start[box]
            d = keep_start[box + 1] - k0
            base = arena_start[box]
            for a in range(1, d):
                sa = p + keep[k0 + a]
                row = mem[base + a * d:base + a * d + a]
                for c in range(a):
                    row[c] = k[sa, p + keep[k0 + c], x]


@jit
def gather_boxes(maps, keep, keep_start, arena, arena_start):
    """Copy the kept slots of each box's map into the arenas (one square matrix per box).

    Parameters
    ----------
    maps : (n_boxes * n_arrays, m, m) float64 — box maps on all their slots; entry
        ``b * n_arrays + x`` is box ``b`` of array ``x``.
    keep : (n_kept,) int64 — kept slots, box after box; box ``b`` has
        ``keep[keep_start[b]:keep_start[b + 1]]``.
    arena : (n_arrays, size) float64 — output; box ``b``'s ``d x d`` map of array ``x`` starts
        at ``arena[x, arena_start[b]]``.
    """
    n_arrays = arena.shape[0]
    for b in range(keep_start.size - 1):
        k0 = keep_start[b]
        d = keep_start[b + 1] - k0
        base = arena_start[b]
        for x in range(n_arrays):
            e = b * n_arrays + x
            for a in range(d):
                sa = keep[k0 + a]
                for c in range(d):
                    arena[x, base + a * d + c] = maps[e, sa, keep[k0 + c]]


@jit
def _merge_pair(mem, off_a, d_a, off_b, d_b, off_o, blocks_a, blocks_b, p, n_plain, n_src,
                n_gnd, panel, w, inv):
    """Merge two box maps and eliminate their ``p`` shared nodes (blocked, sign-preserving).

    The maps are square C-ordered blocks of the flat array ``mem``: child A at ``off_a``
    (``d_a x d_a``), child B at ``off_b``, the parent (``q x q``) at ``off_o``; only their
    strict lower triangles (entry ``(i, j)``, ``i > j``) are read and written. The merge works
    in the block ``[t (p x n) | parent]`` that ends at the parent's end (``n = p + q``):
    ``t[c, i]`` holds entry ``(i, c)`` of the merged matrix for the shared columns ``c < p``.
    ``blocks_a`` / ``blocks_b`` say where each child's entries are added in that block, as
    strided rectangles (see ``xbarsim.hardware.schur._scatter_blocks``). The nodes are ordered
    ``[shared (p), plain (n_plain), sources (n_src), grounds (n_gnd)]``. Only the blocks a
    later merge can read are formed: source-source and ground-ground couplings are never
    needed (terminals are never eliminated) and are not updated.

    The shared block is eliminated by panels of ``panel`` pivots: inside a panel column by
    column, then the rest of the shared columns by one BLAS product per panel; the outer block
    by two products (all rows against the plain columns, grounds against sources), all
    accumulated in place. ``w`` (>= panel p) and ``inv`` (>= p) are scratch.
    """
    q = n_plain + n_src + n_gnd
    n = p + q
    base = off_o - p * n
    # (loops run over views from index 0: LLVM then vectorises them, 2-4x faster measured)
    work = mem[base:off_o + q * q]
    work[:] = 0.0
    _scatter(mem, off_a, d_a, blocks_a, work)
    _scatter(mem, off_b, d_b, blocks_b, work)
    t2 = work[:p * n].reshape(p, n)
    for c0 in range(0, p, panel):
        c1 = min(p, c0 + panel)
        for c in range(c0, c1):
            rc = t2[c]
            tail = rc[c + 1:]
            s = 0.0
            for i in range(n - c - 1):
                s -= tail[i]
            iv = 1.0 / s if s > 0.0 else 0.0
            inv[c] = iv
            for j in range(c + 1, c1):
                fj = rc[j] * iv
                if fj != 0.0:
                    dst = t2[j, j + 1:]
                    src = rc[j + 1:]
                    for i in range(n - j - 1):
                        dst[i] -= fj * src[i]
        if c1 < p:
            # t[j, i] -= sum_c (t[c, j] inv[c]) t[c, i] for the shared columns j >= c1, i >= c1
            m = p - c1
            for c in range(c0, c1):
                iv = inv[c]
                dst = w[(c - c0) * m:(c - c0 + 1) * m]
                src = t2[c, c1:p]
                for j in range(m):
                    dst[j] = src[j] * iv
            fblas.gemm(False, True, n - c1, m, c1 - c0, -1.0, mem, base + c0 * n + c1, n, w, 0,
                       m, 1.0, mem, base + c1 * n + c1, n)
    # y[c, i] = t[c, p + i] sqrt(inv[c]), in place (t is not read again)
    for c in range(p):
        sc = np.sqrt(inv[c])
        y = t2[c, p:]
        for i in range(q):
            y[i] *= sc
    # parent[a, b] (a > b) -= sum_c y[c, a] y[c, b]: C-ordered blocks are BLAS's column-major
    # transposes; all rows against the plain columns in one product (OpenBLAS's dsyrk on the
    # plain block plus a product for the terminal rows measured slower at these sizes)
    fblas.gemm(False, True, n_plain, q, p, -1.0, mem, base + p, n, mem, base + p, n, 1.0,
               mem, off_o, q)
    s0 = n_plain
    g0 = n_plain + n_src
    fblas.gemm(False, True, n_src, n_gnd, p, -1.0, mem, base + p + s0, n, mem, base + p + g0,
               n, 1.0, mem, off_o + g0 * q + s0, q)


@jit
def _scatter(mem, off, d, blocks, work):
    """Add the strict lower triangle of the ``d x d`` map at ``mem[off]`` into ``work``."""
    for k in range(blocks.shape[0]):
        a0, a1, b0, b1, dst0, stride_a, stride_b = blocks[k]
        for a in range(max(a0, b0 + 1), a1):
            b_end = min(b1, a)
            row = mem[off + a * d + b0:off + a * d + b_end]
            start = dst0 + (a - a0) * stride_a
            if stride_b == 1:
                dst = work[start:start + b_end - b0]
                for b in range(b_end - b0):
                    dst[b] += row[b]
            else:
                for b in range(b_end - b0):
                    work[start + b * stride_b] += row[b]


@jit
def merge_boxes(arena, steps, blocks, first, last, panel):
    """Run merge steps ``first .. last - 1`` of a nested-dissection program on every arena.

    Parameters
    ----------
    arena : (n_arrays, size) float64 — one arena per array: every box map, each a square
        matrix (strict lower triangle used) at its offset, and each merge's work block.
    steps : (n_steps, 12) int64 — per step: offset and size of child A, of child B, offset of
        the result, (unused), ``p``, the counts of plain, source and ground outer nodes
        (``q`` is their sum), and where the scatter blocks of child A and of child B start in
        ``blocks``.
    blocks : (n, 7) int64 — scatter blocks of every child (see :func:`_merge_pair`).
    panel : int — pivots per panel of the blocked elimination.
    """
    p_max = 1
    for s in range(first, last):
        p_max = max(p_max, steps[s, 6])
    w = np.empty(min(panel, p_max) * p_max)
    inv = np.empty(p_max)
    for x in range(arena.shape[0]):
        mem = arena[x]
        for s in range(first, last):
            off_a, d_a, off_b, d_b, off_o, _, p, n_plain, n_src, n_gnd, bl0, bl1 = steps[s]
            bl2 = steps[s + 1, 10] if s + 1 < steps.shape[0] else blocks.shape[0]
            _merge_pair(mem, off_a, d_a, off_b, d_b, off_o, blocks[bl0:bl1], blocks[bl1:bl2],
                        p, n_plain, n_src, n_gnd, panel, w, inv)
