"""``Sequential`` and the model builders: MLP, LeNet-5, a small VGG, ResNet-20.

Every builder takes ``weight_factory(name, n_in, n_out, w_init) -> WeightBackend`` so that
hardware (a crossbar ``Tile``) can hold the weights; the default is
:func:`xbarsim.nn.base.digital_factory`. ``name`` is the dotted layer name (``"conv1"``,
``"stage2.block0.conv1"``), ``(n_in, n_out)`` the unfolded weight shape and ``w_init`` the
initial weights, drawn from the named stream ``xbarsim.rng.stream(seed, "init/" + name)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

from xbarsim.nn.activations import ReLU, get_activation
from xbarsim.nn.base import Layer, WeightBackend, digital_factory
from xbarsim.nn.batchnorm import BatchNorm2d
from xbarsim.nn.conv import Conv2d
from xbarsim.nn.init import get_init
from xbarsim.nn.linear import Linear
from xbarsim.nn.pooling import GlobalAvgPool2d, MaxPool2d
from xbarsim.nn.reshape import Flatten
from xbarsim.nn.residual import ResidualBlock
from xbarsim.rng import stream

__all__ = ["Sequential", "WeightFactory", "mlp", "lenet5", "cnn", "vgg_small", "resnet20",
           "MODELS"]

WeightFactory = Callable[[str, int, int, NDArray[np.float64]], WeightBackend]


class Sequential(Layer):
    """A chain of layers.

    Parameters
    ----------
    layers : sequence of Layer
        Applied in order. Unnamed layers are named by their index; names must be unique
        (they key :meth:`state_dict`).
    name : str, optional
        Model name.
    """

    def __init__(self, layers: Sequence[Layer], *, name: str | None = None) -> None:
        super().__init__(name)
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}]: expected a Layer, got {type(layer).__name__}")
            if layer.name is None:
                layer.name = str(i)
            if layer.name in self._children:
                raise ValueError(f"layers[{i}]: duplicate layer name {layer.name!r}")
            self._children[layer.name] = layer

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """Run every layer in order."""
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, grad: NDArray[np.float64], *, input_grad: bool = True
                 ) -> NDArray[np.float64] | None:
        """Back-propagate through the layers in reverse order; returns ``dL/dx``.

        ``input_grad=False`` (training): the network input needs no gradient, so the first
        weighted layer skips its backward product and the layers before it are not visited;
        returns None.
        """
        # the first layer with parameters; if it is Linear / Conv2d, it and the parameter-free
        # layers before it need no dL/dx when the network input needs none
        first = next((k for k, layer in enumerate(self.layers) if layer.parameters()), 0)
        skip = not input_grad and isinstance(self.layers[first], (Linear, Conv2d))
        stop = first if skip else 0
        for k in range(len(self.layers) - 1, stop - 1, -1):
            layer = self.layers[k]
            if skip and k == first:
                return layer.backward(grad, input_grad=False)  # type: ignore[call-arg]
            grad = layer.backward(grad)
        return grad

    def predict(self, x: NDArray[np.float64], batch_size: int = 1000) -> NDArray[np.float64]:
        """Evaluation-mode outputs for ``x`` in batches (no caches kept)."""
        outs = [self.forward(x[i:i + batch_size], training=False)
                for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(outs, axis=0)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, key: int | str) -> Layer:
        return self._children[key] if isinstance(key, str) else self.layers[key]

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)"


class _Builder:
    """Creates weighted layers with named init streams and the injected weight factory."""

    def __init__(self, seed: int, weight_factory: WeightFactory | None, init: str) -> None:
        self.seed = seed
        self.factory = weight_factory or digital_factory
        self.init = get_init(init)

    def backend(self, name: str, n_in: int, n_out: int) -> WeightBackend:
        w = self.init(stream(self.seed, "init/" + name), n_in, n_out)
        return self.factory(name, n_in, n_out, w)

    def linear(self, name: str, n_in: int, n_out: int) -> Linear:
        return Linear(n_in, n_out, backend=self.backend(name, n_in, n_out), name=name)

    def conv(self, name: str, c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0,
             bias: bool = True) -> Conv2d:
        return Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=bias, name=name,
                      backend=self.backend(name, c_in * k * k, c_out))


def mlp(sizes: Sequence[int], activation: str = "relu", *, seed: int = 0,
        weight_factory: WeightFactory | None = None, init: str = "he_normal") -> Sequential:
    """Multi-layer perceptron ``Flatten - (Linear - act) * (n-2) - Linear``.

    Parameters
    ----------
    sizes : sequence of int
        ``(n_in, hidden..., n_out)``, at least two entries; the input is flattened first, so
        MNIST images (batch, 1, 28, 28) work with ``sizes[0] = 784``.
    activation : str
        Hidden activation, a key of :data:`xbarsim.nn.activations.ACTIVATIONS`.
    seed, weight_factory, init
        See the module docstring. Layers are named ``fc1, fc2, ...``.

    Returns
    -------
    Sequential
        Outputs logits (batch, sizes[-1]).
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes: expected at least two positive layer sizes, got {sizes}")
    get_activation(activation)  # validate early
    b = _Builder(seed, weight_factory, init)
    layers: list[Layer] = [Flatten(name="flatten")]
    for i in range(len(sizes) - 1):
        layers.append(b.linear(f"fc{i + 1}", sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(get_activation(activation, layer_name=f"act{i + 1}"))
    return Sequential(layers, name="mlp")


def lenet5(*, in_channels: int = 1, n_classes: int = 10, seed: int = 0,
           weight_factory: WeightFactory | None = None, init: str = "he_normal") -> Sequential:
    """LeNet-5 for 28x28 inputs (MNIST), modern variant.

    ``conv1 5x5 (6, pad 2) - relu - maxpool 2 - conv2 5x5 (16) - relu - maxpool 2 - flatten -
    fc1 400->120 - relu - fc2 120->84 - relu - fc3 84->10``.

    This is LeCun et al. (1998) with ReLU instead of scaled tanh, max instead of trainable
    sub-sampling, a full C3 connection table and no RBF output layer; the padding of 2 gives
    the 32x32 field of the original on 28x28 images. 61,706 parameters; the crossbars hold
    weight matrices 25x6, 150x16, 400x120, 120x84 and 84x10.

    Tested recipe (software, 6k MNIST training images, 10k test): He-normal init, seed 0,
    batch 64, ``SGD(lr=0.05, momentum=0.9, weight_decay=1e-3)``, ``CosineLR(0.05, 10,
    warmup=1)`` -> 97.9 % test accuracy after 10 epochs (>= 97.5 % from epoch 7).

    Parameters
    ----------
    in_channels, n_classes : int
        Input channels and classes.
    seed, weight_factory, init
        See the module docstring.
    """
    b = _Builder(seed, weight_factory, init)
    return Sequential([
        b.conv("conv1", in_channels, 6, 5, padding=2), ReLU(name="relu1"),
        MaxPool2d(2, name="pool1"),                                  # (6, 14, 14)
        b.conv("conv2", 6, 16, 5), ReLU(name="relu2"),
        MaxPool2d(2, name="pool2"),                                  # (16, 5, 5)
        Flatten(name="flatten"),                                     # 400 in (c, h, w) order
        b.linear("fc1", 400, 120), ReLU(name="relu3"),
        b.linear("fc2", 120, 84), ReLU(name="relu4"),
        b.linear("fc3", 84, n_classes),
    ], name="lenet5")


def cnn(*, in_channels: int = 1, n_classes: int = 10, input_size: int = 28,
        channels: Sequence[int] = (32, 64), hidden: int = 512, seed: int = 0,
        weight_factory: WeightFactory | None = None, init: str = "he_normal") -> Sequential:
    """Build a two-convolution CNN with a wide fully connected classifier (Chakraborty et al.).

    ``conv1 5x5 (32) - relu - maxpool 2 - conv2 5x5 (64) - relu - flatten - fc1 -> 512 - relu
    - fc2 -> n_classes``, no padding. On 28x28 MNIST the features are 8 x 8 x 64 = 4096, so
    ``fc1`` is the 4096 x 512 layer of Chakraborty, Roy and Roy (TETCI 2018), who map it on
    4096 x 512 crossbars; the crossbars hold 25 x 32, 800 x 64, 4096 x 512 and 512 x 10.

    Parameters
    ----------
    in_channels, n_classes : int
        Input channels and classes.
    input_size : int
        Height = width of the input; ``fc1`` has ``64 * ((input_size - 4) // 2 - 4) ** 2``
        inputs.
    channels : (int, int)
        Output channels of the two convolutions.
    hidden : int
        Width of ``fc1``.
    seed, weight_factory, init
        See the module docstring.
    """
    c1, c2 = (int(c) for c in channels)
    side = (input_size - 4) // 2 - 4
    if side < 1:
        raise ValueError(f"input_size: {input_size} is too small for two 5x5 convolutions and "
                         "a 2x2 pooling (at least 14)")
    b = _Builder(seed, weight_factory, init)
    return Sequential([
        b.conv("conv1", in_channels, c1, 5), ReLU(name="relu1"),
        MaxPool2d(2, name="pool1"),                                  # (c1, s/2, s/2)
        b.conv("conv2", c1, c2, 5), ReLU(name="relu2"),              # (c2, side, side)
        Flatten(name="flatten"),                                     # c2*side*side, (c, h, w)
        b.linear("fc1", c2 * side * side, hidden), ReLU(name="relu3"),
        b.linear("fc2", hidden, n_classes),
    ], name="cnn")


def vgg_small(*, in_channels: int = 3, n_classes: int = 10, input_size: int = 32,
              widths: Sequence[int] = (32, 64, 128), batchnorm: bool = True, seed: int = 0,
              weight_factory: WeightFactory | None = None, init: str = "he_normal") -> Sequential:
    """Build a small VGG-style CNN: per width two 3x3 conv(-bn)-relu then a 2x2 max pool; one fc.

    Parameters
    ----------
    in_channels, n_classes : int
        Input channels and classes.
    input_size : int
        Height = width of the input (must stay >= 1 after ``len(widths)`` halvings).
    widths : sequence of int
        Channels of each stage (default CIFAR-10 shape 32-64-128).
    batchnorm : bool
        Batch norm after every convolution (then the convolutions have no bias).
    seed, weight_factory, init
        See the module docstring.
    """
    b = _Builder(seed, weight_factory, init)
    layers: list[Layer] = []
    c, size = in_channels, input_size
    for s, wdt in enumerate(widths, start=1):
        for r in (1, 2):
            name = f"stage{s}.conv{r}"
            layers.append(b.conv(name, c, wdt, 3, padding=1, bias=not batchnorm))
            if batchnorm:
                layers.append(BatchNorm2d(wdt, name=f"stage{s}.bn{r}"))
            layers.append(ReLU(name=f"stage{s}.relu{r}"))
            c = wdt
        layers.append(MaxPool2d(2, name=f"stage{s}.pool"))
        size //= 2
    if size < 1:
        raise ValueError(f"input_size: {input_size} is too small for {len(widths)} pooling stages")
    layers += [Flatten(name="flatten"), b.linear("fc", c * size * size, n_classes)]
    return Sequential(layers, name="vgg_small")


def resnet20(*, in_channels: int = 3, n_classes: int = 10, widths: Sequence[int] = (16, 32, 64),
             blocks_per_stage: int = 3, seed: int = 0, weight_factory: WeightFactory | None = None,
             init: str = "he_normal") -> Sequential:
    """ResNet-20 for 32x32 inputs (He et al. 2016, CIFAR-10 shape).

    ``conv 3x3 (16) - bn - relu - 3 stages x 3 basic blocks (16, 32, 64 channels; stride 2 at
    the first block of stages 2 and 3, 1x1-conv + bn shortcut there) - global average pool -
    fc 64->10``: 6*3 + 2 = 20 weighted layers.

    Parameters
    ----------
    in_channels, n_classes : int
        Input channels and classes.
    widths, blocks_per_stage : sequence of int, int
        Stage widths and blocks per stage (defaults give ResNet-20).
    seed, weight_factory, init
        See the module docstring.
    """
    b = _Builder(seed, weight_factory, init)
    layers: list[Layer] = [b.conv("conv1", in_channels, widths[0], 3, padding=1, bias=False),
                           BatchNorm2d(widths[0], name="bn1"), ReLU(name="relu1")]
    c = widths[0]
    for s, wdt in enumerate(widths, start=1):
        for k in range(blocks_per_stage):
            stride = 2 if (s > 1 and k == 0) else 1
            prefix = f"stage{s}.block{k}"

            def make_conv(n: str, ci: int, co: int, ks: int, st: int, p: int,
                          _prefix: str = prefix) -> Conv2d:
                return b.conv(f"{_prefix}.{n}", ci, co, ks, stride=st, padding=p, bias=False)

            block = ResidualBlock(c, wdt, stride, make_conv=make_conv, name=prefix)
            layers.append(block)
            c = wdt
    layers += [GlobalAvgPool2d(name="pool"), b.linear("fc", c, n_classes)]
    return Sequential(layers, name="resnet20")


MODELS: dict[str, Callable[..., Sequential]] = {
    "mlp": mlp, "lenet5": lenet5, "cnn": cnn, "vgg_small": vgg_small, "resnet20": resnet20,
}
