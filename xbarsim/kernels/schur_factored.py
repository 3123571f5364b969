"""Kernels of the factorizing direct solver: nested dissection that keeps its factors.

The same sign-preserving (GTH) nested dissection as :mod:`xbarsim.kernels.schur` (read its
notes first), in its original single-array layout with full (symmetric) box maps, and with
each elimination's factors kept for back-substitution (:mod:`xbarsim.kernels.adjoint`, the
exact circuit gradient of aware training). :mod:`xbarsim.kernels.schur` is the fast path for
``g_eff`` alone (arrays batched, strict lower triangles, BLAS accumulated in place); this module
trades that speed for a layout the back-substitution can walk. Both run the same plan
(:func:`xbarsim.hardware.schur.plan`: levels, parts, steps ``[:, :10]``, positions) and agree to
round-off (tested).

Storage conventions
-------------------
* A box of ``h x w`` cells has ``2h + 2w`` slots ``[L (h), R (h), T (w), B (w)]``.
* Batched maps of equal boxes have shape ``(n_slots, n_slots, n_boxes)`` (boxes innermost, so
  the loops vectorise across boxes), full and symmetric (the cells' maps are those of
  :func:`xbarsim.kernels.schur.leaf_maps` for one array, mirrored); one map of one box has
  shape ``(n_slots, n_slots)``.
* Diagonals are never read and are kept at 0.
* A pivot whose row is all zero (an isolated node) is skipped.
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels._jit import jit

__all__ = ["gather_boxes", "merge_boxes_factored", "merge_level_factored"]


@jit
def merge_level_factored(child, pos_a, pos_b, n_inner, n_outer, chunk, box_major, factor):
    """Merge pairs of equal boxes, all pairs of one level at once.

    Parameters
    ----------
    child : (m, m, 2 * n_parents) float64
        Maps of the children: parent ``x`` merges child ``x`` (A) with child ``n_parents + x``
        (B).
    pos_a, pos_b : (m,) int64
        Position of each child slot in the parent's order ``[shared (n_inner), outer]``.
    n_inner : int — shared slots, eliminated (``p``).
    n_outer : int — slots of the parent (``q``).
    chunk : int — boxes processed together (they stay in cache).
    box_major : bool — output layout (n_parents, q, q) instead of (q, q, n_parents).
    factor : (p + q, p, n_parents) float64, or of size 0 — receives the eliminated columns:
        ``factor[i, c, x]`` (``i > c``) is the entry ``(i, c)`` of parent ``x``'s merged map at
        the moment pivot ``c`` is eliminated (the rest is left untouched). Back-substitution
        needs exactly these (:mod:`xbarsim.kernels.adjoint`). Size 0: not kept.

    Returns
    -------
    ndarray — maps of the parents on their ``n_outer`` slots.
    """
    m = child.shape[0]
    n_par = child.shape[2] // 2
    p = n_inner
    n = p + n_outer
    if box_major:
        out = np.zeros((n_par, n_outer, n_outer))
    else:
        out = np.zeros((n_outer, n_outer, n_par))
    width = min(chunk, n_par)
    k = np.empty((n, n, width))
    inv = np.empty(width)
    f = np.empty(width)
    for x0 in range(0, n_par, width):
        nx = min(width, n_par - x0)
        k[:] = 0.0
        for a in range(m):
            ra = pos_a[a]
            rb = pos_b[a]
            for b in range(m):
                if a == b:
                    continue
                sa = pos_a[b]
                sb = pos_b[b]
                for x in range(nx):
                    k[ra, sa, x] += child[a, b, x0 + x]
                for x in range(nx):
                    k[rb, sb, x] += child[a, b, n_par + x0 + x]
        # sign-preserving elimination of the shared slots (lower triangle: k[i, j], i > j)
        for piv in range(p):
            for x in range(nx):
                inv[x] = 0.0
            for i in range(piv + 1, n):
                for x in range(nx):
                    inv[x] -= k[i, piv, x]
            for x in range(nx):
                inv[x] = 1.0 / inv[x] if inv[x] > 0.0 else 0.0
            for i in range(piv + 1, n):
                for x in range(nx):
                    f[x] = k[i, piv, x] * inv[x]
                for j in range(piv + 1, i):
                    for x in range(nx):
                        k[i, j, x] -= f[x] * k[j, piv, x]
        if factor.size > 0:
            # column piv is final once it is the pivot (later pivots only touch columns > piv)
            for piv in range(p):
                for i in range(piv + 1, n):
                    for x in range(nx):
                        factor[i, piv, x0 + x] = k[i, piv, x]
        for a in range(n_outer):
            for b in range(a):
                if box_major:
                    for x in range(nx):
                        v = k[p + a, p + b, x]
                        out[x0 + x, a, b] = v
                        out[x0 + x, b, a] = v
                else:
                    for x in range(nx):
                        v = k[p + a, p + b, x]
                        out[a, b, x0 + x] = v
                        out[b, a, x0 + x] = v
    return out


@jit
def gather_boxes(maps, keep, keep_start, arena, arena_start):
    """Copy the kept slots of each box's map into the arena (one square matrix per box).

    Parameters
    ----------
    maps : (n_boxes, m, m) float64 — box maps on all their slots.
    keep : (n_kept,) int64 — kept slots, box after box; box ``b`` has
        ``keep[keep_start[b]:keep_start[b + 1]]``.
    arena : (size,) float64 — output; box ``b``'s ``d x d`` map starts at ``arena_start[b]``.
    """
    for b in range(maps.shape[0]):
        k0 = keep_start[b]
        d = keep_start[b + 1] - k0
        base = arena_start[b]
        for a in range(d):
            sa = keep[k0 + a]
            for c in range(d):
                arena[base + a * d + c] = maps[b, sa, keep[k0 + c]]


@jit
def _merge_pair_factored(ka, kb, pos_a, pos_b, p, q, n_plain, n_src, n_gnd, panel, out,
                         factor):
    """Merge two box maps and eliminate their ``p`` shared nodes (blocked, sign-preserving).

    ``pos_a`` / ``pos_b`` place the children's nodes in the order ``[shared (p), outer (q)]``;
    the outer nodes are ordered ``[plain (n_plain), sources (n_src), grounds (n_gnd)]``. Only
    the blocks a later merge can read are formed: source-source and ground-ground couplings
    are never needed (terminals are never eliminated), so they are left at 0.

    The shared block is eliminated by panels of ``panel`` pivots: inside a panel column by
    column, then the rest of the shared rows and the outer rows by one matrix product per
    panel; the outer-outer block by one product at the end. Storage ``t[c, i]`` = entry
    ``(i, c)`` of the lower triangle, for the shared columns ``c < p``. ``factor`` (size
    ``p * (p + q)``, or 0 = not kept) receives ``t`` row by row at the end: row ``c`` is final
    once ``c`` is the pivot (later panels only update rows ``> c``), which is what
    back-substitution needs (:mod:`xbarsim.kernels.adjoint`).
    """
    n = p + q
    t = np.zeros((p, n))
    kee = out
    for side in range(2):
        km = ka if side == 0 else kb
        pos = pos_a if side == 0 else pos_b
        m = km.shape[0]
        for a in range(m):
            ra = pos[a]
            for b in range(m):
                rb = pos[b]
                if ra < p:
                    if rb > ra:
                        t[ra, rb] += km[a, b]
                elif rb >= p and rb != ra:
                    kee[ra - p, rb - p] += km[a, b]
    scale = np.empty(p)
    for c0 in range(0, p, panel):
        c1 = min(p, c0 + panel)
        for c in range(c0, c1):
            s = 0.0
            for i in range(c + 1, n):
                s -= t[c, i]
            iv = 1.0 / s if s > 0.0 else 0.0
            scale[c] = np.sqrt(iv)
            for j in range(c + 1, c1):
                fj = t[c, j] * iv
                if fj != 0.0:
                    for i in range(j + 1, n):
                        t[j, i] -= fj * t[c, i]
        if c1 < p:
            y = np.empty((c1 - c0, n - c1))
            for c in range(c0, c1):
                sc = scale[c]
                for i in range(n - c1):
                    y[c - c0, i] = t[c, c1 + i] * sc
            upd = np.dot(np.ascontiguousarray(y[:, :p - c1].T), y)
            for j in range(c1, p):
                for i in range(j + 1, n):
                    t[j, i] -= upd[j - c1, i - c1]
    if factor.size > 0:
        for c in range(p):
            for i in range(n):
                factor[c * n + i] = t[c, i]
    ye = np.empty((p, q))
    for c in range(p):
        sc = scale[c]
        for i in range(q):
            ye[c, i] = t[c, p + i] * sc
    if n_plain > 0:
        left = np.dot(np.ascontiguousarray(ye.T), np.ascontiguousarray(ye[:, :n_plain]))
        for a in range(q):
            for b in range(n_plain):
                if a != b:
                    kee[a, b] -= left[a, b]
                    if a >= n_plain:
                        kee[b, a] -= left[a, b]
    if n_src > 0 and n_gnd > 0:
        s0 = n_plain
        g0 = n_plain + n_src
        st = np.dot(np.ascontiguousarray(ye[:, s0:g0].T), np.ascontiguousarray(ye[:, g0:]))
        for a in range(n_src):
            for b in range(n_gnd):
                kee[s0 + a, g0 + b] -= st[a, b]
                kee[g0 + b, s0 + a] -= st[a, b]


@jit
def merge_boxes_factored(arena, steps, positions, first, last, panel, factor, factor_start):
    """Run merge steps ``first .. last - 1`` of a nested-dissection program on the arena.

    Parameters
    ----------
    arena : (size,) float64 — every box map, each a square matrix at its offset.
    steps : (n_steps, 10) int64 — per step: offset and size of child A, of child B, offset of
        the result, start of the children's positions in ``positions``, ``p``, and the counts
        of plain, source and ground outer nodes (``q`` is their sum).
    positions : (n,) int64 — concatenated ``pos_a, pos_b`` of every step.
    panel : int — pivots per panel of the blocked elimination.
    factor : (size,) float64, or of size 0 — receives each step's elimination factor ``t``
        (``p x (p + q)``, row-major, see :func:`_merge_pair_factored`) at
        ``factor_start[step]``. Size 0: not kept.
    factor_start : (n_steps,) int64 — offsets into ``factor`` (unused when it has size 0).
    """
    keep = factor.size > 0
    for s in range(first, last):
        off_a, d_a, off_b, d_b, off_o, pos0, p, n_plain, n_src, n_gnd = steps[s, :10]
        q = n_plain + n_src + n_gnd
        ka = arena[off_a:off_a + d_a * d_a].reshape(d_a, d_a)
        kb = arena[off_b:off_b + d_b * d_b].reshape(d_b, d_b)
        out = arena[off_o:off_o + q * q].reshape(q, q)
        out[:] = 0.0
        if keep:
            f0 = factor_start[s]
            fac = factor[f0:f0 + p * (p + q)]
        else:
            fac = factor[:0]
        _merge_pair_factored(ka, kb, positions[pos0:pos0 + d_a],
                             positions[pos0 + d_a:pos0 + d_a + d_b], p, q, n_plain, n_src,
                             n_gnd, panel, out, fac)
