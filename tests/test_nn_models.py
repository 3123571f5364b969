"""Models: a hand-worked SGD step, and LeNet-5 / MLP against an independent NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from xbarsim.nn import (
    SGD,
    DigitalWeights,
    MSELoss,
    Sequential,
    SoftmaxCrossEntropy,
    lenet5,
    mlp,
    resnet20,
    vgg_small,
)

# Equivalence tolerance: same maths, different summation order (einsum/loops vs im2col+BLAS);
# a few steps compound it (each step can multiply the error), so the base 1e-12 is widened.
EQ_RTOL, EQ_ATOL = 1e-10, 1e-12


# --------------------------------------------------------------------------- hand-worked example
@pytest.mark.parametrize("via", ["model.update", "SGD"])
def test_hand_worked_one_step_sgd_mlp(via):
    """MLP 2-2-1 (ReLU, MSE), one sample, lr = 0.1, every number worked by hand."""
    model = mlp([2, 2, 1], "relu")
    fc1, fc2 = model["fc1"], model["fc2"]
    fc1.weight.set_data(np.array([[0.5, -1.0], [0.25, 0.5]]))
    fc1.bias.value[:] = [0.0, 0.5]
    fc2.weight.set_data(np.array([[2.0], [1.0]]))
    fc2.bias.value[:] = [0.1]
    x, t = np.array([[2.0, 4.0]]), np.array([[1.0]])
    loss = MSELoss()
    # z1 = x W1 + b1 = [2*0.5 + 4*0.25, 2*(-1) + 4*0.5] + [0, 0.5] = [2.0, 0.5]; h = relu(z1)
    # y  = h W2 + b2 = 2.0*2 + 0.5*1 + 0.1 = 4.6;  L = (4.6 - 1)^2 = 12.96
    y = model.forward(x)
    assert_allclose(y, [[4.6]], rtol=1e-15)
    assert_allclose(loss.forward(y, t), 12.96, rtol=1e-14)
    # dL/dy = 2 (y - t) / (B k) = 7.2
    g = loss.backward()
    assert_allclose(g, [[7.2]], rtol=1e-14)
    dx = model.backward(g)
    # dW2 = h^T dy = [[2.0*7.2], [0.5*7.2]] = [[14.4], [3.6]];  db2 = [7.2]
    assert_allclose(fc2.weight.grad, [[14.4], [3.6]], rtol=1e-14)
    assert_allclose(fc2.bias.grad, [7.2], rtol=1e-14)
    # dh = dy W2^T = [14.4, 7.2]; both units active -> dz1 = [14.4, 7.2]
    # dW1 = x^T dz1 = [[2*14.4, 2*7.2], [4*14.4, 4*7.2]] = [[28.8, 14.4], [57.6, 28.8]]
    assert_allclose(fc1.weight.grad, [[28.8, 14.4], [57.6, 28.8]], rtol=1e-14)
    assert_allclose(fc1.bias.grad, [14.4, 7.2], rtol=1e-14)
    # dx = dz1 W1^T = [14.4*0.5 + 7.2*(-1), 14.4*0.25 + 7.2*0.5] = [0.0, 7.2]
    assert_allclose(dx, [[0.0, 7.2]], atol=1e-14)
    if via == "SGD":
        SGD(model.parameters(), lr=0.1).step()
    else:
        model.update(0.1)
    # W -= 0.1 * grad:
    # W2 = [[2 - 1.44], [1 - 0.36]] = [[0.56], [0.64]];  b2 = 0.1 - 0.72 = -0.62
    # W1 = [[0.5 - 2.88, -1 - 1.44], [0.25 - 5.76, 0.5 - 2.88]] = [[-2.38, -2.44], [-5.51, -2.38]]
    # b1 = [0 - 1.44, 0.5 - 0.72] = [-1.44, -0.22]
    assert_allclose(fc2.weight.data(), [[0.56], [0.64]], rtol=1e-14)
    assert_allclose(fc2.bias.value, [-0.62], rtol=1e-14)
    assert_allclose(fc1.weight.data(), [[-2.38, -2.44], [-5.51, -2.38]], rtol=1e-14)
    assert_allclose(fc1.bias.value, [-1.44, -0.22], rtol=1e-14)
    # new z1 = [2*(-2.38) + 4*(-5.51) - 1.44, 2*(-2.44) + 4*(-2.38) - 0.22]
    #        = [-28.24, -14.62] -> relu -> 0, so y = b2 = -0.62 and L = 1.62^2 = 2.6244 < 12.96
    assert_allclose(loss.forward(model.forward(x), t), 2.6244, rtol=1e-13)


# --------------------------------------------------------------------------- NumPy reference
def ref_conv_forward(x, w4, b, pad):
    """Stride-1 convolution by summing kernel offsets with einsum; w4 (c, kh, kw, o)."""
    c, kh, kw, o = w4.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = xp.shape[2] - kh + 1, xp.shape[3] - kw + 1
    out = np.zeros((x.shape[0], o, ho, wo)) + b[None, :, None, None]
    for p in range(kh):
        for q in range(kw):
            out += np.einsum("bchw,co->bohw", xp[:, :, p:p + ho, q:q + wo], w4[:, p, q, :])
    return out


def ref_conv_backward(x, w4, pad, dout):
    c, kh, kw, o = w4.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = dout.shape[2:]
    dxp = np.zeros_like(xp)
    dw4 = np.zeros_like(w4)
    for p in range(kh):
        for q in range(kw):
            dw4[:, p, q, :] = np.einsum("bchw,bohw->co", xp[:, :, p:p + ho, q:q + wo], dout)
            dxp[:, :, p:p + ho, q:q + wo] += np.einsum("bohw,co->bchw", dout, w4[:, p, q, :])
    dx = dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    return dx, dw4, dout.sum(axis=(0, 2, 3))


def ref_maxpool2(x):
    b, c, h, w = x.shape
    out = np.zeros((b, c, h // 2, w // 2))
    mask = np.zeros_like(x)
    for i in range(h // 2):
        for j in range(w // 2):
            win = x[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(b, c, 4)
            k = win.argmax(axis=2)
            out[:, :, i, j] = win.max(axis=2)
            for n in range(b):
                for ch in range(c):
                    mask[n, ch, 2 * i + k[n, ch] // 2, 2 * j + k[n, ch] % 2] = 1.0
    return out, mask


def ref_maxpool2_backward(mask, dout):
    return mask * np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3)


def ref_softmax_ce(z, y):
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    t = np.eye(z.shape[1])[y]
    return -np.mean(np.log((p * t).sum(axis=1))), (p - t) / z.shape[0]


def ref_lenet_step(P, x, y):
    """Forward + backward of LeNet-5 written directly; P holds (c,kh,kw,o) conv weights."""
    a1 = ref_conv_forward(x, P["conv1.w"], P["conv1.b"], 2)
    r1 = np.maximum(a1, 0)
    m1, mask1 = ref_maxpool2(r1)
    a2 = ref_conv_forward(m1, P["conv2.w"], P["conv2.b"], 0)
    r2 = np.maximum(a2, 0)
    m2, mask2 = ref_maxpool2(r2)
    f = m2.reshape(x.shape[0], -1)
    h1 = np.maximum(f @ P["fc1.w"] + P["fc1.b"], 0)
    h2 = np.maximum(h1 @ P["fc2.w"] + P["fc2.b"], 0)
    z = h2 @ P["fc3.w"] + P["fc3.b"]
    loss, dz = ref_softmax_ce(z, y)
    G = {"fc3.w": h2.T @ dz, "fc3.b": dz.sum(0)}
    dh2 = (dz @ P["fc3.w"].T) * (h2 > 0)
    G["fc2.w"], G["fc2.b"] = h1.T @ dh2, dh2.sum(0)
    dh1 = (dh2 @ P["fc2.w"].T) * (h1 > 0)
    G["fc1.w"], G["fc1.b"] = f.T @ dh1, dh1.sum(0)
    dm2 = (dh1 @ P["fc1.w"].T).reshape(m2.shape)
    da2 = ref_maxpool2_backward(mask2, dm2) * (a2 > 0)
    dm1, G["conv2.w"], G["conv2.b"] = ref_conv_backward(m1, P["conv2.w"], 0, da2)
    da1 = ref_maxpool2_backward(mask1, dm1) * (a1 > 0)
    dx, G["conv1.w"], G["conv1.b"] = ref_conv_backward(x, P["conv1.w"], 2, da1)
    return z, loss, G, dx


def lenet_params_from(model):
    """Library state -> reference parameters (conv weights reshaped to (c, kh, kw, o))."""
    s = model.state_dict()
    P = {}
    for name, shape in (("conv1", (1, 5, 5, 6)), ("conv2", (6, 5, 5, 16))):
        P[name + ".w"] = s[name + ".weight"].reshape(shape)
        P[name + ".b"] = s[name + ".bias"]
    for name in ("fc1", "fc2", "fc3"):
        P[name + ".w"], P[name + ".b"] = s[name + ".weight"], s[name + ".bias"]
    return P


def test_lenet5_shapes_and_parameter_count():
    model = lenet5()
    out = model.forward(np.zeros((2, 1, 28, 28)))
    assert out.shape == (2, 10)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes["conv1.weight"] == (25, 6) and shapes["conv2.weight"] == (150, 16)
    assert shapes["fc1.weight"] == (400, 120) and shapes["fc3.weight"] == (84, 10)
    assert sum(v.size for v in model.state_dict().values()) == 61706


def test_lenet5_two_sgd_steps_equal_numpy_reference(rng):
    """Forward, loss, every gradient, dL/dx and the weights after two momentum + weight-decay
    steps equal the reference network."""
    model = lenet5(seed=3)
    loss = SoftmaxCrossEntropy()
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    P = lenet_params_from(model)
    V = {k: np.zeros_like(v) for k, v in P.items()}
    for step in range(2):
        x = rng.random((4, 1, 28, 28))
        y = rng.integers(0, 10, size=4)
        z_ref, l_ref, G, dx_ref = ref_lenet_step(P, x, y)
        z = model.forward(x)
        assert_allclose(z, z_ref, rtol=EQ_RTOL, atol=EQ_ATOL)
        assert_allclose(loss.forward(z, y), l_ref, rtol=EQ_RTOL)
        dx = model.backward(loss.backward())
        assert_allclose(dx, dx_ref, rtol=EQ_RTOL, atol=EQ_ATOL)
        for name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
            assert_allclose(model[name].weight.grad, G[name + ".w"].reshape(
                model[name].weight.grad.shape), rtol=EQ_RTOL, atol=EQ_ATOL, err_msg=name)
            assert_allclose(model[name].bias.grad, G[name + ".b"], rtol=EQ_RTOL, atol=EQ_ATOL)
        opt.step()
        for k in P:  # reference SGD: decay on weights only, PyTorch momentum
            g = G[k] + (1e-3 * P[k] if k.endswith(".w") else 0.0)
            V[k] = g if step == 0 else 0.9 * V[k] + g
            P[k] = P[k] - 0.05 * V[k]
    got = lenet_params_from(model)
    for k in P:
        assert_allclose(got[k], P[k], rtol=EQ_RTOL * 4, atol=EQ_ATOL * 4, err_msg=k)


def test_mlp_one_sgd_step_equals_numpy_reference(rng):
    sizes = [784, 32, 16, 10]
    model = mlp(sizes, "tanh", seed=5)
    s = model.state_dict()
    W = [s[f"fc{i}.weight"] for i in (1, 2, 3)]
    b = [s[f"fc{i}.bias"] for i in (1, 2, 3)]
    x = rng.random((6, 1, 28, 28))
    y = rng.integers(0, 10, size=6)
    # reference: explicit chain rule
    a0 = x.reshape(6, -1)
    h1 = np.tanh(a0 @ W[0] + b[0])
    h2 = np.tanh(h1 @ W[1] + b[1])
    z = h2 @ W[2] + b[2]
    l_ref, dz = ref_softmax_ce(z, y)
    dh2 = (dz @ W[2].T) * (1 - h2**2)
    dh1 = (dh2 @ W[1].T) * (1 - h1**2)
    grads = [a0.T @ dh1, h1.T @ dh2, h2.T @ dz]
    loss = SoftmaxCrossEntropy()
    assert_allclose(loss.forward(model.forward(x), y), l_ref, rtol=EQ_RTOL)
    dx = model.backward(loss.backward())
    assert_allclose(dx, (dh1 @ W[0].T).reshape(x.shape), rtol=EQ_RTOL, atol=EQ_ATOL)
    SGD(model.parameters(), lr=0.3).step()
    s2 = model.state_dict()
    dbs = [dh1.sum(0), dh2.sum(0), dz.sum(0)]
    for i, (g, db) in enumerate(zip(grads, dbs, strict=True), start=1):
        assert_allclose(s2[f"fc{i}.weight"], W[i - 1] - 0.3 * g, rtol=EQ_RTOL, atol=EQ_ATOL)
        assert_allclose(s2[f"fc{i}.bias"], b[i - 1] - 0.3 * db, rtol=EQ_RTOL, atol=EQ_ATOL)


# --------------------------------------------------------------------------- builders
def test_weight_factory_receives_names_shapes_and_init():
    seen = {}

    def factory(name, n_in, n_out, w_init):
        seen[name] = (n_in, n_out, w_init.copy())
        return DigitalWeights(w_init)

    model = lenet5(seed=11, weight_factory=factory)
    assert {k: v[:2] for k, v in seen.items()} == {
        "conv1": (25, 6), "conv2": (150, 16), "fc1": (400, 120), "fc2": (120, 84),
        "fc3": (84, 10)}
    for name, (_, _, w) in seen.items():
        assert_allclose(model[name].weight.data(), w, rtol=0)
    # named init streams: the same seed gives the same weights, another seed different ones
    again = lenet5(seed=11).state_dict()
    other = lenet5(seed=12).state_dict()
    assert_allclose(again["fc1.weight"], seen["fc1"][2], rtol=0)
    assert not np.allclose(other["fc1.weight"], seen["fc1"][2])
    # He normal: std sqrt(2 / fan_in) (400*120 draws: 3 % is > 6 standard errors)
    assert abs(seen["fc1"][2].std() / np.sqrt(2 / 400) - 1) < 0.03


def test_resnet20_and_vgg_small_shapes_and_factory():
    names = []

    def factory(name, n_in, n_out, w_init):
        names.append(name)
        return DigitalWeights(w_init)

    rng = np.random.default_rng(0)
    r = resnet20(weight_factory=factory)
    assert len(names) == 19 + 2 + 1  # 19 convs + 2 shortcut convs + fc
    assert "stage2.block0.shortcut" in names and "stage1.block0.shortcut" not in names
    x = rng.random((2, 3, 32, 32))
    out = r.forward(x)
    assert out.shape == (2, 10)
    dx = r.backward(np.ones_like(out))
    assert dx.shape == x.shape and np.all(np.isfinite(dx))
    v = vgg_small(input_size=16, widths=(4, 8))
    assert v.forward(rng.random((2, 3, 16, 16))).shape == (2, 10)
    with pytest.raises(ValueError, match="input_size"):
        vgg_small(input_size=2, widths=(4, 8))


def test_mlp_validation_and_sequential_names():
    with pytest.raises(ValueError, match="sizes"):
        mlp([10])
    with pytest.raises(ValueError, match="choose one of"):
        mlp([4, 2], "gelu")
    m = mlp([4, 3, 2], "sigmoid")
    assert [layer.name for layer in m] == ["flatten", "fc1", "act1", "fc2"]
    with pytest.raises(ValueError, match="duplicate"):
        Sequential([m["fc1"], m["fc1"]])


def test_sequential_state_dict_roundtrip_changes_outputs(rng):
    a, b = lenet5(seed=1), lenet5(seed=2)
    x = rng.random((3, 1, 28, 28))
    assert not np.allclose(a.forward(x, training=False), b.forward(x, training=False))
    b.load_state_dict(a.state_dict())
    # not bit-equal: BLAS results may depend on array alignment
    assert_allclose(b.forward(x, training=False), a.forward(x, training=False), rtol=1e-13)
    assert_allclose(b.predict(x, batch_size=2), a.forward(x, training=False), rtol=1e-13,
                    atol=1e-13)


@pytest.mark.parametrize(("build", "shape"), [(lambda: lenet5(seed=3), (3, 1, 28, 28)),
                                              (lambda: mlp([12, 7, 5], seed=3), (3, 12))])
def test_backward_without_input_grad_gives_the_same_parameter_gradients(build, shape):
    """Training skips dL/dx of the first weighted layer; the parameter gradients are unchanged."""
    grads = []
    for input_grad in (True, False):
        model = build()
        x = np.random.default_rng(5).uniform(0, 1, shape)
        y = model.forward(x)
        out = model.backward(np.ones_like(y), input_grad=input_grad)
        assert (out is None) == (not input_grad)
        grads.append([p.grad.copy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)
