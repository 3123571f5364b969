"""Counter-based generator of the device update: Philox4x32 known answers, uniforms, normals.

Known-answer vectors: Random123 (D. E. Shaw Research), file ``tests/kat_vectors``, the
``philox4x32 7`` and ``philox4x32 10`` lines (counter words, key words, expected output words,
all hex). The same file's ``philox4x64 10`` line for a zero key and counter,
``16554d9eca36314c db20fe9d672d0fdc d7e772cee186176b 7e68b68aec7ba23b``, is what NumPy's own
``np.random.Philox`` (Philox4x64-10) produces for that key and counter, which ties the file to
an independent implementation (checked below).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import special, stats

from xbarsim.kernels import philox as P

# Random123 tests/kat_vectors, "philox4x32" lines: rounds, counter words, key words, expected
KAT_4X32 = [
    "7 00000000 00000000 00000000 00000000 00000000 00000000 "
    "5f6fb709 0d893f64 4f121f81 4f730a48",
    "7 ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff "
    "5207ddc2 45165e59 4d8ee751 8c52f662",
    "7 243f6a88 85a308d3 13198a2e 03707344 a4093822 299f31d0 "
    "4dfccaba 190a87f0 c47362ba b6b5242a",
    "10 00000000 00000000 00000000 00000000 00000000 00000000 "
    "6627e8d5 e169c58d bc57ac4c 9b00dbd8",
    "10 ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff "
    "408f276d 41c83b0e a20bc7c6 6d5451fd",
    "10 243f6a88 85a308d3 13198a2e 03707344 a4093822 299f31d0 "
    "d16cfe09 94fdcceb 5001e420 24126ea1",
]

ALPHA = 0.01
"""Significance level of the statistical tests (fixed seeds: each outcome is deterministic)."""

MASK32 = 0xFFFFFFFF


def philox_reference(ctr, key, rounds):
    """Philox4x32 in Python integers, transcribed from Salmon et al. (SC'11) / Random123."""
    c = list(ctr)
    k0, k1 = key
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & MASK32, (k1 + 0xBB67AE85) & MASK32
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & MASK32, (p0 >> 32) ^ c[3] ^ k1, p0 & MASK32]
    return c


@pytest.mark.parametrize("line", KAT_4X32)
def test_philox4x32_known_answers(line):
    rounds, *words = line.split()
    ctr, key, want = [int(w, 16) for w in words[:4]], [int(w, 16) for w in words[4:6]], \
        [int(w, 16) for w in words[6:]]
    got = P.philox4x32_words(np.array([ctr], dtype=np.uint64), np.array(key, dtype=np.uint64),
                             int(rounds))
    assert [int(w) for w in got[0]] == want
    assert philox_reference(ctr, key, int(rounds)) == want


def test_kat_file_agrees_with_numpy_philox4x64():
    # NumPy increments the counter before each block: start at 2**256 - 1 to get counter 0
    bg = np.random.Philox(key=0, counter=np.full(4, 2**64 - 1, dtype=np.uint64))
    assert [int(x) for x in bg.random_raw(4)] == [0x16554D9ECA36314C, 0xDB20FE9D672D0FDC,
                                                  0xD7E772CEE186176B, 0x7E68B68AEC7BA23B]


@given(ctr=st.lists(st.integers(0, MASK32), min_size=4, max_size=4),
       key=st.lists(st.integers(0, MASK32), min_size=2, max_size=2))
def test_philox4x32_10_equals_python_reference(ctr, key):
    got = P.philox4x32_words(np.array([ctr], dtype=np.uint64), np.array(key, dtype=np.uint64),
                             P.PHILOX_ROUNDS)
    assert [int(w) for w in got[0]] == philox_reference(ctr, key, 10)


def test_uniforms_are_inside_the_unit_interval_and_symmetric():
    words = np.array([[0, 0], [MASK32, MASK32], [0x80000000, 0], [0x7FFFFFFF, MASK32]],
                     dtype=np.uint64)
    u = np.array([P.uniform52.py_func(np.uint64(a), np.uint64(b)) for a, b in words])
    assert u[0] == 2.0**-53 and u[1] == 1 - 2.0**-53
    assert u[2] == 0.5 + 2.0**-53 and u[3] == 0.5 - 2.0**-53
    assert np.all((u > 0) & (u < 1))


def test_normal_quantile_matches_scipy_ndtri_including_tails():
    # AS 241 is accurate to about 1e-16 relative; ndtri (Cephes) to about the same
    rng = np.random.default_rng(5)
    u = np.concatenate([rng.uniform(0, 1, 200_000), 10.0 ** -rng.uniform(1, 15.9, 20_000),
                        [2.0**-53, 1 - 2.0**-53, 0.075, 0.925, 0.5 - 0.425, 0.5 + 0.425,
                         np.exp(-25.0), 1e-300]])
    u = np.concatenate([u, 1 - u[u > 0.5e-15]])
    got, want = P.std_normal_quantile(u), special.ndtri(u)
    assert np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))) < 1e-14
    assert np.all(np.diff(P.std_normal_quantile(np.sort(u))) >= 0)     # monotone
    assert P.std_normal_quantile(np.array([0.5]))[0] == 0.0


def test_keyed_normals_are_standard_normal_ks():
    z = P.keyed_normals(0x12345678, 0x9ABCDEF0, 7, 3, 200_001)
    assert stats.kstest(z, "norm").pvalue > ALPHA
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert abs(z.var() - 1) < 4 * np.sqrt(2 / z.size)


@pytest.mark.parametrize("neighbour", ["device", "array", "step", "key", "step_high"])
def test_keyed_normals_of_adjacent_keys_and_counters_are_independent(neighbour):
    n = 100_000
    base = dict(k0=11, k1=22, step=2**32 - 1, array_index=5)
    other = dict(base)
    if neighbour == "array":
        other["array_index"] += 1
    elif neighbour == "step":
        other["step"] += 1            # carries into the high counter word
    elif neighbour == "step_high":
        other["step"] += 2**32
    elif neighbour == "key":
        other["k0"] += 1
    z1 = P.keyed_normals(base["k0"], base["k1"], base["step"], base["array_index"], n + 1)
    if neighbour == "device":          # device k against device k + 1 (shared Philox call)
        z1, z2 = z1[:-1], z1[1:]
    else:
        z1 = z1[:-1]
        z2 = P.keyed_normals(other["k0"], other["k1"], other["step"], other["array_index"], n)
    assert not np.array_equal(z1, z2)
    # independent standard normals: (z1 +- z2) / sqrt(2) are standard normal, correlation ~ 0
    assert stats.kstest((z1 + z2) / np.sqrt(2), "norm").pvalue > ALPHA
    assert stats.kstest((z1 - z2) / np.sqrt(2), "norm").pvalue > ALPHA
    assert abs(stats.pearsonr(z1, z2).statistic) < 4 / np.sqrt(n)
    assert abs(stats.spearmanr(z1, z2).statistic) < 4 / np.sqrt(n)


def test_device_uniform_equals_the_pairwise_fill():
    # one device at a time (any order) gives the numbers of the pairwise fill, and a prefix
    # of the devices (odd length: a half-used pair) the same numbers as the whole array
    n = 101
    k0, k1 = np.uint64(3), np.uint64(4)
    c1, c2, c3 = P.counter_words(9, 2**40 + 3)
    single = np.array([P.device_uniform(k0, k1, c1, c2, c3, k) for k in range(n)])
    z = P.keyed_normals(3, 4, 2**40 + 3, 9, n)
    np.testing.assert_array_equal(z, P.std_normal_quantile(single))
    np.testing.assert_array_equal(P.keyed_normals(3, 4, 2**40 + 3, 9, 37), z[:37])
    assert np.all((single > 0) & (single < 1))
