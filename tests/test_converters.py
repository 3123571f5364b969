"""DAC / ADC and input bit streaming (docs/physics.md, 'Converters')."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from xbarsim.hardware.converters import (
    ADC,
    CONVERTERS,
    DAC,
    NONLINEARITIES,
    load_transfer_table,
    stream_inputs,
)
from xbarsim.kernels import quantize as K
from xbarsim.testing import TOL

I_MAX = 3e-5  # [A]

bits_st = st.one_of(st.none(), st.integers(1, 12))
curve_st = st.sampled_from([("none", None), ("bow", 0.7), ("bow", -1.0), ("tanh", 2.0),
                            ("lut", None)])
TABLE = (np.array([0.0, 0.2, 0.5, 1.0]), np.array([0.0, 0.3, 0.5, 1.0]))


def make_adc(bits, curve=("none", None), **kw):
    kind, param = curve
    if bits is None:
        kind, param = "none", None
    extra = {"bow": {"bow": param}, "tanh": {"tanh_beta": param},
             "lut": {"lut": TABLE}}.get(kind, {})
    return ADC(bits, I_MAX, nonlinearity=kind, **extra, **kw)


def currents(seed, n, bipolar):
    gen = np.random.default_rng(seed)
    lo = -1.5 * I_MAX if bipolar else -0.2 * I_MAX
    return gen.uniform(lo, 1.5 * I_MAX, n)


# ---------------------------------------------------------------- ADC properties (hypothesis)
@given(bits=bits_st, bipolar=st.booleans(), seed=st.integers(0, 2**32 - 1),
       n=st.integers(1, 200))
def test_adc_idempotent(bits, bipolar, seed, n):
    adc = make_adc(bits, bipolar=bipolar)
    once = adc(currents(seed, n, bipolar))
    assert_array_equal(adc(once), once)


@given(bits=bits_st, curve=curve_st, bipolar=st.booleans(), seed=st.integers(0, 2**32 - 1),
       n=st.integers(2, 200))
def test_adc_monotone_and_in_range(bits, curve, bipolar, seed, n):
    adc = make_adc(bits, curve, bipolar=bipolar)
    x = np.sort(currents(seed, n, bipolar))
    y = adc(x)
    assert np.all(np.diff(y) >= 0)
    if bits is not None:
        lo = -I_MAX if bipolar else 0.0
        assert np.all(y >= lo) and np.all(y <= I_MAX)
        # outputs on the code grid
        codes = y / I_MAX * (2**bits - 1)
        assert_allclose(codes, np.rint(codes), rtol=0, atol=1e-9)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 100), bipolar=st.booleans())
def test_bits_none_is_identity(seed, n, bipolar):
    x = currents(seed, n, bipolar)
    assert_array_equal(ADC(None)(x), x)
    assert_array_equal(ADC(None, I_MAX, bipolar=bipolar)(x), x)
    u = np.random.default_rng(seed).uniform(0, 1, n)
    assert_array_equal(DAC(None, v_max=1.0)(u), u)
    assert_allclose(DAC(None, v_max=0.2)(u), 0.2 * u, rtol=1e-15)


def test_adc_quantisation_error_at_most_half_lsb(rng):
    adc = ADC(6, I_MAX)
    x = rng.uniform(0, I_MAX, 10_000)
    err = np.abs(adc(x) - x)
    assert err.max() <= 0.5 * adc.lsb * (1 + 1e-12)
    assert err.max() > 0.45 * adc.lsb  # the bound is attained, so the test can fail


# ---------------------------------------------------------------- ADC calibration
def test_calibration_running_max_then_frozen_by_window():
    adc = ADC(8, calibration_window=3)
    assert adc.calibrating and adc.i_max is None
    adc(np.array([1e-6, 2e-6]))
    adc(np.array([5e-6, -9e-6]))  # unipolar: negative currents do not set the range
    assert adc.i_max == 5e-6 and adc.calibrating
    adc(np.array([4e-6]))
    assert not adc.calibrating and adc.n_calibration_calls == 3
    out = adc(np.array([1.0, 3e-6]))  # a huge current after freezing: clipped, range unchanged
    assert adc.i_max == 5e-6
    assert out[0] == 5e-6
    adc.calibrate(np.array([1.0]))
    assert adc.i_max == 5e-6


def test_calibration_explicit_freeze_and_percentile(rng):
    adc = ADC(8, calibration="percentile", percentile=99.0, bipolar=True)
    x = rng.standard_normal(100_000) * 1e-6
    adc.calibrate(x)
    assert adc.i_max == pytest.approx(np.percentile(np.abs(x), 99.0), rel=1e-12)
    assert adc.i_max < np.abs(x).max()
    adc.freeze()
    before = adc.i_max
    adc(100 * x)
    assert adc.i_max == before
    with pytest.raises(RuntimeError, match="freeze"):
        ADC(8).freeze()


def test_calibrating_adc_does_not_clip_with_running_max(rng):
    adc = ADC(10)
    x = rng.uniform(0, 1e-5, 1000)
    y = adc(x)
    assert adc.i_max == x.max()
    assert np.max(np.abs(y - x)) <= 0.5 * adc.lsb * (1 + 1e-12)


def test_conversion_without_calibrate_uses_the_present_range_and_changes_nothing():
    adc = ADC(8, calibration_window=10)
    with pytest.raises(RuntimeError, match="no range yet"):
        adc(np.array([1e-6]), calibrate=False)
    adc(np.array([2e-6]))
    out = adc(np.array([1e-6, 9e-6]), calibrate=False)    # clipped at the present range
    assert adc.i_max == 2e-6 and adc.n_calibration_calls == 1 and adc.calibrating
    assert out[1] == 2e-6
    adc(np.array([9e-6]))                                  # calibrate=True (default) widens
    assert adc.i_max == 9e-6 and adc.n_calibration_calls == 2


# ---------------------------------------------------------------- sense noise
def test_sense_noise_is_added_before_conversion(rng):
    noise = rng.standard_normal(50)
    x = rng.uniform(0, I_MAX, 50)
    assert_allclose(ADC(None, sense_noise=1e-7)(x, noise), x + 1e-7 * noise, rtol=1e-15)
    adc = ADC(8, I_MAX, sense_noise=1e-7)
    assert_array_equal(adc(x, noise), ADC(8, I_MAX)(x + 1e-7 * noise))
    with pytest.raises(ValueError, match="^noise"):
        adc(x)


# ---------------------------------------------------------------- DAC
@given(bits=st.integers(1, 10), seed=st.integers(0, 2**32 - 1), signed=st.sampled_from(
    [None, "two_pass", "twos_complement"]))
def test_dac_idempotent_monotone_in_range(bits, seed, signed):
    dac = DAC(bits, v_max=1.0, signed=signed)
    lo = -1.0 if signed else 0.0
    x = np.sort(np.random.default_rng(seed).uniform(lo - 0.2, 1.2, 100))
    v = dac(x)
    assert_array_equal(dac(v), v)  # v_max = 1: volts are normalised codes
    assert np.all(np.diff(v) >= 0)
    assert np.all(v >= lo) and np.all(v <= 1.0)
    codes = np.abs(v) * (2**bits - 1)
    assert_array_equal(codes, np.rint(codes))


def test_one_bit_dac_txsim():
    dac = DAC(1, v_max=1.0)
    assert_array_equal(dac(np.array([0.0, 0.49, 0.51, 1.0, 2.0, -1.0])),
                       [0.0, 0.0, 1.0, 1.0, 1.0, 0.0])


def test_dac_bow_curve_matches_formula():
    dac = DAC(3, v_max=0.5, nonlinearity="bow", bow=0.4)
    x = np.linspace(0, 1, 8)  # exactly the 3-bit codes
    u = np.rint(x * 7) / 7
    assert_allclose(dac(x), 0.5 * (u + 0.4 * u * (1 - u)), rtol=1e-15)


def test_dac_table_from_csv_and_yaml(tmp_path):
    csv = tmp_path / "dac.csv"
    csv.write_text("# measured DAC\nu,f\n0, 0\n0.5, 0.6\n1.0, 1.0\n")
    yml = tmp_path / "dac.yaml"
    yml.write_text("u: [0.0, 0.5, 1.0]\nf: [0.0, 0.6, 1.0]\n")
    x = np.linspace(0, 1, 11)
    want = np.interp(x, [0, 0.5, 1], [0, 0.6, 1])
    for path in (csv, yml):
        dac = DAC(12, v_max=1.0, nonlinearity="lut", lut=path)
        u = np.rint(x * 4095) / 4095
        assert_allclose(dac(x), np.interp(u, [0, 0.5, 1], [0, 0.6, 1]), rtol=1e-14)
        assert_allclose(dac(x), want, atol=1e-3)
        assert_array_equal(load_transfer_table(path)[1], [0.0, 0.6, 1.0])


@pytest.mark.parametrize(("content", "suffix", "match"), [
    ("u,f\n0,0\n0.5,0.7\n0.6,0.4\n1,1\n", ".csv", "not monotone"),
    ("u: [0.0, 0.5, 0.4, 1.0]\nf: [0.0, 0.1, 0.2, 1.0]\n", ".yaml", "strictly increasing"),
    ("u: [0.0, 1.0]\nf: [0.0, 1e-3]\n", ".yaml", "numbers"),
    ("u,f\n0,0\n0.9,1\n", ".csv", r"span \[0, 1\]"),
    ("0,0\n1,1\n", ".txt", "format"),
])
def test_bad_table_names_the_file(tmp_path, content, suffix, match):
    path = tmp_path / f"curve{suffix}"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        DAC(4, nonlinearity="lut", lut=path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- kernels vs references
def ref_adc(x, full, n, bipolar, f):
    u = np.clip(x / full, -1.0 if bipolar else 0.0, 1.0)
    return np.sign(u) * np.rint(n * f(np.abs(u))) / n


@pytest.mark.parametrize("kind", sorted(NONLINEARITIES))
@pytest.mark.parametrize("bipolar", [False, True])
def test_convert_kernels_match_reference_and_py_func(kind, bipolar, rng):
    param = {"none": 0.0, "bow": 0.3, "tanh": 1.5, "lut": 0.0}[kind]
    tx, ty = TABLE if kind == "lut" else (np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    f = {"none": lambda u: u, "bow": lambda u: u + 0.3 * u * (1 - u),
         "tanh": lambda u: np.tanh(1.5 * u) / np.tanh(1.5),
         "lut": lambda u: np.interp(u, tx, ty)}[kind]
    code = NONLINEARITIES[kind]
    x = rng.uniform(-1.3 * I_MAX, 1.3 * I_MAX, 500)
    got = K.adc_convert(x, I_MAX, 255, bipolar, code, param, tx, ty)
    assert_array_equal(got, K.adc_convert.py_func(x, I_MAX, 255, bipolar, code, param, tx, ty))
    assert_allclose(got, ref_adc(x, I_MAX, 255, bipolar, f), rtol=TOL.kernel_rtol, atol=0)
    u = x / I_MAX
    got = K.dac_convert(u, 15, bipolar, code, param, tx, ty)
    assert_array_equal(got, K.dac_convert.py_func(u, 15, bipolar, code, param, tx, ty))
    uc = np.clip(u, -1.0 if bipolar else 0.0, 1.0)
    want = np.sign(uc) * f(np.rint(np.abs(uc) * 15) / 15)
    assert_allclose(got, want, rtol=TOL.kernel_rtol, atol=1e-15)


@pytest.mark.parametrize("n_steps", [255, 0])
@pytest.mark.parametrize("bipolar", [False, True])
def test_linear_adc_fast_path_is_bitwise_the_general_loop(bipolar, n_steps, rng):
    """``adc_convert``'s written-out linear curve against the general per-element chain."""
    x = np.concatenate([rng.uniform(-1.3 * I_MAX, 1.3 * I_MAX, 300),
                        I_MAX * np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5 / 255, 1e-300,
                                          np.nan, -np.nan, np.inf, -np.inf])])
    unit = (np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    want = np.empty_like(x)
    for k, xk in enumerate(x):                       # the general loop of adc_convert
        u, sign = xk * (1.0 / I_MAX), 1.0
        if u < 0.0:
            sign, u = (-1.0, -u) if bipolar else (1.0, 0.0)
        u = min(u, 1.0) if u > 1.0 else u
        want[k] = sign * K.quantize_scalar.py_func(
            K.transfer_scalar.py_func(u, NONLINEARITIES["none"], 0.0, *unit), n_steps)
    for kernel in (K.adc_convert, K.adc_convert.py_func):
        got = kernel(x, I_MAX, n_steps, bipolar, NONLINEARITIES["none"], 0.0, *unit)
        assert got.tobytes() == want.tobytes()       # bitwise, signed zeros and NaNs included


def test_kernels_do_not_use_fastmath():
    for name in ("interp_scalar", "transfer_scalar", "quantize_scalar", "adc_convert",
                 "dac_convert"):
        assert getattr(K, name).targetoptions.get("fastmath") in (None, False), name


# ---------------------------------------------------------------- bit streaming
def streamed_reference(x, b, signed):
    """Quantised input of the bit streaming: integers q and scale."""
    if signed is None:
        scale = 2**b - 1
        return np.rint(np.clip(x, 0, 1) * scale), scale
    scale = 2 ** (b - 1) - 1
    return np.rint(np.clip(x, -1, 1) * scale), scale


@given(input_bits=st.integers(2, 32), dac_bits=st.integers(1, 8),
       signed=st.sampled_from([None, "two_pass", "twos_complement"]),
       seed=st.integers(0, 2**32 - 1), n=st.integers(1, 50))
def test_streaming_recombines_exactly(input_bits, dac_bits, signed, seed, n):
    gen = np.random.default_rng(seed)
    x = gen.uniform(-1.1 if signed else -0.1, 1.1, n)
    plan = stream_inputs(x, input_bits, dac_bits, signed)
    q, scale = streamed_reference(x, input_bits, signed)
    assert plan.scale == scale
    assert_array_equal(plan.integer_value(), q)  # exact integer shift-and-add
    assert np.all((plan.codes >= 0) & (plan.codes <= 2**dac_bits - 1))
    assert_array_equal(plan.codes, np.rint(plan.codes))
    assert_allclose(plan.value(), q / scale, rtol=1e-15)
    # through a linear crossbar without ADC: shift-and-add of plane products == x_q @ g
    g = gen.uniform(1e-6, 1e-5, (n, 3))
    y = plan.recombine(plan.dac_inputs @ g)
    want = (q / scale) @ g
    # error bound: summation of n products per plane plus n_planes shifted terms, scale-aware
    # (two's complement planes cancel, so the bound uses sum_s |w_s| (|u_s| @ |g|))
    mag = np.tensordot(np.abs(plan.plane_weights), plan.dac_inputs @ g, axes=1)
    bound = 8 * (n + plan.n_planes) * np.finfo(float).eps * mag
    assert np.all(np.abs(y - want) <= bound)


def test_twos_complement_one_bit_planes_are_pumas():
    plan = stream_inputs(np.array([-1.0, 0.5]), 8, 1, "twos_complement")
    assert_array_equal(plan.shifts, [1, 2, 4, 8, 16, 32, 64, -128])
    # -127 = 0b10000001 in 8-bit two's complement; round(0.5 * 127) = 64 = 0b01000000
    assert_array_equal(plan.codes[:, 0], [1, 0, 0, 0, 0, 0, 0, 1])
    assert_array_equal(plan.codes[:, 1], [0, 0, 0, 0, 0, 0, 1, 0])


def test_two_pass_and_twos_complement_agree(rng):
    x = rng.uniform(-1, 1, 100)
    a = stream_inputs(x, 9, 2, "two_pass")
    b = stream_inputs(x, 9, 2, "twos_complement")
    assert_array_equal(a.integer_value(), b.integer_value())
    assert a.n_planes == 8 and b.n_planes == 5  # 2 x ceil(8/2) vs ceil(8/2) + sign plane


def test_dac_drive_of_streamed_planes(rng):
    dac = DAC(2, v_max=0.25, signed="two_pass")
    x = rng.uniform(-1, 1, (4, 16))  # (batch, n_rows)
    plan = dac.stream(x, 8)
    volts = dac.drive(plan)  # (n_planes, batch, n_rows)
    assert volts.shape == (plan.n_planes, 4, 16)
    g = rng.uniform(1e-6, 1e-5, (16, 5))
    y = plan.recombine(volts @ g) / dac.v_max
    assert_allclose(y, plan.value() @ g, rtol=1e-12)
    # ideal DAC streaming: one plane per sign
    ideal = stream_inputs(x, 8, None, "two_pass")
    assert_allclose(ideal.recombine(ideal.dac_inputs @ g), np.clip(x, -1, 1) @ g, rtol=1e-13)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(("factory", "name"), [
    (lambda: ADC(0), "bits"),
    (lambda: DAC(0), "bits"),
    (lambda: DAC(4, v_max=0.0), "v_max"),
    (lambda: ADC(8, -1.0), "i_max"),
    (lambda: ADC(8, sense_noise=-1e-9), "sense_noise"),
    (lambda: ADC(8, nonlinearity="cubic"), "nonlinearity"),
    (lambda: ADC(8, nonlinearity="bow", bow=1.5), "bow"),
    (lambda: ADC(8, nonlinearity="tanh", tanh_beta=0.0), "tanh_beta"),
    (lambda: ADC(8, nonlinearity="tanh", tanh_beta=-1.0), "tanh_beta"),
    (lambda: ADC(8, nonlinearity="lut"), "lut"),
    (lambda: ADC(8, lut=TABLE), "lut"),
    (lambda: ADC(None, nonlinearity="bow", bow=0.1), "nonlinearity"),
    (lambda: ADC(8, calibration="ema"), "calibration"),
    (lambda: ADC(8, calibration="percentile", percentile=101.0), "percentile"),
    (lambda: ADC(8, calibration_window=0), "calibration_window"),
    (lambda: DAC(None, signed="twos_complement"), "signed"),
    (lambda: DAC(2, signed="ones_complement"), "signed"),
    (lambda: DAC(2, nonlinearity="lut", lut=(TABLE[0], TABLE[1][::-1])), "lut"),
    (lambda: stream_inputs(np.zeros(3), 1, 1, "two_pass"), "input_bits"),
    (lambda: stream_inputs(np.zeros(3), 60, 1), "input_bits"),
])
def test_impossible_configuration_names_the_setting(factory, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        factory()


def test_registry():
    assert CONVERTERS == {"dac": DAC, "adc": ADC}
    assert set(NONLINEARITIES) == {"none", "bow", "tanh", "lut"}
