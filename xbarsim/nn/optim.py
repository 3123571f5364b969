"""SGD with momentum and weight decay, and learning-rate schedules.

How the optimizer changes a weight is described in :mod:`xbarsim.nn.base`: with plain SGD it
calls each backend's native outer-product ``update(x, delta, lr)``; with momentum or weight
decay it computes the step in NumPy and hands it to ``backend.apply_step(dw)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
from numpy.typing import NDArray

from xbarsim.nn.base import Parameter

__all__ = ["SGD", "ConstantLR", "StepLR", "CosineLR", "SCHEDULES", "make_schedule"]


class SGD:
    """Stochastic gradient descent with (Nesterov) momentum and L2 weight decay.

    Parameters
    ----------
    params : iterable of Parameter
        Usually ``model.parameters()``.
    lr : float
        Learning rate (> 0); a schedule may overwrite :attr:`lr` every step.
    momentum : float
        ``mu`` in ``[0, 1)``.
    weight_decay : float
        L2 coefficient ``wd >= 0``, applied only to parameters with ``decay=True`` (weights,
        not biases or batch-norm parameters).
    nesterov : bool
        Nesterov momentum.
    native_update : bool
        For plain SGD (``momentum == weight_decay == 0``) use each weight backend's own
        outer-product update (the hardware pulsed update). ``False`` always goes through
        ``apply_step``.

    Notes
    -----
    PyTorch convention: ``g = grad + wd * w``; ``v = mu * v + g``; ``step = -lr * v``
    (Nesterov: ``-lr * (g + mu * v)``); ``w += step``.
    """

    def __init__(self, params: Iterable[Parameter], lr: float, *, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False,
                 native_update: bool = True) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("params: the model has no trainable parameters")
        if not lr > 0 or not math.isfinite(lr):
            raise ValueError(f"lr: expected a finite value > 0, got {lr!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum: expected a value in [0, 1), got {momentum!r}")
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay: expected a value >= 0, got {weight_decay!r}")
        if nesterov and momentum == 0.0:
            raise ValueError("nesterov: needs momentum > 0")
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)
        self.native_update = bool(native_update)
        self._velocity: dict[int, NDArray[np.float64]] = {}

    def step(self) -> None:
        """Apply one update to every parameter from its current ``grad``."""
        lr, mu, wd = self.lr, self.momentum, self.weight_decay
        if self.native_update and mu == 0.0 and wd == 0.0:
            for p in self.params:
                p.sgd_native(lr)
            return
        for p in self.params:
            g = p.grad
            if wd and p.decay:
                g = g + wd * p.data()
            if mu:
                v = self._velocity.get(id(p))
                v = g.copy() if v is None else mu * v + g
                self._velocity[id(p)] = v
                g = g + mu * v if self.nesterov else v
            p.apply_step(-lr * g)

    def state_dict(self) -> dict[str, object]:
        """Hyper-parameters and momentum buffers (by parameter index) for checkpoints."""
        index = {id(p): i for i, p in enumerate(self.params)}
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "velocity": {index[k]: v.copy() for k, v in self._velocity.items()}}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore what :meth:`state_dict` returned (same parameter order)."""
        self.lr = float(state["lr"])  # type: ignore[arg-type]
        vel = state.get("velocity", {})
        self._velocity = {id(self.params[int(i)]): np.array(v, dtype=np.float64)
                          for i, v in vel.items()}  # type: ignore[union-attr]


class ConstantLR:
    """``lr(epoch) = lr``."""

    def __init__(self, lr: float) -> None:
        self.lr = float(lr)

    def __call__(self, epoch: float) -> float:
        """Learning rate at (fractional, 0-based) ``epoch``."""
        return self.lr


class StepLR:
    """``lr * gamma ** floor(epoch / step_size)``."""

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ValueError(f"step_size: expected an int >= 1, got {step_size!r}")
        self.lr, self.step_size, self.gamma = float(lr), int(step_size), float(gamma)

    def __call__(self, epoch: float) -> float:
        """Learning rate at (fractional, 0-based) ``epoch``."""
        return self.lr * self.gamma ** math.floor(epoch / self.step_size)


class CosineLR:
    """Cosine annealing from ``lr`` to ``min_lr`` over ``epochs``, with optional linear warm-up.

    During the first ``warmup`` epochs the rate rises linearly to ``lr``; afterwards
    ``lr(e) = min_lr + (lr - min_lr) * (1 + cos(pi * (e - warmup) / (epochs - warmup))) / 2``.
    Evaluated per step with a fractional, 0-based epoch ``e``.
    """

    def __init__(self, lr: float, epochs: float, *, min_lr: float = 0.0,
                 warmup: float = 0.0) -> None:
        if not epochs > 0:
            raise ValueError(f"epochs: expected a value > 0, got {epochs!r}")
        if not 0 <= warmup < epochs:
            raise ValueError(f"warmup: expected 0 <= warmup < epochs = {epochs}, got {warmup!r}")
        self.lr, self.epochs, self.min_lr, self.warmup = float(lr), float(epochs), float(min_lr), \
            float(warmup)

    def __call__(self, epoch: float) -> float:
        """Learning rate at (fractional, 0-based) ``epoch``."""
        if epoch < self.warmup:
            # linear ramp; the first step uses a small but non-zero rate
            return self.lr * max(epoch, 1e-3) / self.warmup
        span = self.epochs - self.warmup
        e = min(epoch - self.warmup, span)
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * e / span))


SCHEDULES: dict[str, type] = {"constant": ConstantLR, "step": StepLR, "cosine": CosineLR}


def make_schedule(kind: str, lr: float, **kwargs: float) -> Callable[[float], float]:
    """Build a schedule by name from :data:`SCHEDULES`.

    Raises
    ------
    ValueError
        Unknown ``kind``.
    """
    try:
        cls = SCHEDULES[kind]
    except KeyError:
        raise ValueError(f"schedule: unknown {kind!r}; choose one of {sorted(SCHEDULES)}") from None
    return cls(lr, **kwargs)
