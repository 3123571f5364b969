"""Layers, kernels, losses and the optimizer: gradient checks and reference equivalence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from xbarsim.kernels.im2col import (
    col2im,
    col2im_into,
    im2col,
    im2col_into,
    maxpool_backward,
    maxpool_backward_into,
    maxpool_forward,
    maxpool_forward_into,
    nchw_to_rows,
    rows_to_nchw,
)
from xbarsim.nn import (
    ACTIVATIONS,
    SGD,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    ConstantLR,
    Conv2d,
    CosineLR,
    DigitalWeights,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    Identity,
    Linear,
    MaxPool2d,
    MSELoss,
    ReLU,
    ResidualBlock,
    Sigmoid,
    SoftmaxCrossEntropy,
    StepLR,
    Tanh,
    WeightBackend,
    make_schedule,
)
from xbarsim.testing import TOL, numerical_gradient

RTOL, ATOL = TOL.grad_rtol, TOL.grad_atol
seeds = st.integers(0, 2**32 - 1)


# --------------------------------------------------------------------------- slow references
def im2col_ref(x, kh, kw, stride, pad):
    """Loop im2col written from the documented layout (not from the kernel)."""
    b, c, h, w = x.shape
    xp = np.zeros((b, c, h + 2 * pad, w + 2 * pad))
    xp[:, :, pad:pad + h, pad:pad + w] = x
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (w + 2 * pad - kw) // stride + 1
    rows = []
    for n in range(b):
        for i in range(ho):
            for j in range(wo):
                patch = xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                rows.append(patch.reshape(-1))  # (c, kh, kw) order
    return np.array(rows)


def col2im_ref(cols, shape, kh, kw, stride, pad):
    b, c, h, w = shape
    xp = np.zeros((b, c, h + 2 * pad, w + 2 * pad))
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (w + 2 * pad - kw) // stride + 1
    r = 0
    for n in range(b):
        for i in range(ho):
            for j in range(wo):
                xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw] += \
                    cols[r].reshape(c, kh, kw)
                r += 1
    return xp[:, :, pad:pad + h, pad:pad + w]


def conv_direct(x, w4, bias, stride, pad):
    """Direct 6-loop-equivalent convolution; w4 of shape (c_in, kh, kw, c_out)."""
    b, c, h, w = x.shape
    _, kh, kw, co = w4.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (w + 2 * pad - kw) // stride + 1
    out = np.zeros((b, co, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("bcpq,cpqo->bo", patch, w4) + bias
    return out


# --------------------------------------------------------------------------- gradient helper
def grad_check(layer, x, rng, *, reset=None, params=True):
    """Compare layer.backward and every parameter grad with central differences of
    L = sum(forward(x) * R) for a random R."""
    reset = reset or (lambda: None)
    reset()
    y = layer.forward(x.copy())
    r = rng.standard_normal(y.shape)
    dx = layer.backward(r)
    analytic = {n: np.array(p.grad, copy=True) for n, p in layer.named_parameters()}

    def f_x(xx):
        reset()
        return float(np.sum(layer.forward(xx.copy()) * r))

    assert_allclose(dx, numerical_gradient(f_x, x.copy()), rtol=RTOL, atol=ATOL)
    if not params:
        return
    for name, p in layer.named_parameters():
        orig = np.array(p.data(), copy=True)

        def f_p(w, p=p):
            p.set_data(w)
            reset()
            return float(np.sum(layer.forward(x.copy()) * r))

        num = numerical_gradient(f_p, orig.copy())
        p.set_data(orig)
        assert_allclose(analytic[name], num, rtol=RTOL, atol=ATOL, err_msg=name)


# --------------------------------------------------------------------------- kernels
@given(seed=seeds, b=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 7),
       w=st.integers(1, 7), kh=st.integers(1, 3), kw=st.integers(1, 3),
       stride=st.integers(1, 3), pad=st.integers(0, 2))
def test_im2col_col2im_match_reference_and_py_func(seed, b, c, h, w, kh, kw, stride, pad):
    if h + 2 * pad < kh or w + 2 * pad < kw:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, c, h, w))
    ref = im2col_ref(x, kh, kw, stride, pad)
    assert_allclose(im2col(x, kh, kw, stride, pad), ref, rtol=0, atol=0)
    into = np.full(ref.shape, np.nan)              # every entry must be written
    im2col_into.py_func(x, kh, kw, stride, pad, into)
    assert_allclose(into, ref, rtol=0, atol=0)
    cols = rng.standard_normal(ref.shape)
    ref2 = col2im_ref(cols, x.shape, kh, kw, stride, pad)
    assert_allclose(col2im(cols, x.shape, kh, kw, stride, pad), ref2, rtol=TOL.kernel_rtol,
                    atol=1e-14)
    into2 = np.full(x.shape, np.nan)               # overwritten, not accumulated onto
    col2im_into.py_func(cols, kh, kw, stride, pad, into2)
    assert_allclose(into2, ref2, rtol=TOL.kernel_rtol, atol=1e-14)
    # adjointness: <im2col(x), C> == <x, col2im(C)>
    assert_allclose(np.sum(ref * cols), np.sum(x * ref2), rtol=1e-12, atol=1e-12)


@given(seed=seeds, b=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(2, 7),
       k=st.integers(1, 3), stride=st.integers(1, 3))
def test_maxpool_kernels_match_reference_and_py_func(seed, b, c, h, k, stride):
    if h < k:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, c, h, h + 1))
    ho, wo = (h - k) // stride + 1, (h + 1 - k) // stride + 1
    ref = np.empty((b, c, ho, wo))
    g = rng.standard_normal((b, c, ho, wo))
    dref = np.zeros_like(x)
    for n in range(b):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    win = x[n, ch, i * stride:i * stride + k, j * stride:j * stride + k]
                    ref[n, ch, i, j] = win.max()
                    p, q = np.unravel_index(np.argmax(win), win.shape)
                    dref[n, ch, i * stride + p, j * stride + q] += g[n, ch, i, j]
    y, arg = maxpool_forward(x, k, stride)
    assert_array_equal(y, ref)
    assert_allclose(maxpool_backward(g, arg, h, h + 1), dref, rtol=1e-12, atol=1e-14)
    y2, arg2 = np.full(ref.shape, np.nan), np.full(ref.shape, -1, dtype=np.int64)
    maxpool_forward_into.py_func(x, k, stride, y2, arg2)
    assert_array_equal(y2, ref)
    assert_array_equal(arg2, arg)
    dx = np.full(x.shape, np.nan)
    maxpool_backward_into.py_func(g, arg2, dx)
    assert_allclose(dx, dref, rtol=1e-12, atol=1e-14)


@given(seed=seeds, b=st.integers(1, 3), c=st.integers(1, 4), n_pix=st.integers(1, 9),
       bias=st.booleans())
def test_layout_kernels_match_numpy(seed, b, c, n_pix, bias):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((b * n_pix, c))
    bvec = rng.standard_normal(c) if bias else np.zeros(0)
    ref = y.reshape(b, n_pix, c).transpose(0, 2, 1) + (bvec[:, None] if bias else 0.0)
    for kernel in (rows_to_nchw, rows_to_nchw.py_func):
        out = np.full((b, c, n_pix), np.nan)
        kernel(y, bvec, out)
        assert_array_equal(out, ref)
    g = rng.standard_normal((b, c, n_pix))
    for kernel in (nchw_to_rows, nchw_to_rows.py_func):
        rows = np.full((b * n_pix, c), np.nan)
        kernel(g, rows)
        assert_array_equal(rows, g.transpose(0, 2, 1).reshape(-1, c))
        # adjoint pair: the layout change back and forth is the identity
        back = np.empty((b, c, n_pix))
        rows_to_nchw(rows, np.zeros(0), back)
        assert_array_equal(back, g)


def test_kernels_have_no_fastmath():
    for k in (im2col, col2im, maxpool_forward, maxpool_backward, im2col_into, col2im_into,
              maxpool_forward_into, maxpool_backward_into, rows_to_nchw, nchw_to_rows):
        assert k.targetoptions.get("fastmath") in (None, False)


# --------------------------------------------------------------------------- weighted layers
@given(seed=seeds, b=st.integers(1, 4), n_in=st.integers(1, 6), n_out=st.integers(1, 6),
       bias=st.booleans())
def test_linear_gradients(seed, b, n_in, n_out, bias):
    rng = np.random.default_rng(seed)
    layer = Linear(n_in, n_out, bias=bias, rng=rng)
    if bias:
        layer.bias.value[:] = rng.standard_normal(n_out)
    grad_check(layer, rng.standard_normal((b, n_in)), rng)


@given(seed=seeds, b=st.integers(1, 2), c_in=st.integers(1, 3), c_out=st.integers(1, 3),
       h=st.integers(3, 6), k=st.integers(1, 3), stride=st.integers(1, 2),
       pad=st.integers(0, 2))
def test_conv2d_gradients_and_direct_convolution(seed, b, c_in, c_out, h, k, stride, pad):
    rng = np.random.default_rng(seed)
    layer = Conv2d(c_in, c_out, k, stride=stride, padding=pad, rng=rng)
    layer.bias.value[:] = rng.standard_normal(c_out)
    x = rng.standard_normal((b, c_in, h, h + 1))
    w4 = layer.weight.data().reshape(c_in, k, k, c_out)  # documented (c, kh, kw) row order
    assert_allclose(layer.forward(x), conv_direct(x, w4, layer.bias.value, stride, pad),
                    rtol=1e-12, atol=1e-12)
    grad_check(layer, x, rng)


def test_conv2d_rectangular_kernel_layout(rng):
    layer = Conv2d(2, 3, (2, 3), stride=1, padding=1, rng=rng)
    x = rng.standard_normal((2, 2, 4, 5))
    w4 = layer.weight.data().reshape(2, 2, 3, 3)
    assert_allclose(layer.forward(x), conv_direct(x, w4, 0.0, 1, 1), rtol=1e-12, atol=1e-12)


def test_conv2d_rejects_bad_input(rng):
    layer = Conv2d(2, 3, 3, rng=rng)
    with pytest.raises(ValueError, match="expected 2 input channels"):
        layer.forward(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="smaller than"):
        layer.forward(np.zeros((1, 2, 2, 2)))
    with pytest.raises(ValueError, match="stride"):
        Conv2d(2, 3, 3, stride=0, rng=rng)


# --------------------------------------------------------------------------- parameter-free layers
@given(seed=seeds, b=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(2, 6),
       k=st.integers(1, 3), stride=st.integers(1, 3), kind=st.sampled_from(["max", "avg"]))
def test_pooling_gradients(seed, b, c, h, k, stride, kind):
    if h < k:
        return
    rng = np.random.default_rng(seed)
    layer = (MaxPool2d if kind == "max" else AvgPool2d)(k, stride)
    grad_check(layer, rng.standard_normal((b, c, h, h + 1)), rng)


def test_avgpool_and_global_pool_values(rng):
    x = rng.standard_normal((2, 3, 4, 6))
    assert_allclose(AvgPool2d(2).forward(x), x.reshape(2, 3, 2, 2, 3, 2).mean(axis=(3, 5)),
                    rtol=1e-12)
    gp = GlobalAvgPool2d()
    assert_allclose(gp.forward(x), x.mean(axis=(2, 3)), rtol=1e-12)
    grad_check(gp, x, rng)


@given(seed=seeds, shape=st.lists(st.integers(1, 4), min_size=2, max_size=4),
       name=st.sampled_from(sorted(ACTIVATIONS)))
def test_activation_gradients(seed, shape, name):
    rng = np.random.default_rng(seed)
    grad_check(ACTIVATIONS[name](), rng.standard_normal(shape) * 2, rng)


def test_activation_values():
    x = np.array([[-2.0, 0.0, 3.0]])
    assert_array_equal(ReLU().forward(x), [[0.0, 0.0, 3.0]])
    assert_allclose(Sigmoid().forward(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    assert_allclose(Tanh().forward(x), np.tanh(x), rtol=1e-15)
    assert_array_equal(Identity().forward(x), x)
    assert np.all(np.isfinite(Sigmoid().forward(np.array([[-1e4, 1e4]]))))
    assert set(ACTIVATIONS) == {"relu", "sigmoid", "tanh", "identity"}


@given(seed=seeds, shape=st.lists(st.integers(1, 4), min_size=2, max_size=4))
def test_flatten_roundtrip_and_gradient(seed, shape):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    f = Flatten()
    y = f.forward(x)
    assert y.shape == (shape[0], int(np.prod(shape[1:])))
    assert_array_equal(y[0], x[0].reshape(-1))
    grad_check(f, x, rng)


@given(seed=seeds, b=st.integers(2, 5), n=st.integers(1, 4), two_d=st.booleans())
def test_batchnorm_gradients(seed, b, n, two_d):
    rng = np.random.default_rng(seed)
    if two_d:
        layer, x = BatchNorm2d(n), rng.standard_normal((b, n, 2, 3)) * 3 + 1
    else:
        layer, x = BatchNorm1d(n), rng.standard_normal((b, n)) * 3 + 1
    layer.gamma.value[:] = rng.uniform(0.5, 2.0, n)
    layer.beta.value[:] = rng.standard_normal(n)
    grad_check(layer, x, rng)


def test_batchnorm_running_statistics_and_eval(rng):
    bn = BatchNorm2d(3, momentum=0.25)
    x = rng.standard_normal((4, 3, 2, 2)) * 2 + 5
    m = 4 * 2 * 2
    y = bn.forward(x)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    assert_allclose(bn.running_mean, 0.75 * 0 + 0.25 * mean, rtol=1e-12)
    assert_allclose(bn.running_var, 0.75 * 1 + 0.25 * var * m / (m - 1), rtol=1e-12)
    bn.gamma.value[:] = [1.0, 2.0, 3.0]
    bn.beta.value[:] = [0.0, -1.0, 1.0]
    x2 = rng.standard_normal((2, 3, 2, 2))
    want = ((x2 - bn.running_mean[None, :, None, None])
            / np.sqrt(bn.running_var[None, :, None, None] + bn.eps)
            * bn.gamma.value[None, :, None, None] + bn.beta.value[None, :, None, None])
    before = bn.running_mean.copy()
    assert_allclose(bn.forward(x2, training=False), want, rtol=1e-12)
    assert_array_equal(bn.running_mean, before)  # eval does not touch the statistics
    with pytest.raises(RuntimeError, match="without a cached forward"):
        bn.backward(np.ones_like(x2))


def test_dropout_gradient_mask_and_eval():
    x = np.random.default_rng(1).standard_normal((50, 40))
    d = Dropout(0.3, np.random.default_rng(7))
    grad_check(d, x, np.random.default_rng(2),
               reset=lambda: setattr(d, "rng", np.random.default_rng(7)))
    y = d.forward(x)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.03  # 2000 Bernoulli(0.7): sd 0.01, so 3 sd
    assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-15)
    assert_array_equal(d.forward(x, training=False), x)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0, np.random.default_rng(0))


@pytest.mark.parametrize("c_in,c_out,stride", [(2, 2, 1), (2, 3, 2)])
def test_residual_block_gradients(rng, c_in, c_out, stride):
    block = ResidualBlock(c_in, c_out, stride, rng=rng)
    assert bool(block.shortcut) == (c_in != c_out or stride != 1)
    grad_check(block, rng.standard_normal((3, c_in, 4, 4)), rng)


# --------------------------------------------------------------------------- losses
@given(seed=seeds, b=st.integers(1, 5), k=st.integers(2, 5), soft=st.booleans())
def test_softmax_cross_entropy_gradient(seed, b, k, soft):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((b, k)) * 3
    labels = rng.dirichlet(np.ones(k), size=b) if soft else rng.integers(0, k, size=b)
    loss = SoftmaxCrossEntropy()
    value = loss.forward(z, labels)
    t = labels if soft else np.eye(k)[labels]
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    # atol: log(p) near 1 cancels in the reference (loss ~1e-7 carries ~1e-16 absolute error)
    assert_allclose(value, -np.mean(np.sum(t * np.log(p), axis=1)), rtol=1e-12, atol=1e-15)
    g = loss.backward()
    assert_allclose(g, numerical_gradient(lambda zz: SoftmaxCrossEntropy().forward(zz, labels),
                                          z.copy()), rtol=RTOL, atol=ATOL)


def test_cross_entropy_is_stable_for_huge_logits():
    loss = SoftmaxCrossEntropy()
    assert_allclose(loss.forward(np.array([[1000.0, 0.0]]), np.array([1])), 1000.0, rtol=1e-12)
    assert np.all(np.isfinite(loss.backward()))


@given(seed=seeds, b=st.integers(1, 5), k=st.integers(1, 5), ints=st.booleans())
def test_mse_gradient(seed, b, k, ints):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((b, k))
    labels = rng.integers(0, k, size=b) if ints else rng.standard_normal((b, k))
    loss = MSELoss()
    value = loss.forward(y, labels)
    t = np.eye(k)[labels] if ints else labels
    assert_allclose(value, np.mean((y - t) ** 2), rtol=1e-12)
    assert_allclose(loss.backward(), numerical_gradient(lambda yy: MSELoss().forward(yy, labels),
                                                        y.copy()), rtol=RTOL, atol=ATOL)


def test_loss_errors():
    with pytest.raises(RuntimeError, match="before forward"):
        SoftmaxCrossEntropy().backward()
    with pytest.raises(ValueError, match=r"labels: expected integers in \[0, 3\)"):
        SoftmaxCrossEntropy().forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="labels"):
        MSELoss().forward(np.zeros((2, 3)), np.zeros((2, 2)))


# --------------------------------------------------------------------------- caches
def _all_layers(rng):
    return [
        (Linear(3, 2, rng=rng), (2, 3)), (Conv2d(1, 2, 3, rng=rng), (2, 1, 4, 4)),
        (MaxPool2d(2), (2, 1, 4, 4)), (AvgPool2d(2), (2, 1, 4, 4)),
        (GlobalAvgPool2d(), (2, 1, 4, 4)), (ReLU(), (2, 3)), (Sigmoid(), (2, 3)),
        (Tanh(), (2, 3)), (Identity(), (2, 3)), (BatchNorm1d(3), (2, 3)),
        (BatchNorm2d(1), (2, 1, 4, 4)), (Flatten(), (2, 1, 4, 4)),
        (Dropout(0.5, rng), (2, 3)), (ResidualBlock(1, 2, 1, rng=rng), (2, 1, 4, 4)),
    ]


def test_backward_without_forward_raises(rng):
    for layer, shape in _all_layers(rng):
        with pytest.raises(RuntimeError, match="without a cached forward"):
            layer.backward(np.ones(shape))
        # an evaluation forward leaves no cache either
        y = layer.forward(rng.standard_normal(shape), training=False)
        with pytest.raises(RuntimeError, match="without a cached forward"):
            layer.backward(np.ones_like(y))


# --------------------------------------------------------------------------- backend + optimizer
class RecordingBackend(DigitalWeights):
    """A digital backend that records how the optimizer talked to it."""

    def __init__(self, w):
        super().__init__(w)
        self.calls = []

    def update(self, x, delta, lr):
        self.calls.append(("update", x.copy(), delta.copy(), lr))
        super().update(x, delta, lr)

    def apply_step(self, dw):
        self.calls.append(("apply_step", dw.copy()))
        super().apply_step(dw)


def test_digital_weights_follow_protocol(rng):
    w = rng.standard_normal((3, 2))
    be = DigitalWeights(w)
    assert isinstance(be, WeightBackend)
    x, d = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    assert_allclose(be.forward(x), x @ w, rtol=1e-15)
    assert_allclose(be.backward(d), d @ w.T, rtol=1e-15)
    be.update(x, d, 0.1)
    assert_allclose(be.get_weights(), w - 0.1 * x.T @ d, rtol=1e-14)
    be.set_weights(w)
    be.apply_step(np.ones((3, 2)))
    assert_allclose(be.get_weights(), w + 1, rtol=1e-15)
    with pytest.raises(ValueError, match="expected shape"):
        be.set_weights(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="WeightBackend"):
        Linear(3, 2, backend=object())  # type: ignore[arg-type]


def test_plain_sgd_uses_native_backend_update(rng):
    """A backend declaring ``native_outer_update`` receives (x, delta, lr) itself."""
    w0 = rng.standard_normal((3, 2))
    be = RecordingBackend(w0)
    be.native_outer_update = True
    layer = Linear(3, 2, backend=be)
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer.forward(x)
    layer.backward(g)
    SGD(layer.parameters(), lr=0.5).step()
    (kind, xr, dr, lr), = be.calls
    assert kind == "update" and lr == 0.5
    assert_array_equal(xr, x)
    assert_array_equal(dr, g)
    assert_allclose(be.get_weights(), w0 - 0.5 * x.T @ g, rtol=1e-14)
    assert_allclose(layer.bias.value, -0.5 * g.sum(axis=0), rtol=1e-14)


def test_plain_sgd_reuses_the_layer_gradient(rng):
    """Other backends get apply_step(-lr * x.T @ delta), computed once by the layer."""
    w0 = rng.standard_normal((3, 2))
    be = RecordingBackend(w0)
    layer = Linear(3, 2, backend=be)
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer.forward(x)
    layer.backward(g)
    SGD(layer.parameters(), lr=0.5).step()
    (kind, dw), = be.calls
    assert kind == "apply_step"
    assert_allclose(dw, -0.5 * x.T @ g, rtol=1e-14)
    assert_allclose(be.get_weights(), w0 - 0.5 * x.T @ g, rtol=1e-14)


def test_momentum_and_decay_are_exact_and_sent_as_steps(rng):
    """Three steps of SGD(momentum, weight decay, nesterov) against the formula by hand;
    the backend receives exactly the requested dW, biases are not decayed."""
    for nesterov in (False, True):
        w0 = rng.standard_normal((3, 2))
        be = RecordingBackend(w0)
        layer = Linear(3, 2, backend=be)
        opt = SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=nesterov)
        w, b = w0.copy(), np.zeros(2)
        vw, vb = np.zeros_like(w), np.zeros_like(b)
        for step in range(3):
            x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
            layer.forward(x)
            layer.backward(g)
            opt.step()
            gw = x.T @ g + 0.01 * w
            gb = g.sum(axis=0)
            vw = gw if step == 0 else 0.9 * vw + gw
            vb = gb if step == 0 else 0.9 * vb + gb
            dw = -0.1 * (gw + 0.9 * vw if nesterov else vw)
            db = -0.1 * (gb + 0.9 * vb if nesterov else vb)
            assert be.calls[-1][0] == "apply_step"
            assert_allclose(be.calls[-1][1], dw, rtol=1e-13, atol=1e-15)
            w, b = w + dw, b + db
            assert_allclose(be.get_weights(), w, rtol=1e-13)
            assert_allclose(layer.bias.value, b, rtol=1e-13)


def test_native_and_step_paths_agree_for_digital_weights(rng):
    w0 = rng.standard_normal((5, 3))
    x, g = rng.standard_normal((6, 5)), rng.standard_normal((6, 3))
    out = []
    for native in (True, False):
        layer = Linear(5, 3, backend=DigitalWeights(w0))
        layer.forward(x)
        layer.backward(g)
        SGD(layer.parameters(), lr=0.2, native_update=native).step()
        out.append(layer.weight.data())
    assert_allclose(out[0], out[1], rtol=1e-13)


def test_layer_update_is_plain_sgd(rng):
    layer = Conv2d(2, 3, 3, padding=1, rng=rng)
    w0 = layer.weight.data()
    x, g = rng.standard_normal((2, 2, 4, 4)), rng.standard_normal((2, 3, 4, 4))
    layer.forward(x)
    layer.backward(g)
    gw = layer.weight.grad.copy()
    layer.update(0.01)
    assert_allclose(layer.weight.data(), w0 - 0.01 * gw, rtol=1e-13)


def test_optimizer_validation(rng):
    params = Linear(2, 2, rng=rng).parameters()
    for kw, msg in [({"lr": 0.0}, "lr"), ({"lr": 0.1, "momentum": 1.0}, "momentum"),
                    ({"lr": 0.1, "weight_decay": -1.0}, "weight_decay"),
                    ({"lr": 0.1, "nesterov": True}, "nesterov")]:
        with pytest.raises(ValueError, match=msg):
            SGD(params, **kw)
    with pytest.raises(RuntimeError, match="before backward"):
        SGD(params, lr=0.1).step()


def test_schedules():
    assert ConstantLR(0.1)(7.5) == 0.1
    s = StepLR(0.1, step_size=3, gamma=0.5)
    assert [s(e) for e in (0, 2.9, 3, 6.1)] == [0.1, 0.1, 0.05, 0.025]
    c = CosineLR(0.1, 10, min_lr=0.001)
    assert_allclose([c(0), c(5), c(10)], [0.1, 0.0505, 0.001], rtol=1e-12)
    assert c(2) > c(3)
    w = CosineLR(0.1, 11, warmup=1)
    assert_allclose([w(0.5), w(1), w(6), w(11)], [0.05, 0.1, 0.05, 0.0], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="warmup"):
        CosineLR(0.1, 2, warmup=2)
    assert isinstance(make_schedule("cosine", 0.1, epochs=5), CosineLR)
    with pytest.raises(ValueError, match="choose one of"):
        make_schedule("exp", 0.1)


def test_state_dict_roundtrip(rng):
    layer = ResidualBlock(2, 3, 2, rng=rng)
    layer.forward(rng.standard_normal((3, 2, 4, 4)))  # moves the running statistics
    state = layer.state_dict()
    assert "shortcut.weight" in state and "bn1.running_var" in state
    other = ResidualBlock(2, 3, 2, rng=np.random.default_rng(99))
    other.load_state_dict(state)
    x = rng.standard_normal((2, 2, 4, 4))
    assert_allclose(other.forward(x, training=False), layer.forward(x, training=False),
                    rtol=1e-15)
    with pytest.raises(KeyError, match="missing keys"):
        other.load_state_dict({k: v for k, v in state.items() if k != "bn1.gamma"})
