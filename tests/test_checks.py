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
