"""Counter-based random numbers: Philox4x32-10 and standard normals by inversion.

The one kind of randomness allowed inside kernels: every number is a pure function of an
explicit key and counter, so a kernel can draw the number of any device in any order, on any
thread, and get the same value (no stream, no state).

Generator
    Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2,
    3", SC'11; the Random123 library): a 128-bit counter ``(c0, c1, c2, c3)`` and a 64-bit key
    ``(k0, k1)``, in 32-bit words, are mapped by ten rounds of::

        (hi0, lo0) = M0 * c0,  (hi1, lo1) = M1 * c2          (32 x 32 -> 64-bit products)
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)

    with ``M0 = 0xD2511F53``, ``M1 = 0xCD9E8D57`` and the key bumped by the Weyl constants
    ``(0x9E3779B9, 0xBB67AE85)`` between rounds, to four 32-bit output words. The
    implementation reproduces Random123's known-answer vectors (``tests/test_philox.py``).

Uniforms
    Two output words ``(a, b)`` make one uniform with 52 random bits,
    ``u = (floor((a * 2**32 + b) / 2**12) + 1/2) * 2**-52``: strictly inside (0, 1), symmetric
    (``1 - u`` is exact and is itself such a value), smallest value ``2**-53``. One Philox call
    gives two uniforms.

Normals
    ``z = Phi^-1(u)`` by Wichura's algorithm AS 241 (PPND16, Applied Statistics 37, 477-484,
    1988), a rational approximation accurate to about 1e-16 relative: one rational function of
    degree 7 in the central region ``|u - 1/2| <= 0.425`` (85 % of the draws, no transcendental
    function) and two in the tails after ``r = sqrt(-log(min(u, 1 - u)))``. Inversion is
    monotone and uses one uniform per normal; the largest normal magnitude is 8.3
    (``u = 2**-53``).

Layout of the draws of an update (:mod:`xbarsim.kernels.update`)
    The normal of device ``k`` (flat C index) of array ``a`` in update step ``s`` under key
    ``(k0, k1)`` is output ``k % 2`` of the counter ``(k // 2, a, s mod 2**32, s // 2**32)``:
    two neighbouring devices share one Philox call.

The central region of the inversion is evaluated for a whole run of devices in one
vectorisable loop (:func:`fill_uniforms_and_central`), the tails only where a value is needed
(:func:`finish_normal`); :func:`std_normal_from_uniform` is the same function in one piece.
"""

from __future__ import annotations

import math

import numpy as np

from xbarsim.kernels._jit import jit

_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_SHIFT12 = np.uint64(12)
_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_TWO_M52 = 2.0 ** -52

#: Draws with ``|u - 1/2|`` at most this are in AS 241's central region.
CENTRAL_HALF_WIDTH = 0.425

PHILOX_ROUNDS = 10
"""Rounds of the generator used by the update kernels (Philox4x32-10)."""


@jit(inline="always")
def philox4x32(c0, c1, c2, c3, k0, k1, n_rounds):
    """Philox4x32 with ``n_rounds`` rounds (Random123's ``philox4x32_R``).

    Parameters
    ----------
    c0, c1, c2, c3 : int
        Counter words, each < 2**32 (taken as uint64).
    k0, k1 : int
        Key words, each < 2**32 (taken as uint64).
    n_rounds : int
        Number of rounds (10 for Philox4x32-10).

    Returns
    -------
    tuple of four numpy.uint64
        The output words, each < 2**32.
    """
    c0, c1, c2, c3 = np.uint64(c0), np.uint64(c1), np.uint64(c2), np.uint64(c3)
    k0, k1 = np.uint64(k0), np.uint64(k1)
    for r in range(n_rounds):
        if r > 0:
            k0 = (k0 + _W0) & _MASK32
            k1 = (k1 + _W1) & _MASK32
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = ((p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _MASK32,
                          (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _MASK32)
    return c0, c1, c2, c3


@jit
def philox4x32_words(counters, key, n_rounds):
    """Output words of Philox4x32 for many counters (tests, known-answer vectors).

    Parameters
    ----------
    counters : ndarray of uint64, shape (n, 4)
        Counter words (each < 2**32).
    key : ndarray of uint64, shape (2,)
        Key words (each < 2**32).
    n_rounds : int
        Rounds (10 for Philox4x32-10).

    Returns
    -------
    ndarray of uint64, shape (n, 4)
        Output words.
    """
    n = counters.shape[0]
    out = np.empty((n, 4), dtype=np.uint64)
    k0 = key[0] & _MASK32
    k1 = key[1] & _MASK32
    for i in range(n):
        a, b, c, d = philox4x32(counters[i, 0] & _MASK32, counters[i, 1] & _MASK32,
                                counters[i, 2] & _MASK32, counters[i, 3] & _MASK32, k0, k1,
                                n_rounds)
        out[i, 0] = a
        out[i, 1] = b
        out[i, 2] = c
        out[i, 3] = d
    return out


@jit(inline="always")
def uniform52(hi, lo):
    """Return ``(floor((hi 2**32 + lo) / 2**12) + 1/2) 2**-52``, a uniform in (0, 1)."""
    x = ((hi << _SHIFT32) | lo) >> _SHIFT12
    return (np.float64(x) + 0.5) * _TWO_M52


@jit(inline="always")
def as241_central(u):
    """AS 241's central rational function at ``q = u - 1/2`` (valid for ``|q| <= 0.425``)."""
    q = u - 0.5
    r = 0.180625 - q * q
    return q * (((((((r * 2509.0809287301226727 + 33430.575583588128105) * r
                     + 67265.770927008700853) * r + 45921.953931549871457) * r
                   + 13731.693765509461125) * r + 1971.5909503065514427) * r
                 + 133.14166789178437745) * r + 3.387132872796366608) \
        / (((((((r * 5226.495278852854561 + 28729.085735721942674) * r
                + 39307.89580009271061) * r + 21213.794301586595867) * r
              + 5394.1960214247511077) * r + 687.1870074920579083) * r
            + 42.313330701600911252) * r + 1.0)


@jit(inline="always")
def as241_tail(u):
    """AS 241 in the tails (``|u - 1/2| > 0.425``): ``Phi^-1(u)``."""
    # min(u, 1 - u) and copysign below are the branches of AS 241 as selects (1 - u is exact)
    r = np.sqrt(-np.log(min(u, 1.0 - u)))
    if r <= 5.0:
        r -= 1.6
        val = (((((((r * 7.7454501427834140764e-4 + 0.0227238449892691845833) * r
                    + 0.24178072517745061177) * r + 1.27045825245236838258) * r
                  + 3.64784832476320460504) * r + 5.7694972214606914055) * r
                + 4.6303378461565452959) * r + 1.42343711074968357734) \
            / (((((((r * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * r
                    + 0.0151986665636164571966) * r + 0.14810397642748007459) * r
                  + 0.68976733498510000455) * r + 1.6763848301838038494) * r
                + 2.05319162663775882187) * r + 1.0)
    else:
        r -= 5.0
        val = (((((((r * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * r
                    + 0.0012426609473880784386) * r + 0.026532189526576123093) * r
                  + 0.29656057182850489123) * r + 1.7848265399172913358) * r
                + 5.4637849111641143699) * r + 6.6579046435011037772) \
            / (((((((r * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * r
                    + 1.8463183175100546818e-5) * r + 7.868691311456132591e-4) * r
                  + 0.0148753612908506148525) * r + 0.13692988092273580531) * r
                + 0.59983220655588793769) * r + 1.0)
    return math.copysign(val, u - 0.5)      # val > 0 in the tails


@jit(inline="always")
def finish_normal(u, z_central):
    """``Phi^-1(u)`` given AS 241's central value ``z_central`` (used where it is valid)."""
    if abs(u - 0.5) <= CENTRAL_HALF_WIDTH:
        return z_central
    return as241_tail(u)


@jit(inline="always")
def std_normal_from_uniform(u):
    """Return the standard normal quantile ``Phi^-1(u)`` for ``0 < u < 1`` (AS 241, PPND16)."""
    return finish_normal(u, as241_central(u))


@jit
def std_normal_quantile(u):
    """:func:`std_normal_from_uniform` of every entry of ``u`` (n,) in (0, 1) (tests)."""
    out = np.empty(u.shape[0])
    for i in range(u.shape[0]):
        out[i] = std_normal_from_uniform(u[i])
    return out


@jit(inline="always")
def counter_words(array_index, step):
    """Counter words 1-3 of an update draw: ``(array_index, step mod 2**32, step // 2**32)``."""
    s = np.uint64(step)
    return np.uint64(array_index) & _MASK32, s & _MASK32, s >> _SHIFT32


@jit(inline="always")
def device_uniform(k0, k1, c1, c2, c3, device):
    """Uniform of device ``device`` (output ``device % 2`` of counter ``device // 2``).

    ``c1, c2, c3`` from :func:`counter_words`; branch-free, so loops over devices vectorise.
    """
    d = np.uint64(device)
    a, b, c, e = philox4x32((d >> np.uint64(1)) & _MASK32, c1, c2, c3, k0, k1, PHILOX_ROUNDS)
    odd = (d & np.uint64(1)) != np.uint64(0)
    return uniform52(c if odd else a, e if odd else b)


@jit(inline="always")
def fill_uniforms_and_central(k0, k1, array_index, step, pair_start, n_pairs, u, zc):
    """Uniforms and central normal values of ``n_pairs`` consecutive device pairs.

    Entries ``2 t`` and ``2 t + 1`` of ``u`` and ``zc`` (length >= ``2 n_pairs``) belong to
    devices ``2 (pair_start + t)`` and ``2 (pair_start + t) + 1`` of array ``array_index`` in
    update step ``step`` (the layout in the module docstring). Branch-free, so the loop
    vectorises; :func:`finish_normal` turns an entry into its normal.

    Parameters
    ----------
    k0, k1 : numpy.uint64
        Key words (< 2**32).
    array_index : int
        Array index, < 2**32.
    step : int
        Update step, < 2**64.
    pair_start, n_pairs : int
        First pair ``k // 2`` and number of pairs.
    u, zc : ndarray of float64
        Outputs.
    """
    c1 = np.uint64(array_index) & _MASK32
    s = np.uint64(step)
    c2 = s & _MASK32
    c3 = s >> _SHIFT32
    for t in range(n_pairs):
        a, b, c, d = philox4x32(np.uint64(pair_start + t) & _MASK32, c1, c2, c3, k0, k1,
                                PHILOX_ROUNDS)
        u[2 * t] = uniform52(a, b)
        u[2 * t + 1] = uniform52(c, d)
    for t in range(2 * n_pairs):
        zc[t] = as241_central(u[t])


@jit
def keyed_normals(k0, k1, step, array_index, n):
    """Return the standard normals of devices ``0 .. n-1`` of one array in one update step.

    Parameters
    ----------
    k0, k1 : int
        Key words (< 2**32): the tile's update key.
    step : int
        Update step (>= 0, < 2**64).
    array_index : int
        Array index (>= 0, < 2**32).
    n : int
        Number of devices (< 2**33).

    Returns
    -------
    ndarray of shape (n,)
        ``z[k]`` is the normal of device ``k`` (the layout in the module docstring), exactly
        the value the update kernels use.
    """
    n_pairs = (n + 1) // 2
    u = np.empty(2 * n_pairs)
    zc = np.empty(2 * n_pairs)
    fill_uniforms_and_central(np.uint64(k0) & _MASK32, np.uint64(k1) & _MASK32, array_index,
                              step, 0, n_pairs, u, zc)
    out = np.empty(n)
    for k in range(n):
        out[k] = finish_normal(u[k], zc[k])
    return out
