"""Warnings about training that runs but cannot learn: stuck converters, a collapsed output.

Some settings do not fail, they silently produce garbage: an ADC range of 1e-300 A clips
every conversion at full scale, a huge process variation lets one outlier device set a
range that rounds every other current to code 0, and either way the network's output stops
depending on its input and training sits at chance (loss ln 10 on MNIST) while the run
"completes". :class:`Diagnostics` looks, after every epoch, at

* the ADC counters of every crossbar tile (:meth:`xbarsim.hardware.tile.Tile.adc_stats`):
  the fraction of the conversions of non-zero currents clipped at full scale
  (> :data:`CLIPPED_FRACTION`), or rounded to code 0 (> :data:`LOST_FRACTION`), per layer and
  direction, and layers whose converters saw no current at all;
* whether the network predicted one class for all the samples of nearly every training
  batch of the epoch (:attr:`xbarsim.train.History.collapsed_fraction` at least
  :data:`COLLAPSED_FRACTION`): its output then does not depend on its input.

Each finding is logged as a warning when it first appears, and :meth:`Diagnostics.messages`
summarises all of them (with the epochs they occurred in) for the run file.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CLIPPED_FRACTION", "COLLAPSED_FRACTION", "LOST_FRACTION", "Diagnostics"]

logger = logging.getLogger(__name__)

CLIPPED_FRACTION = 0.5
"""Warn when more than this fraction of the conversions of non-zero currents of a layer's
ADCs (one direction, one epoch) is clipped at full scale. Calibrated ranges clip none while
calibrating and well under 1 % afterwards."""

LOST_FRACTION = 0.9
"""Warn when more than this fraction of the conversions of non-zero currents gives code 0
(the current is below half a code step). Healthy 8-bit converters lose about 1 %."""

COLLAPSED_FRACTION = 0.9
"""Warn when in at least this fraction of an epoch's training batches every sample got the
same predicted class (:attr:`xbarsim.train.History.collapsed_fraction`; a network that
learns: 0)."""


def _epochs(epochs: list[int]) -> str:
    """'epoch 3', 'epochs 1-4' or 'epochs 1, 3'; epoch 0 is the evaluation."""
    if epochs == [0]:
        return "the evaluation"
    if len(epochs) == 1:
        return f"epoch {epochs[0]}"
    if epochs == list(range(epochs[0], epochs[-1] + 1)):
        return f"epochs {epochs[0]}-{epochs[-1]}"
    return "epochs " + ", ".join(str(e) for e in epochs)


@dataclass
class _Finding:
    kind: str
    layer: str
    direction: str
    epochs: list[int] = field(default_factory=list)
    worst: float = 0.0
    detail: str = ""

    def text(self) -> str:
        when = _epochs(self.epochs)
        where = f"{self.layer}: " if self.layer else ""
        if self.kind == "clipped":
            return (f"{where}{100 * self.worst:.1f} % of the {self.direction} ADC conversions "
                    f"were clipped at full scale in {when}{self.detail}: the ADC range is far "
                    f"too small for the currents (hardware.{self.direction}.adc.range)")
        if self.kind == "lost":
            return (f"{where}{100 * self.worst:.1f} % of the {self.direction} ADC conversions "
                    f"of non-zero currents gave code 0 in {when}{self.detail}: the ADC range is "
                    f"far too large for the currents (a fixed range, or outlier devices, e.g. "
                    f"a large hardware.variation.sigma_pv, setting a calibrated one)")
        if self.kind == "silent":
            return (f"{where}every current of the {self.direction} ADCs was 0 in {when}: the "
                    "layer passes no signal")
        return (f"the network predicted one class for all the samples of "
                f"{100 * self.worst:.0f} % of the training batches in {when}{self.detail}: "
                "its output does not depend on its input, so training cannot leave chance "
                "level; check the hardware settings (converter ranges, device variation)")


class Diagnostics:
    """Collects the warnings of a run, epoch by epoch.

    Parameters
    ----------
    tiles : mapping of str to Tile
        The model's crossbar tiles by layer name (:func:`xbarsim.train.checkpoint.
        hardware_layers`); empty in software mode.
    previous : list of str, optional
        Messages of an earlier part of the run (resumed runs); kept as they are, first.
    """

    def __init__(self, tiles: Mapping[str, Any], previous: list[str] | None = None) -> None:
        self.tiles = dict(tiles)
        self.previous = list(previous or [])
        self.extra: list[str] = []
        self._findings: dict[tuple[str, str, str], _Finding] = {}
        self.reset()

    def reset(self) -> None:
        """Zero the ADC counters (call before the part of the run to be checked)."""
        for tile in self.tiles.values():
            tile.reset_adc_stats()

    def _found(self, kind: str, layer: str, direction: str, epoch: int, value: float = 0.0,
               detail: str = "") -> None:
        key = (kind, layer, direction)
        new = key not in self._findings
        f = self._findings.setdefault(key, _Finding(kind, layer, direction))
        f.epochs.append(epoch)
        if value >= f.worst:
            f.worst, f.detail = value, detail
        if new:
            logger.warning(_Finding(kind, layer, direction, [epoch], value, detail).text())

    def check(self, epoch: int, *, collapsed_fraction: float = math.nan,
              train_loss: float = math.nan, train_acc: float = math.nan,
              n_classes: int | None = None) -> None:
        """Look at the counters since the last check (then zero them) and the predictions.

        Parameters
        ----------
        epoch : int
            1-based epoch just completed; 0 for an evaluation.
        collapsed_fraction : float
            :attr:`History.collapsed_fraction` of the epoch (NaN: not checked).
        train_loss, train_acc : float
            Mean training loss and accuracy of the epoch, quoted in the message.
        n_classes : int, optional
            Number of classes, to quote ``ln(n_classes)`` (the loss of equal scores).
        """
        for name, tile in self.tiles.items():
            for direction, c in tile.adc_stats().items():
                if c["conversions"] == 0:
                    continue
                if c["sensed"] == 0:
                    self._found("silent", name, direction, epoch)
                    continue
                clipped, lost = c["clipped"] / c["sensed"], c["lost"] / c["sensed"]
                if clipped > CLIPPED_FRACTION:
                    self._found("clipped", name, direction, epoch, clipped)
                if lost > LOST_FRACTION:
                    self._found("lost", name, direction, epoch, lost)
            tile.reset_adc_stats()
        if collapsed_fraction >= COLLAPSED_FRACTION:
            parts = []
            if math.isfinite(train_acc):
                parts.append(f"train acc {100 * train_acc:.2f} %")
            if math.isfinite(train_loss):
                parts.append(f"train loss {train_loss:.4f}" + (
                    f" against ln {n_classes} = {math.log(n_classes):.4f} for equal scores"
                    if n_classes else ""))
            detail = f" ({', '.join(parts)})" if parts else ""
            self._found("collapsed", "", "", epoch, collapsed_fraction, detail)

    def add(self, message: str) -> None:
        """Record a message found elsewhere (logged as a warning now)."""
        if message not in self.extra and message not in self.previous:
            logger.warning(message)
            self.extra.append(message)

    def messages(self) -> list[str]:
        """Every warning so far: earlier ones, added ones, then one per finding."""
        out = list(self.previous)
        for text in [*self.extra, *(f.text() for f in self._findings.values())]:
            if text not in out:
                out.append(text)
        return out
