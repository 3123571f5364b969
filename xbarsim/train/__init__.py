"""Training: ``fit`` -> ``History``, ``evaluate``, divergence detection."""

from __future__ import annotations

from xbarsim.train.trainer import History, TrainingDiverged, evaluate, fit

__all__ = ["History", "TrainingDiverged", "evaluate", "fit"]
