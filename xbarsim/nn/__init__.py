"""Training engine without autodiff: layers with explicit forward / backward / update.

Conventions (see :mod:`xbarsim.nn.base`): float64; weights ``(in, out)`` with ``y = x @ W``;
images NCHW; every weighted layer talks to its weights only through a
:class:`~xbarsim.nn.base.WeightBackend` (software :class:`~xbarsim.nn.base.DigitalWeights` or a
crossbar tile). Pooling, activations and batch norm are digital (unimpaired), as in TxSim.
"""

from __future__ import annotations

from xbarsim.nn.activations import ACTIVATIONS, Identity, ReLU, Sigmoid, Tanh, get_activation
from xbarsim.nn.base import (
    BackendParameter,
    DigitalWeights,
    Layer,
    Parameter,
    WeightBackend,
    digital_factory,
)
from xbarsim.nn.batchnorm import BatchNorm1d, BatchNorm2d
from xbarsim.nn.conv import Conv2d
from xbarsim.nn.dropout import Dropout
from xbarsim.nn.init import INITS
from xbarsim.nn.linear import Linear
from xbarsim.nn.losses import LOSSES, MSELoss, SoftmaxCrossEntropy
from xbarsim.nn.models import MODELS, Sequential, lenet5, mlp, resnet20, vgg_small
from xbarsim.nn.optim import SCHEDULES, SGD, ConstantLR, CosineLR, StepLR, make_schedule
from xbarsim.nn.pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from xbarsim.nn.reshape import Flatten
from xbarsim.nn.residual import ResidualBlock

__all__ = [
    "ACTIVATIONS", "INITS", "LOSSES", "MODELS", "SCHEDULES",
    "Layer", "Parameter", "BackendParameter", "WeightBackend", "DigitalWeights", "digital_factory",
    "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "ReLU", "Sigmoid", "Tanh",
    "Identity", "get_activation", "BatchNorm1d", "BatchNorm2d", "Flatten", "Dropout",
    "ResidualBlock", "SoftmaxCrossEntropy", "MSELoss", "Sequential", "mlp", "lenet5",
    "vgg_small", "resnet20", "SGD", "ConstantLR", "StepLR", "CosineLR", "make_schedule",
]
