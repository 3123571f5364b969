"""Layer interface, parameters and the pluggable weight backend.

Conventions
-----------
* float64 everywhere; a weight ``W`` has shape ``(in_features, out_features)`` and ``y = x @ W``.
* Every layer caches what its backward pass needs from the *last* training forward in named
  attributes (``self._x`` ...). ``backward`` without such a forward raises ``RuntimeError``;
  ``forward(..., training=False)`` clears the cache.
* ``backward(grad_out)`` returns ``dL/dx`` and stores ``dL/dtheta`` in each ``Parameter.grad``.
  It never changes a parameter; the update is a separate step.

Weight backends and the optimizer
---------------------------------
A weighted layer (``Linear``, ``Conv2d``) never touches its weight matrix directly. It talks to a
:class:`WeightBackend`: ``forward(x) = x @ W``, ``backward(delta) = delta @ W.T`` and two ways
of changing ``W``:

``update(x, delta, lr)``
    the *native* plain-SGD outer-product update ``dW = -lr * x.T @ delta``. On a crossbar this is
    the pulsed rank-B update done by the devices (TxSim / Chakraborty style) and it only needs
    the layer inputs ``x`` and the back-propagated errors ``delta``.
``apply_step(dw)``
    add a requested, dense ``dW`` (the analog backend programs it as well as its devices allow).

The layer always computes the gradient ``grad_W = x.T @ delta`` *digitally* from its cached
``x`` and ``delta`` (one BLAS call) and keeps ``x`` and ``delta`` on the parameter. The optimizer
(:class:`xbarsim.nn.optim.SGD`) then decides:

* plain SGD (``momentum == 0`` and ``weight_decay == 0``): a backend that declares
  ``native_outer_update = True`` gets ``backend.update(x, delta, lr)`` (its own rank-B
  outer-product path, e.g. stochastic pulse coincidence); every other backend gets
  ``apply_step(-lr * grad_W)``, the same step without recomputing ``x.T @ delta``;
* SGD with momentum and/or weight decay: it computes the step
  ``dW = -lr * (mu * v + grad_W + wd * W)`` in NumPy (with ``W = backend.get_weights()``) and
  calls ``backend.apply_step(dW)``.

A backend whose products use a function of its weights rather than the weights themselves
(technology-aware training: ``y = x @ W_eff(W)``, :mod:`xbarsim.hardware.aware`) provides
``weight_gradient(x, delta) -> dL/dW``, which the layer stores as ``grad`` instead of
``x.T @ delta``.

For :class:`DigitalWeights` both paths are exact, so software training is exactly PyTorch-style
SGD. An analog backend receives exactly the step the optimizer asked for and is free to realise
it imperfectly (non-linear, noisy, quantised pulses). Biases and batch-norm parameters are plain
NumPy :class:`Parameter` objects updated in place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from xbarsim.nn.init import get_init

__all__ = [
    "WeightBackend",
    "DigitalWeights",
    "Parameter",
    "BackendParameter",
    "Layer",
    "digital_factory",
]


@runtime_checkable
class WeightBackend(Protocol):
    """Storage and products of one layer weight ``W`` of shape ``(n_in, n_out)``.

    Implemented by :class:`DigitalWeights` (software) and by the crossbar ``Tile``.
    """

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_in, n_out)``."""
        ...

    def forward(self, x: NDArray[np.float64], *, calibrate: bool = True
                ) -> NDArray[np.float64]:
        """``x @ W``: (batch, n_in) -> (batch, n_out).

        ``calibrate`` (training passes) lets hardware converters still calibrating learn their
        ranges from this batch; ``False`` (evaluation) leaves every converter unchanged.
        """
        ...

    def backward(self, delta: NDArray[np.float64], *, calibrate: bool = True
                 ) -> NDArray[np.float64]:
        """``delta @ W.T``: (batch, n_out) -> (batch, n_in); ``calibrate`` as in forward."""
        ...

    def update(self, x: NDArray[np.float64], delta: NDArray[np.float64], lr: float) -> None:
        """Native plain-SGD outer-product update ``W -= lr * x.T @ delta``.

        x : (batch, n_in); delta : (batch, n_out) (already divided by the batch size).
        """
        ...

    def apply_step(self, dw: NDArray[np.float64]) -> None:
        """Add the requested step ``dw`` (n_in, n_out) to ``W``."""
        ...

    def get_weights(self) -> NDArray[np.float64]:
        """Return the current (effective) weights as a new (n_in, n_out) array."""
        ...

    def set_weights(self, w: NDArray[np.float64]) -> None:
        """Program the weights to ``w`` (n_in, n_out)."""
        ...


class DigitalWeights:
    """Exact float64 weights held in NumPy (software mode).

    Parameters
    ----------
    w : array_like of shape (n_in, n_out)
        Initial weights (copied).
    """

    def __init__(self, w: NDArray[np.float64]) -> None:
        w = np.array(w, dtype=np.float64, order="C")
        if w.ndim != 2 or w.size == 0:
            raise ValueError(f"w: expected a non-empty 2-D (n_in, n_out) array, "
                             f"got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError("w: must be finite")
        self.w = w

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_in, n_out)``."""
        return self.w.shape  # type: ignore[return-value]

    def forward(self, x: NDArray[np.float64], *, calibrate: bool = True
                ) -> NDArray[np.float64]:
        """``x @ W``: (batch, n_in) -> (batch, n_out) (no converters: ``calibrate`` unused)."""
        return x @ self.w

    def backward(self, delta: NDArray[np.float64], *, calibrate: bool = True
                 ) -> NDArray[np.float64]:
        """``delta @ W.T``: (batch, n_out) -> (batch, n_in)."""
        return delta @ self.w.T

    def update(self, x: NDArray[np.float64], delta: NDArray[np.float64], lr: float) -> None:
        """``W -= lr * x.T @ delta`` (exact)."""
        self.w -= lr * (x.T @ delta)

    def apply_step(self, dw: NDArray[np.float64]) -> None:
        """``W += dw`` (exact)."""
        if dw.shape != self.w.shape:
            raise ValueError(f"dw: expected shape {self.w.shape}, got {dw.shape}")
        self.w += dw

    def get_weights(self) -> NDArray[np.float64]:
        """Return a copy of ``W`` (n_in, n_out)."""
        return self.w.copy()

    def set_weights(self, w: NDArray[np.float64]) -> None:
        """Replace ``W`` by a copy of ``w`` (same shape required)."""
        w = np.asarray(w, dtype=np.float64)
        if w.shape != self.w.shape:
            raise ValueError(f"w: expected shape {self.w.shape}, got {w.shape}")
        self.w = np.array(w, dtype=np.float64, order="C")

    def __repr__(self) -> str:
        return f"DigitalWeights(shape={self.shape})"


def digital_factory(name: str, n_in: int, n_out: int,
                    w_init: NDArray[np.float64]) -> DigitalWeights:
    """Default ``weight_factory`` of the model builders: software weights initialised to ``w_init``.

    Parameters
    ----------
    name : str
        Dotted layer name (``"conv1"``, ``"stage2.block0.conv1"``); unused here, used by
        hardware factories to name RNG streams.
    n_in, n_out : int
        Weight shape.
    w_init : ndarray of shape (n_in, n_out)
        Initial weights.
    """
    del name
    if w_init.shape != (n_in, n_out):
        raise ValueError(f"w_init: expected shape ({n_in}, {n_out}), got {w_init.shape}")
    return DigitalWeights(w_init)


class Parameter:
    """A digital trainable array with its gradient.

    Parameters
    ----------
    name : str
        Local name (``"bias"``, ``"gamma"``).
    value : ndarray
        The array (kept by reference; updated in place).
    decay : bool
        Whether the optimizer applies weight decay to it (weights yes, biases and BN no).
    """

    def __init__(self, name: str, value: NDArray[np.float64], *, decay: bool = False) -> None:
        self.name = name
        self.value = value
        self.grad = np.zeros_like(value)
        self.decay = decay

    def data(self) -> NDArray[np.float64]:
        """Return the current value (a view for digital parameters)."""
        return self.value

    def set_data(self, value: NDArray[np.float64]) -> None:
        """Overwrite the value in place (shape must match)."""
        value = np.asarray(value, dtype=np.float64)
        if value.shape != self.value.shape:
            raise ValueError(f"{self.name}: expected shape {self.value.shape}, got {value.shape}")
        self.value[...] = value

    def apply_step(self, dw: NDArray[np.float64]) -> None:
        """``value += dw``."""
        self.value += dw

    def sgd_native(self, lr: float) -> None:
        """Plain SGD step ``value -= lr * grad``."""
        self.value -= lr * self.grad

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, shape={self.value.shape})"


class BackendParameter(Parameter):
    """A weight that lives in a :class:`WeightBackend`.

    ``grad`` (n_in, n_out) is ``x.T @ delta`` computed digitally by the layer; ``x`` and
    ``delta`` of the last backward pass are kept for the backend's native update.
    """

    def __init__(self, name: str, backend: WeightBackend) -> None:
        if not isinstance(backend, WeightBackend):
            raise TypeError(f"backend: expected a WeightBackend (forward, backward, update, "
                            f"apply_step, get_weights, set_weights), got {type(backend).__name__}")
        self.name = name
        self.backend = backend
        self.grad = np.zeros(tuple(backend.shape), dtype=np.float64)
        self.decay = True
        self.x: NDArray[np.float64] | None = None
        self.delta: NDArray[np.float64] | None = None

    @property
    def value(self) -> NDArray[np.float64]:  # type: ignore[override]
        """The backend's current weights (a copy)."""
        return self.backend.get_weights()

    def data(self) -> NDArray[np.float64]:
        """Return the backend's current weights (a copy)."""
        return self.backend.get_weights()

    def set_data(self, value: NDArray[np.float64]) -> None:
        """Program the backend to ``value``."""
        self.backend.set_weights(np.asarray(value, dtype=np.float64))

    def set_gradient(self, x: NDArray[np.float64], delta: NDArray[np.float64]) -> None:
        """Store ``x`` (batch, n_in), ``delta`` (batch, n_out) and ``grad = x.T @ delta``.

        A backend with a ``weight_gradient(x, delta)`` method computes ``grad`` itself: its
        products use a function of ``W`` rather than ``W`` (technology-aware training, where
        ``y = x @ W_eff(W)``), so ``dL/dW`` is not ``x.T @ delta``.
        """
        self.x = x
        self.delta = delta
        custom = getattr(self.backend, "weight_gradient", None)
        self.grad = x.T @ delta if custom is None else custom(x, delta)

    def apply_step(self, dw: NDArray[np.float64]) -> None:
        """Hand the requested step to the backend."""
        self.backend.apply_step(dw)

    def sgd_native(self, lr: float) -> None:
        """Run the backend's own outer-product update with the cached ``x`` and ``delta``."""
        if self.x is None or self.delta is None:
            raise RuntimeError(f"{self.name}: update called before backward; run forward and "
                               "backward on a training batch first")
        if getattr(self.backend, "native_outer_update", False):
            # a backend that realises the rank-B outer product itself (e.g. stochastic pulses)
            self.backend.update(self.x, self.delta, lr)
        else:
            # same step, without recomputing x.T @ delta (already held in self.grad)
            self.backend.apply_step(-lr * self.grad)


class Layer(ABC):
    """Base class of all layers: explicit forward, backward and update, no autodiff.

    Subclasses register trainable arrays in ``self._params`` (name -> :class:`Parameter`),
    non-trainable state (running statistics) by name in ``self._buffers`` (attribute names),
    and sub-layers in ``self._children`` (name -> Layer).
    """

    name: str | None = None

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self._params: dict[str, Parameter] = {}
        self._buffers: tuple[str, ...] = ()
        self._children: dict[str, Layer] = {}

    @abstractmethod
    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """Compute the output; with ``training=True`` cache what backward needs."""

    @abstractmethod
    def backward(self, grad_out: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return ``dL/dx`` given ``dL/dy``; fill the parameters' ``grad``."""

    def __call__(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """Alias of :meth:`forward`."""
        return self.forward(x, training=training)

    # -- parameters -----------------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield ``(dotted_name, parameter)`` for this layer and its children."""
        for key, p in self._params.items():
            yield prefix + key, p
        for cname, child in self._children.items():
            yield from child.named_parameters(prefix + cname + ".")

    def parameters(self) -> list[Parameter]:
        """All trainable parameters (own first, then children's, in registration order)."""
        return [p for _, p in self.named_parameters()]

    @property
    def params(self) -> dict[str, Parameter]:
        """``{dotted_name: Parameter}`` of this layer and its children."""
        return dict(self.named_parameters())

    def update(self, lr: float) -> None:
        """Plain SGD step on every parameter (weights through their backend's native update)."""
        for p in self.parameters():
            p.sgd_native(lr)

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, NDArray[np.float64]]:
        """Return copies of all parameters and buffers, keyed by dotted names."""
        out: dict[str, NDArray[np.float64]] = {}
        self._collect_state("", out)
        return out

    def _collect_state(self, prefix: str, out: dict[str, NDArray[np.float64]]) -> None:
        for key, p in self._params.items():
            out[prefix + key] = np.array(p.data(), dtype=np.float64, copy=True)
        for key in self._buffers:
            out[prefix + key] = np.array(getattr(self, key), dtype=np.float64, copy=True)
        for cname, child in self._children.items():
            child._collect_state(prefix + cname + ".", out)

    def load_state_dict(self, state: dict[str, NDArray[np.float64]], *,
                        strict: bool = True) -> None:
        """Load arrays produced by :meth:`state_dict` (weights go through the backend).

        Raises
        ------
        KeyError
            ``strict`` and a key is missing or unexpected (all offenders are named).
        ValueError
            A shape does not match.
        """
        expected = self.state_dict().keys()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        self._load_state("", state)

    def _load_state(self, prefix: str, state: dict[str, NDArray[np.float64]]) -> None:
        for key, p in self._params.items():
            if prefix + key in state:
                p.set_data(state[prefix + key])
        for key in self._buffers:
            if prefix + key in state:
                cur = getattr(self, key)
                val = np.asarray(state[prefix + key], dtype=np.float64)
                if val.shape != cur.shape:
                    raise ValueError(f"{prefix + key}: expected shape {cur.shape}, got {val.shape}")
                cur[...] = val
        for cname, child in self._children.items():
            child._load_state(prefix + cname + ".", state)

    # -- helpers --------------------------------------------------------------------------
    def _need(self, value: object, what: str = "forward") -> None:
        """Raise the standard error when a backward pass has no cached forward."""
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward called without a cached {what}: "
                               "call forward(x, training=True) first")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def weight_backend(backend: WeightBackend | None, n_in: int, n_out: int, *,
                   rng: np.random.Generator | None, init: str, where: str,
                   shape_name: str) -> WeightBackend:
    """The backend of a weighted layer: the given one (checked) or digital weights from ``init``.

    Parameters
    ----------
    backend : WeightBackend or None
        Given backend; None builds :class:`DigitalWeights` initialised by ``init`` from ``rng``.
    n_in, n_out : int
        Required weight shape.
    where, shape_name : str
        Layer label and the meaning of the shape, for error messages.
    """
    if backend is None:
        if rng is None:
            raise ValueError(f"{where.split('(')[0]}: pass rng (a numpy Generator) or a backend")
        backend = DigitalWeights(get_init(init)(rng, n_in, n_out))
    backend = check_backend(backend, where)
    if tuple(backend.shape) != (n_in, n_out):
        raise ValueError(f"{where}: backend shape {tuple(backend.shape)} != {shape_name} = "
                         f"({n_in}, {n_out})")
    return backend


def check_backend(backend: object, where: str) -> WeightBackend:
    """Return ``backend`` after checking that it implements :class:`WeightBackend`.

    Raises
    ------
    TypeError
        A method or ``shape`` is missing; the message names the layer.
    """
    if not isinstance(backend, WeightBackend):
        raise TypeError(f"{where}: backend must be a WeightBackend (shape, forward, backward, "
                        f"update, apply_step, get_weights, set_weights), got "
                        f"{type(backend).__name__}")
    return backend


def check_input(layer: Layer, x: NDArray[np.float64], ndim: int, what: str) -> NDArray[np.float64]:
    """Return ``x`` as C-contiguous float64 after checking its number of dimensions.

    Raises
    ------
    ValueError
        ``x.ndim != ndim``; the message names the layer and the expected layout ``what``.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != ndim:
        raise ValueError(f"{type(layer).__name__}({layer.name or ''}): expected input of shape "
                         f"{what}, got {x.shape}")
    return x
