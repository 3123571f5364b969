"""Devices and update kernels (docs/physics.md): invariants, worked numbers, statistics, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats

from xbarsim.hardware.device import (
    UPDATE_MODELS,
    Device,
    neurosim_nl_from_v,
    neurosim_v_from_nl,
)
from xbarsim.kernels import update as K
from xbarsim.testing import TOL

G_MIN, G_MAX = 1e-6, 1e-5  # TxSim: R_min = 100 kOhm, R_max = 1 MOhm
R = G_MAX - G_MIN
EPS = np.finfo(np.float64).eps
# rounding floor in conductance units for kernel-vs-reference comparisons [S]
ATOL_G = 64 * EPS * G_MAX

MODEL_NL = {"txsim": 2.0, "txsim_printed": 2.0, "linear": 0.0, "neurosim": 2.0,
            "soft_bounds": 0.0}


def make(model: str = "txsim", **kw) -> Device:
    if model == "neurosim":
        kw.setdefault("nl_label", kw.pop("nl", MODEL_NL[model]) or None)
    else:
        kw.setdefault("nl", MODEL_NL[model])
    return Device(g_min=G_MIN, g_max=G_MAX, update_model=model, **kw)


def random_state(seed: int, shape, spread: float = 1.0):
    gen = np.random.default_rng(seed)
    g = gen.uniform(G_MIN, G_MAX, shape)
    dg = gen.uniform(-spread * R, spread * R, shape)
    return gen, g, dg


# ---------------------------------------------------------------- slow references (docs)
def ref_response(model: str, g, dg, v, g_min=G_MIN, g_max=G_MAX):
    """Direct transcription of the update models of docs/physics.md, 'Device updates'."""
    r = g_max - g_min
    delta = dg / r
    if model == "linear" or (np.all(v == 0) and model != "soft_bounds"):
        return dg.copy()
    if model == "soft_bounds":
        up = (g_max - g) * (1 - np.exp(-delta))
        down = -(g - g_min) * (1 - np.exp(delta))
        return np.where(dg > 0, up, np.where(dg < 0, down, 0.0))
    g0 = r / (1 - np.exp(-v))
    g_hi, g_lo = g_min + g0, g_max - g0
    up = (g_hi - g) * (1 - np.exp(-v * delta))
    if model in ("txsim", "neurosim"):
        down = -(g - g_lo) * (1 - np.exp(-v * np.abs(delta)))
    else:  # printed case 2: (G0 - G_max + G) (1 - e^{-v dG/R}) with dG < 0
        down = (g0 - g_max + g) * (1 - np.exp(-v * delta))
    return np.where(dg > 0, up, np.where(dg < 0, down, 0.0))


def ref_apply(model, g, dg, v, noise, gamma, write_noise="sqrt", c2c=0.0):
    dg_nl = ref_response(model, g, dg, v)
    if write_noise == "sqrt":
        # the 'sqrt' model (our reading [P], docs/physics.md), evaluated in G_max-normalised
        # units and converted back to S
        gn, dn, rn = g / G_MAX, dg / G_MAX, R / G_MAX
        sigma = G_MAX * (gamma / 100) * np.sqrt(rn * np.abs(dn))
        del gn
    else:
        sigma = G_MAX * gamma * math.sqrt(R / G_MAX) * np.abs(dg / G_MAX)
    sigma = np.sqrt(sigma**2 + (c2c * dg_nl) ** 2)
    out = np.clip(g + dg_nl + sigma * noise, G_MIN, G_MAX)
    return np.where(dg == 0, g, out)


# ---------------------------------------------------------------- invariants (hypothesis)
@given(model=st.sampled_from(sorted(UPDATE_MODELS)), seed=st.integers(0, 2**32 - 1),
       n=st.integers(1, 40), gamma=st.sampled_from([0.0, 5.0, 200.0]),
       spread=st.sampled_from([1e-3, 0.1, 2.0]))
def test_update_stays_in_range(model, seed, n, gamma, spread):
    dev = make(model, gamma=gamma, sigma_c2c=0.3)
    gen, g, dg = random_state(seed, (n,), spread)
    g_new = dev.apply_update(g, dg, dev.draw_noise(gen, g.shape))
    assert np.all(g_new >= G_MIN) and np.all(g_new <= G_MAX)


@given(model=st.sampled_from(sorted(UPDATE_MODELS)), seed=st.integers(0, 2**32 - 1),
       n=st.integers(1, 40))
def test_zero_request_changes_nothing_even_with_noise(model, seed, n):
    dev = make(model, gamma=50.0, sigma_c2c=0.5, write_noise="txsim_literal")
    gen, g, dg = random_state(seed, (n,))
    dg[::2] = 0.0
    g_new = dev.apply_update(g, dg, 10 * dev.draw_noise(gen, g.shape))
    assert_array_equal(g_new[::2], g[::2])  # bit-identical, noise suppressed
    assert dev.write_noise_std(np.zeros(3), np.zeros(3)).tolist() == [0.0, 0.0, 0.0]


@given(model=st.sampled_from(sorted(UPDATE_MODELS)), seed=st.integers(0, 2**32 - 1),
       n=st.integers(1, 40))
def test_direction_follows_sign(model, seed, n):
    dev = make(model)
    _, g, dg = random_state(seed, (n,))
    g_new = dev.apply_update(g, dg)
    inside = (g > G_MIN) & (g < G_MAX)
    assert np.all(np.sign(g_new - g)[inside] == np.sign(dg)[inside])


def test_nl_is_ignored_by_models_without_it():
    g, dg = np.full(3, 5e-6), np.array([1e-7, -1e-7, 0.0])
    assert_array_equal(make("linear", nl=0.7).apply_update(g, dg), g + dg)
    assert make("soft_bounds", nl=0.7).v == 0.0


def test_device_from_resistance_txsim_range():
    dev = Device.from_resistance(r_min=100e3, r_max=1e6)
    assert dev.g_min == pytest.approx(1e-6, rel=1e-15)
    assert dev.g_max == pytest.approx(1e-5, rel=1e-15)


# ---------------------------------------------------------------- limits and worked numbers
@pytest.mark.parametrize("model", ["txsim", "txsim_printed", "neurosim"])
def test_small_nonlinearity_gives_linear_device(model, rng):
    g = rng.uniform(G_MIN, G_MAX, 200)
    dg = rng.uniform(-0.3 * R, 0.3 * R, 200)
    lin = make("linear").nonlinear_response(g, dg)
    if model != "neurosim":  # NL label must be > 0
        assert_array_equal(make(model, nl=0.0).nonlinear_response(g, dg), lin)
    errors = []
    for nl in (1e-2, 1e-4, 1e-6, 1e-9):
        got = make(model, nl=nl).nonlinear_response(g, dg)
        errors.append(np.max(np.abs(got - lin)) / R)
    # first-order convergence: the error shrinks with v and is ~1e-9 at v = 1e-9
    assert all(b < a for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-8


@pytest.mark.parametrize("model", ["txsim", "neurosim", "soft_bounds", "linear"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_corrected_update_is_path_independent(model, sign):
    dev = make(model, nl=5.0 if model == "txsim" else MODEL_NL[model])
    g0 = np.array([G_MIN, 0.3 * G_MAX, 0.8 * G_MAX, G_MAX])
    total = sign * 0.9 * R
    once = dev.apply_update(g0, np.full(4, total))
    for n in (10, 1000):
        g = g0.copy()
        for _ in range(n):
            g = dev.apply_update(g, np.full(4, total / n))
        assert_allclose(g / G_MAX, once / G_MAX, rtol=0, atol=1e-12)


def test_corrected_full_range_step_lands_on_bound():
    # docs/physics.md, 'Device updates': delta = 1 at G_min lands exactly on G_max (and back)
    dev = make("txsim", nl=3.0)
    up = G_MIN + dev.nonlinear_response(np.array([G_MIN]), np.array([R]))
    down = G_MAX + dev.nonlinear_response(np.array([G_MAX]), np.array([-R]))
    assert_allclose(up, G_MAX, rtol=1e-14)
    assert_allclose(down, G_MIN, rtol=1e-13)


@pytest.mark.parametrize(("v", "expected"), [(0.1, 0.0535), (1.0, -14.46), (5.0, -1325.7)])
def test_printed_equation_overshoots_as_documented(v, expected):
    # docs/physics.md, 'Device updates': G in [1, 10], one full-range depression step from
    # G_max gives 0.05 (v=0.1), -14.5 (v=1), -1326 (v=5): below G_min, even negative
    dev = Device(g_min=1.0, g_max=10.0, update_model="txsim_printed", nl=v)
    g_new = 10.0 + dev.nonlinear_response(np.array([10.0]), np.array([-9.0]))[0]
    assert g_new == pytest.approx(expected, rel=2e-3)
    assert g_new < 1.0
    # ... which apply_update clips to the range
    assert dev.apply_update(np.array([10.0]), np.array([-9.0]))[0] == 1.0
    # the same change in 1000 steps ends near 1.0 (as documented)
    g = np.array([10.0])
    for _ in range(1000):
        g = g + dev.nonlinear_response(g, np.array([-9e-3]))
    assert g[0] == pytest.approx(1.0, abs=0.05)


def test_printed_equation_is_not_path_independent():
    dev = make("txsim_printed", nl=2.0)
    g0 = np.array([0.7 * G_MAX])
    once = dev.apply_update(g0, np.array([-0.3 * R]))
    g = g0.copy()
    for _ in range(100):
        g = dev.apply_update(g, np.array([-0.003 * R]))
    assert abs(g[0] - once[0]) / R > 1e-3  # the corrected model agrees to 1e-12 here
    # potentiation (case 1) is the same as the corrected model
    assert_allclose(dev.nonlinear_response(g0, np.array([0.3 * R])),
                    make("txsim", nl=2.0).nonlinear_response(g0, np.array([0.3 * R])),
                    rtol=TOL.kernel_rtol)


def test_soft_bounds_step_vanishes_at_the_bound_it_approaches():
    dev = make("soft_bounds")
    dg = dev.nonlinear_response(np.array([G_MAX, G_MIN, G_MIN, G_MAX]),
                                np.array([1e-7, -1e-7, 1e-9, -1e-9]))
    assert dg[0] == 0.0 and dg[1] == 0.0
    # at the opposite bound the first step is the full (linear) step
    assert_allclose(dg[2:], [1e-9, -1e-9], rtol=1e-3)


# ---------------------------------------------------------------- kernels vs references
@pytest.mark.parametrize("model", sorted(UPDATE_MODELS))
def test_nonlinear_response_kernel_matches_reference_and_py_func(model, rng):
    dev = make(model)
    g = rng.uniform(G_MIN, G_MAX, 300)
    dg = rng.uniform(-R, R, 300)
    dg[:5] = 0.0
    v = np.full(300, dev.v)
    sat = K.saturation(v)
    got = K.nonlinear_response(dev.model_code, g, dg, v, sat, G_MIN, G_MAX)
    py = K.nonlinear_response.py_func(dev.model_code, g, dg, v, sat, G_MIN, G_MAX)
    assert_allclose(got, py, rtol=TOL.kernel_rtol, atol=0)
    assert_allclose(got, ref_response(model, g, dg, dev.v), rtol=TOL.kernel_rtol, atol=ATOL_G)


@given(st.lists(st.floats(0.0, 50.0), min_size=1, max_size=20))
def test_saturation_is_one_minus_exp(v):
    v = np.array(v)
    sat = K.saturation(v)
    assert_array_equal(sat, [-math.expm1(-x) for x in v])      # what the kernels used inline
    assert_allclose(sat, -np.expm1(-v), rtol=1e-15, atol=0)


def test_device_keeps_v_and_saturation_per_shape():
    dev = make("txsim", nl=2.0)
    v, sat = dev._v_and_saturation((3, 4))
    assert dev._v_and_saturation((3, 4))[1] is sat               # computed once
    assert_array_equal(v, np.full(12, dev.v))
    assert not sat.flags.writeable
    assert dev._v_and_saturation((5,))[0].shape == (5,)


@pytest.mark.parametrize("write_noise", ["sqrt", "txsim_literal"])
@pytest.mark.parametrize("model", sorted(UPDATE_MODELS))
def test_apply_update_kernel_matches_reference_and_py_func(model, write_noise, rng):
    dev = make(model, gamma=5.0, write_noise=write_noise, sigma_c2c=0.1)
    g = rng.uniform(G_MIN, G_MAX, 300)
    dg = rng.uniform(-0.5 * R, 0.5 * R, 300)
    dg[:7] = 0.0
    noise = rng.standard_normal(300)
    v = np.full(300, dev.v)
    got = dev.apply_update(g, dg, noise)
    py = K.apply_update.py_func(dev.model_code, g, dg, v, K.saturation(v), noise, dev.params)
    assert_allclose(got, py, rtol=TOL.kernel_rtol, atol=0)
    want = ref_apply(model, g, dg, dev.v, noise, 5.0, write_noise, c2c=0.1)
    assert_allclose(got, want, rtol=TOL.kernel_rtol, atol=ATOL_G)


def test_quantize_levels_kernel(rng):
    g = rng.uniform(0.5 * G_MIN, 1.2 * G_MAX, 500)
    got = K.quantize_levels(g, G_MIN, G_MAX, 4)
    step = R / 3
    want = G_MIN + np.clip(np.floor((np.clip(g, G_MIN, G_MAX) - G_MIN) / step + 0.5), 0, 3) * step
    assert_allclose(got, want, rtol=TOL.kernel_rtol, atol=0)
    assert_array_equal(got, K.quantize_levels.py_func(g, G_MIN, G_MAX, 4))


def test_kernels_do_not_use_fastmath():
    for name in ("response_scalar", "pulsed_response_scalar", "nonlinear_response",
                 "apply_update", "quantize_levels"):
        assert getattr(K, name).targetoptions.get("fastmath") in (None, False), name


# ---------------------------------------------------------------- write noise statistics
@pytest.mark.parametrize("write_noise", ["sqrt", "txsim_literal"])
def test_write_noise_distribution_ks_and_std(write_noise):
    # 20000 devices at mid range, one update each; linear model so dg_nl == dg exactly.
    # KS test of the standardised residuals against N(0, 1), significance level 0.01.
    gen = np.random.default_rng(1234)
    n, gamma = 20_000, 5.0 if write_noise == "sqrt" else 0.05
    dev = make("linear", gamma=gamma, write_noise=write_noise)
    g = np.full(n, 0.5 * (G_MIN + G_MAX))
    dg = np.full(n, 0.01 * R)
    g_new = dev.apply_update(g, dg, dev.draw_noise(gen, g.shape))
    if write_noise == "sqrt":
        sigma = gamma / 100 * math.sqrt(R * 0.01 * R)  # (gamma/100) sqrt((Gmax-Gmin)|dG|)
    else:
        sigma = gamma * math.sqrt(R / G_MAX) * 0.01 * R  # gamma sqrt(R/Gmax) |dG| (normalised)
    assert np.all((g_new > G_MIN) & (g_new < G_MAX))  # no clipping distorts the sample
    resid = (g_new - g - dg) / sigma
    assert stats.kstest(resid, "norm").pvalue > 0.01
    # sample std within 3 % (its standard error is 1/sqrt(2n) = 0.5 %)
    assert np.std(g_new - g - dg) == pytest.approx(sigma, rel=0.03)
    assert dev.write_noise_std(dg)[0] == pytest.approx(sigma, rel=1e-12)


def test_write_noise_scales_with_sqrt_of_change():
    dev = make("linear", gamma=5.0)
    s = dev.write_noise_std(np.array([1e-9, 4e-9, -16e-9]))
    assert_allclose(s / s[0], [1.0, 2.0, 4.0], rtol=1e-12)


# ---------------------------------------------------------------- NeuroSim NL
def test_neurosim_nl_relation_by_brute_force():
    # max perpendicular distance of the normalised curve from the diagonal == 0.07 * NL
    x = np.linspace(0.0, 1.0, 200_001)
    for nl in (0.01, 0.5, 1.0, 2.4, 4.22, 9.0):
        v = neurosim_v_from_nl(nl)
        a_norm = 1.0 / v
        curve = (1 - np.exp(-x / a_norm)) / (1 - np.exp(-1 / a_norm))
        dist = np.max(curve - x) / math.sqrt(2)
        assert dist == pytest.approx(0.07 * nl, rel=1e-8)


@pytest.mark.parametrize(("v", "nl", "last_digit"), [
    (0.01, 0.013, 1e-3), (0.1, 0.13, 1e-2), (0.5, 0.63, 1e-2), (1.0, 1.25, 1e-2),
    (2.0, 2.40, 1e-2), (5.0, 4.89, 1e-2)])
def test_neurosim_correspondence_table(v, nl, last_digit):
    # the correspondence of docs/physics.md, 'Device updates': within 2 %, or within half a
    # unit of the last printed digit (0.0126 -> "0.013")
    tol = max(0.02 * nl, 0.5 * last_digit)
    assert neurosim_nl_from_v(v) == pytest.approx(nl, abs=tol)
    assert neurosim_v_from_nl(neurosim_nl_from_v(v)) == pytest.approx(v, rel=1e-10)


def test_neurosim_device_equals_txsim_with_converted_v(rng):
    g = rng.uniform(G_MIN, G_MAX, 50)
    dg = rng.uniform(-R, R, 50)
    ns = make("neurosim", nl_label=4.22)  # NeuroSim RealDevice default
    tx = make("txsim", nl=neurosim_v_from_nl(4.22))
    assert_array_equal(ns.apply_update(g, dg), tx.apply_update(g, dg))
    with pytest.raises(ValueError, match="nl"):
        neurosim_v_from_nl(10.2)


# ---------------------------------------------------------------- pulses
def test_pulse_quantisation_closed_form_equals_pulse_by_pulse():
    for model in ("txsim", "txsim_printed", "soft_bounds"):
        dev = make(model, nl=3.0 if "txsim" in model else 0.0, n_pulses_max=50)
        dp = R / 50
        for sign in (1.0, -1.0):
            g0 = np.array([0.4 * G_MAX, 0.9 * G_MAX])
            closed = dev.apply_update(g0, np.full(2, sign * 7.3 * dp))  # rounds to 7 pulses
            g = g0.copy()
            for _ in range(7):
                g = dev.apply_update(g, np.full(2, sign * dp))
            assert_allclose(closed, g, rtol=1e-12, atol=ATOL_G)
            assert_allclose(dev.step(g0, np.full(2, sign * 7)), closed, rtol=0, atol=0)


def test_pulse_rounding_threshold():
    dev = make("linear", dg_min=1e-8, gamma=5.0)
    g = np.full(4, 5e-6)
    g_new = dev.apply_update(g, np.array([0.49e-8, -0.49e-8, 0.51e-8, 2.6e-8]), np.ones(4))
    assert_array_equal(g_new[:2], g[:2])  # below half a pulse: nothing, no noise
    sigma1 = 0.05 * math.sqrt(R * 1e-8)
    assert_allclose(g_new[2:] - g[2:], [1e-8 + sigma1, 3e-8 + sigma1 * math.sqrt(3)],
                    rtol=1e-12)


# ---------------------------------------------------------------- precision, programming, variation
def test_program_rounds_to_levels():
    dev = Device(g_min=1e-6, g_max=1e-5, bits=2)  # levels 1, 4, 7, 10 uS
    got = dev.program(np.array([0.0, 2.4e-6, 2.6e-6, 6.9e-6, 9e-6, 1e-3]))
    assert_allclose(got, [1e-6, 1e-6, 4e-6, 7e-6, 1e-5, 1e-5], rtol=1e-14)
    assert Device(g_min=1e-6, g_max=1e-5, levels=4).level_step == pytest.approx(3e-6)


def test_program_error_uses_noise(rng):
    dev = Device(g_min=1e-6, g_max=1e-5, sigma_program=0.01)
    target = np.full(10_000, 5e-6)
    got = dev.program(target, dev.draw_noise(rng, target.shape))
    assert np.std(got - target) == pytest.approx(0.01 * R, rel=0.05)
    with pytest.raises(ValueError, match="noise"):
        dev.program(target)


def test_device_to_device_variation_is_drawn_once_and_reproducible():
    kw = dict(sigma_d2d=0.2, sigma_nl_d2d=0.3, shape=(8, 5), nl=1.0)
    a = make("txsim", rng=np.random.default_rng(7), **kw)
    b = make("txsim", rng=np.random.default_rng(7), **kw)
    c = make("txsim", rng=np.random.default_rng(8), **kw)
    assert_array_equal(a.step_gain, b.step_gain)
    assert not np.array_equal(a.step_gain, c.step_gain)
    assert np.all(a.step_gain >= 0) and np.all(a.v_device >= 0)
    g = np.full((8, 5), 5e-6)
    dg = np.full((8, 5), 1e-7)
    assert_array_equal(a.apply_update(g, dg), a.apply_update(g, dg))
    # each device follows the model with its own gain and v
    want = ref_response("txsim", g.ravel(), (dg * a.step_gain).ravel(), a.v_device.ravel())
    assert_allclose(a.apply_update(g, dg).ravel(), g.ravel() + want, rtol=1e-12, atol=ATOL_G)
    with pytest.raises(ValueError, match="g: expected shape"):
        a.apply_update(np.full((5, 8), 5e-6), dg.T)


@pytest.mark.parametrize("dist", ["normal", "lognormal"])
def test_process_variation_fixed_per_named_stream(dist):
    kw = dict(g_min=G_MIN, g_max=G_MAX, sigma_pv=0.1, pv_distribution=dist, pv_seed=3,
              shape=(200, 100))
    a = Device(pv_stream="layer1/pos", **kw)
    b = Device(pv_stream="layer1/pos", **kw)
    c = Device(pv_stream="layer1/neg", **kw)
    assert_array_equal(a.pv_factor, b.pv_factor)
    assert not np.array_equal(a.pv_factor, c.pv_factor)
    assert np.mean(a.pv_factor) == pytest.approx(1.0, abs=0.005)
    assert np.std(a.pv_factor) == pytest.approx(0.1, rel=0.05)
    g = a.program(np.full((200, 100), G_MAX))
    assert g.max() <= G_MAX * 1.3 and g.min() >= G_MIN * 0.7
    assert_array_equal(a.program(np.full((200, 100), G_MIN)),
                       np.clip(G_MIN * a.pv_factor, 0.7 * G_MIN, 1.3 * G_MAX))


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(r_min=1e6, r_max=1e5), "r_min"),
    (dict(r_min=1e5, r_max=1e5), "r_min"),
    (dict(r_min=-1.0, r_max=1e5), "r_min"),
])
def test_bad_resistance_range_raises(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Device.from_resistance(**kwargs)


@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(g_min=2e-5), "g_min"),
    (dict(bits=0), "bits"),
    (dict(levels=1), "levels"),
    (dict(bits=2, levels=4), "levels, bits"),
    (dict(gamma=-1.0), "gamma"),
    (dict(sigma_c2c=-0.1), "sigma_c2c"),
    (dict(sigma_d2d=-0.1), "sigma_d2d"),
    (dict(sigma_nl_d2d=-0.1), "sigma_nl_d2d"),
    (dict(sigma_pv=-0.1), "sigma_pv"),
    (dict(sigma_program=-0.1), "sigma_program"),
    (dict(nl=-1.0), "nl"),
    (dict(update_model="linear", nl_label=0.5), "nl_label"),
    (dict(update_model="neurosim"), "nl_label"),
    (dict(update_model="neurosim", nl_label=0.0), "nl_label"),
    (dict(update_model="quadratic"), "update_model"),
    (dict(write_noise="crosssim"), "write_noise"),
    (dict(pv_distribution="uniform"), "pv_distribution"),
    (dict(dg_min=0.0), "dg_min"),
    (dict(n_pulses_max=0), "n_pulses_max"),
    (dict(dg_min=1e-8, n_pulses_max=10), "dg_min, n_pulses_max"),
    (dict(sigma_d2d=0.1), "shape"),
    (dict(sigma_d2d=0.1, shape=(2, 2)), "rng"),
    (dict(sigma_pv=0.1, shape=(2, 2)), "pv_seed"),
    (dict(sigma_pv=0.5, shape=(2, 2), pv_seed=1), "sigma_pv"),
    (dict(update_model="neurosim", nl_label=11.0), "nl"),
])
def test_impossible_configuration_names_the_setting(kwargs, name):
    kw = dict(g_min=G_MIN, g_max=G_MAX)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=f"^{name}"):
        Device(**kw)


def test_call_errors_name_the_argument():
    dev = make("txsim", gamma=5.0)
    g = np.full(3, 5e-6)
    with pytest.raises(ValueError, match="^noise"):
        dev.apply_update(g, np.ones(3) * 1e-8)
    with pytest.raises(ValueError, match="^noise"):
        dev.apply_update(g, np.ones(3) * 1e-8, np.zeros(4))
    with pytest.raises(ValueError, match="^dg_request"):
        dev.apply_update(g, np.ones(4))
    with pytest.raises(ValueError, match="^dg_min"):
        dev.step(g, np.ones(3))
    with pytest.raises(AttributeError):
        dev.gamma = 1.0


def test_trusted_update_equals_checked_update():
    rng = np.random.default_rng(4)
    dev = Device(g_min=1e-6, g_max=1e-5, update_model="txsim", nl=0.7, gamma=5.0,
                 sigma_d2d=0.2, shape=(5, 6), rng=np.random.default_rng(1))
    g = rng.uniform(1e-6, 1e-5, (5, 6))
    dg = rng.uniform(-2e-6, 2e-6, (5, 6))
    xi = rng.standard_normal((5, 6))
    np.testing.assert_array_equal(dev.apply_update_trusted(g, dg, xi),
                                  dev.apply_update(g, dg, xi))
    quiet = Device(g_min=1e-6, g_max=1e-5, update_model="linear")
    np.testing.assert_array_equal(quiet.apply_update_trusted(g, dg, None),
                                  quiet.apply_update(g, dg))
