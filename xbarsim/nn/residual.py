"""Basic residual block (He et al. 2016): two conv-bn stages with an identity or 1x1 shortcut."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from xbarsim.nn.activations import ReLU
from xbarsim.nn.base import Layer
from xbarsim.nn.batchnorm import BatchNorm2d
from xbarsim.nn.conv import Conv2d

__all__ = ["ResidualBlock", "ConvFactory"]

ConvFactory = Callable[[str, int, int, int, int, int], Conv2d]
"""``make_conv(name, c_in, c_out, kernel_size, stride, padding) -> Conv2d`` (bias-free)."""


class ResidualBlock(Layer):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    Parameters
    ----------
    c_in, c_out : int
        Channels.
    stride : int
        Stride of ``conv1`` (and of the shortcut); 2 halves the spatial size.
    make_conv : callable, optional
        ``make_conv(name, c_in, c_out, k, stride, padding) -> Conv2d`` so that the model
        builder can put the convolutions on hardware. Default: digital He-initialised
        convolutions drawn from ``rng``.
    rng : numpy.random.Generator, optional
        Used only by the default ``make_conv``.
    name : str, optional
        Layer name.

    Notes
    -----
    ``conv1`` is 3x3 with ``stride``, ``conv2`` 3x3 stride 1, both bias-free (batch norm follows).
    The shortcut is the identity when ``stride == 1 and c_in == c_out``, otherwise a 1x1
    convolution with ``stride`` followed by batch norm ("option B" of He et al.).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, *,
                 make_conv: ConvFactory | None = None, rng: np.random.Generator | None = None,
                 name: str | None = None) -> None:
        super().__init__(name)
        if make_conv is None:
            if rng is None:
                raise ValueError("ResidualBlock: pass make_conv or rng")

            def make_conv(n: str, ci: int, co: int, k: int, s: int, p: int) -> Conv2d:
                return Conv2d(ci, co, k, stride=s, padding=p, bias=False, rng=rng, name=n)

        self.conv1 = make_conv("conv1", c_in, c_out, 3, stride, 1)
        self.bn1 = BatchNorm2d(c_out, name="bn1")
        self.relu1 = ReLU(name="relu1")
        self.conv2 = make_conv("conv2", c_out, c_out, 3, 1, 1)
        self.bn2 = BatchNorm2d(c_out, name="bn2")
        self.relu_out = ReLU(name="relu_out")
        self.main: list[Layer] = [self.conv1, self.bn1, self.relu1, self.conv2, self.bn2]
        keys = ["conv1", "bn1", "relu1", "conv2", "bn2"]
        self.shortcut: list[Layer] = []
        if stride != 1 or c_in != c_out:
            self.shortcut = [make_conv("shortcut", c_in, c_out, 1, stride, 0),
                             BatchNorm2d(c_out, name="shortcut_bn")]
            keys += ["shortcut", "shortcut_bn"]
        # local keys (a factory may give its convolutions full dotted names)
        for key, layer in zip(keys, self.main + self.shortcut, strict=True):
            self._children[key] = layer

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """(batch, c_in, h, w) -> (batch, c_out, h_out, w_out)."""
        h = x
        for layer in self.main:
            h = layer.forward(h, training=training)
        s = x
        for layer in self.shortcut:
            s = layer.forward(s, training=training)
        return self.relu_out.forward(h + s, training=training)

    def backward(self, grad_out: NDArray[np.float64]) -> NDArray[np.float64]:
        """(batch, c_out, h_out, w_out) -> (batch, c_in, h, w); the two branches' grads add."""
        g = self.relu_out.backward(grad_out)
        gm = g
        for layer in reversed(self.main):
            gm = layer.backward(gm)
        gs = g
        for layer in reversed(self.shortcut):
            gs = layer.backward(gs)
        return gm + gs
