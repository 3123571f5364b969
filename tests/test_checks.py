"""Input validation: the two-reduction fast path of ``as_float_array`` against element scans."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xbarsim.checks import as_float_array

VALUES = st.sampled_from([0.0, -0.0, 1e-300, 2.5, -3.0, np.inf, -np.inf, np.nan])


@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                    elements=VALUES),
       rule=st.sampled_from(["any", "nonneg", "positive"]))
def test_as_float_array_accepts_exactly_what_element_scans_accept(x, rule):
    finite = bool(np.all(np.isfinite(x)))
    ok = x.size > 0 and finite and {
        "any": True, "nonneg": bool(np.all(x >= 0)), "positive": bool(np.all(x > 0))}[rule]
    kwargs = {"nonneg": rule == "nonneg", "positive": rule == "positive"}
    if ok:
        out = as_float_array("x", x, **kwargs)
        assert out.dtype == np.float64 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, x)
        return
    with pytest.raises(ValueError, match=r"^x: must") as info:
        as_float_array("x", x, **kwargs)
    if x.size and not finite:
        assert "finite" in str(info.value)
    elif x.size:
        assert (">= 0" if rule == "nonneg" else "> 0") in str(info.value)


@pytest.mark.parametrize(("value", "kwargs", "message"), [
    (0.0, {"positive": True}, r"w: must be > 0, got 0"),
    (-1.0, {"nonneg": True}, r"w: must be >= 0, got -1"),
    (float("nan"), {}, r"w: must be finite, got nan"),
    ([1.0, float("inf")], {}, r"w: must be finite, got inf at index \(1,\)"),
])
def test_as_float_array_messages_name_the_value_and_index(value, kwargs, message):
    with pytest.raises(ValueError, match=message):
        as_float_array("w", value, **kwargs)


# --------------------------------------------------------------------------- the public API
# Strings, complex numbers and booleans are not numbers: NumPy would parse "100", drop an
# imaginary part or read True as 1 without a word; the CLI's own option types refuse them.

def _public_calls():
    import xbarsim
    from xbarsim.config import HardwareConfig
    from xbarsim.hardware.tile import Tile

    g = np.full((3, 4), 1.0e-5)
    v = np.ones(3)

    def tile(**kw):
        return Tile(kw.pop("n_in", 3), kw.pop("n_out", 4), HardwareConfig(),
                    rng=np.random.default_rng(0), **kw)

    return {
        "effective_conductance": lambda **kw: xbarsim.effective_conductance(
            kw.pop("g", g), method="nodal", **kw),
        "sense_currents": lambda **kw: xbarsim.sense_currents(kw.pop("g", g), kw.pop("v", v),
                                                              **kw),
        "node_voltages": lambda **kw: xbarsim.node_voltages(kw.pop("g", g), kw.pop("v", v),
                                                            **kw),
        "Parasitics.build": lambda **kw: xbarsim.Parasitics.build(3, 4, **kw),
        "Tile": tile,
    }


BAD_ARGUMENTS = [
    # (function, keyword arguments, name in the message, what the message says)
    ("effective_conductance", {"r_source": "100"}, "r_source", "the string '100'"),
    ("effective_conductance", {"r_row": 1.0 + 0.5j}, "r_row", "complex"),
    ("effective_conductance", {"g": np.full((3, 4), 1.0e-5 + 1.0e-6j)}, "g", "complex"),
    ("effective_conductance", {"r_sense": True}, "r_sense", "booleans"),
    ("sense_currents", {"v": np.ones(3, dtype=complex)}, "v", "complex"),
    ("sense_currents", {"v": ["1.0", "1.0", "1.0"]}, "v", "strings"),
    ("sense_currents", {"r_col": "4.6"}, "r_col", "the string '4.6'"),
    ("node_voltages", {"r_source": [1.0, "2", 3.0]}, "r_source", "strings"),
    ("node_voltages", {"r_source": [1.0, None, 3.0]}, "r_source", "None"),
    ("node_voltages", {"g": np.full((3, 4), True)}, "g", "booleans"),
    ("Parasitics.build", {"r_source": "100"}, "r_source", "the string '100'"),
    ("Parasitics.build", {"r_sense": np.array([1, 2, 3, 4]) * 1j}, "r_sense", "complex"),
    ("Parasitics.build", {"r_row": np.float64(1.0) + 0j}, "r_row", "complex"),
    ("Tile", {"w_init": np.full((3, 4), 0.1 + 0.1j)}, "w", "complex"),
    ("Tile", {"w_init": np.full((3, 4), "0.1")}, "w", "strings"),
    ("Tile", {"n_in": "3"}, "tile shape", "integers"),
    ("Tile", {"n_out": 4.0}, "tile shape", "integers"),
]


@pytest.mark.parametrize("fn, kwargs, name, what", BAD_ARGUMENTS,
                         ids=[f"{f}-{next(iter(k))}-{w}" for f, k, _, w in BAD_ARGUMENTS])
def test_public_functions_refuse_non_real_arguments_by_name(fn, kwargs, name, what):
    call = _public_calls()[fn]
    with pytest.raises(TypeError, match=rf"^{name}: .*{what}") as info:
        call(**kwargs)
    assert isinstance(info.value, ValueError)  # callers catching ValueError still catch it


def test_real_numbers_of_any_numeric_type_are_still_accepted():
    calls = _public_calls()
    ref = calls["effective_conductance"](r_source=100.0, r_row=1.0)
    for r_source in (100, np.int32(100), np.float32(100.0), [100, 100, 100],
                     np.array([100, 100, 100], dtype=np.uint16)):
        np.testing.assert_array_equal(
            calls["effective_conductance"](r_source=r_source, r_row=1), ref)
    assert as_float_array("x", [np.float64(1.0), 2, 3.5]).tolist() == [1.0, 2.0, 3.5]


@pytest.mark.parametrize("shape, name, what", [
    (("3", 4), "n_rows", r"an integer >= 1, got '3' \(str\)"),
    ((3, 4.0), "n_cols", "an integer >= 1"),
    ((True, 4), "n_rows", "an integer >= 1"),
    ((0, 4), "n_rows", "an integer >= 1, got 0"),
])
def test_parasitics_build_names_a_bad_shape(shape, name, what):
    from xbarsim import Parasitics

    with pytest.raises(ValueError, match=rf"^{name}: expected {what}"):
        Parasitics.build(*shape, r_source=100.0)
