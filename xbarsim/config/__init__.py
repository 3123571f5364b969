"""Run configuration: YAML -> frozen, validated dataclasses (plain data, importable anywhere).

``schema`` defines the sections (every field typed, documented with its unit, validated);
``loader`` reads YAML strictly (unknown keys, wrong types and bad ranges are all reported at
once with dotted paths) and applies ``--set`` overrides and presets; ``presets`` holds named
configurations citing their sources. This package imports neither numba, h5py nor
``xbarsim.hardware``.
"""

from __future__ import annotations

from xbarsim.config.loader import config_to_dict, dump_config, load_config
from xbarsim.config.presets import PRESETS
from xbarsim.config.schema import (
    ADCConfig,
    AwareConfig,
    CrossbarConfig,
    DACConfig,
    DataConfig,
    DeviceConfig,
    HardwareConfig,
    MappingConfig,
    ModelConfig,
    OutputConfig,
    PeripheryConfig,
    RunConfig,
    SolverConfig,
    TrainConfig,
    UpdateConfig,
    VariationConfig,
    field_docs,
)

__all__ = [
    "ADCConfig", "AwareConfig", "CrossbarConfig", "DACConfig", "DataConfig", "DeviceConfig",
    "HardwareConfig", "MappingConfig", "ModelConfig", "OutputConfig", "PRESETS",
    "PeripheryConfig", "RunConfig", "SolverConfig", "TrainConfig", "UpdateConfig",
    "VariationConfig", "config_to_dict", "dump_config", "field_docs", "load_config",
]
