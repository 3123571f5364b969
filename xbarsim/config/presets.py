"""Named, complete run configurations, each citing the paper or measurement it reproduces.

``PRESETS`` maps a name to a factory returning a :class:`~xbarsim.config.schema.RunConfig`.
A YAML file selects one with ``preset: <name>`` at the top level or inside any section
(``hardware: {preset: cross_ideal}``, ``device: {preset: txsim, nl: 0.1}``): that section of
the preset is taken and the explicit keys are merged over it (see
:mod:`xbarsim.config.loader`).

Provenance tags: [V] verbatim / as printed, [S] paraphrase of the source, [C] from public
code, [P] an xbarsim design decision, [M] unverified recollection of a paper that could not be
opened (treat as a hypothesis).
"""

from __future__ import annotations

import dataclasses as dc
from collections.abc import Callable

from xbarsim.config.schema import (
    ADCConfig,
    CrossbarConfig,
    DACConfig,
    DataConfig,
    DeviceConfig,
    HardwareConfig,
    MappingConfig,
    ModelConfig,
    PeripheryConfig,
    RunConfig,
    SolverConfig,
    TrainConfig,
    UpdateConfig,
    VariationConfig,
)

__all__ = ["PRESETS", "txsim", "cross_ideal", "software", "chakraborty"]


def _txsim_train() -> TrainConfig:
    # TxSim trains with batch 128 [V] and SGD [S]; lr, momentum, decay, schedule, epochs and
    # the batch of 64 are [P]: the recipe that brings software LeNet-5 to >= 97.5 % in 10
    # epochs on the 6k MNIST subset (xbarsim.nn.models.lenet5), shared by every preset so
    # software, Cross-Ideal and Cross-NI runs differ only in the hardware.
    return TrainConfig(mode="crossbar", loss="cross_entropy", epochs=10, batch_size=64,
                       lr=0.05, momentum=0.9, weight_decay=1.0e-3, schedule="cosine",
                       warmup_epochs=1.0)


def _txsim_periphery() -> PeripheryConfig:
    return PeripheryConfig(
        dac=DACConfig(bits=1, v_read=1.0, input_bits=8, signed="two_pass",
                      nonlinearity="none", bow=0.0, lut=None),
        adc=ADCConfig(bits=8, range="calibrated", calibration="max", percentile=99.99,
                      calibration_batches=500, nonlinearity="none", sense_noise=0.0,
                      granularity="layer"),
    )


def txsim() -> RunConfig:
    """TxSim Cross-NI: LeNet-5 on MNIST with every non-ideality of the paper's main runs.

    Source: Roy, Sridharan, Jain, Raghunathan, "TxSim: Modeling Training of Deep Neural
    Networks on Resistive Crossbar Systems", IEEE TVLSI 2021 (arXiv 2002.11151), §V-§VI;
    what xbarsim reproduces of it, and under which readings: docs/reproduction.md.

    * 64x64 crossbars [V]; r_row = 1 Ohm, r_col = 4.6 Ohm per cell (from layout) [V];
      r_source = r_sense = 0 (not given by TxSim) [P].
    * Ag/Si ReRAM, R_min = 100 kOhm, R_max = 1 MOhm [V]. TxSim uses 2-bit devices holding
      32-bit weights in slices [V]; how its update acts on sliced weights is not published
      (docs/physics.md, 'From weights to conductances'). This preset models each weight and
      polarity as one analog device [P] (``device.bits: null``, ``mapping.slice_bits: null``),
      which is also 16x cheaper. The sliced read path is one override away:
      ``--set hardware.mapping.slice_bits=2 hardware.mapping.weight_bits=16
      hardware.device.bits=2`` (TxSim's 16-bit MNIST system [V]).
    * Inputs 0-1 V [V] streamed through 1-bit DACs [V] as 8-bit inputs [P]; signed backward
      errors in two passes [P].
    * 8-bit ADC [P] (PUMA's lossless rule for 64 rows x 2-bit devices x 1-bit DAC [C]); range
      calibrated from output statistics over multiple epochs [V]: running max over the
      first 500 batches (~5 epochs) then frozen [P]. Granularity ``layer``: the arrays'
      non-ideal conductances are stitched into one layer matrix, multiplied with BLAS and
      the ADC acts on the output, as TxSim describes its pipeline [S] (docs/physics.md,
      'Converters'). The physical per-array, per-bit-plane ADC is
      ``hardware.forward.adc.granularity: tile`` (8 bit-planes x 2 polarities of GEMMs per
      product: about 16x the work).
    * Positive and negative weights on separate crossbars (signed split) [S].
    * Exact effective conductance after every update (FCM) [S]+[P].
    * Update: corrected eq. (1) [P] with v = 0.01 [V]; write noise gamma = 5 [V] in the
      square-root/percent reading [P] (docs/physics.md, 'Device updates'); no process
      variation [P].
    * Training [P]: batch 64 (TxSim: 128 [V]), SGD lr 0.05, momentum 0.9, weight decay 1e-3,
      cosine schedule with one warm-up epoch, 10 epochs (see ``_txsim_train``).
    """
    return RunConfig(
        seed=0,
        data=DataConfig(dataset="mnist"),
        model=ModelConfig(name="lenet5", activation="relu", batch_norm=False, dropout=0.0),
        hardware=HardwareConfig(
            crossbar=CrossbarConfig(n_rows=64, n_cols=64, r_row=1.0, r_col=4.6,
                                    r_source=0.0, r_sense=0.0),
            device=DeviceConfig(r_min=1.0e5, r_max=1.0e6, bits=None, update_model="txsim",
                                nl=0.01, nl_label=None, write_noise="sqrt", gamma=5.0,
                                sigma_c2c=0.0, sigma_d2d=0.0, n_pulses_max=None),
            forward=_txsim_periphery(),
            backward=_txsim_periphery(),
            update=UpdateConfig(scale="max"),
            mapping=MappingConfig(scheme="signed_split", weight_bits=None, slice_bits=None),
            solver=SolverConfig(method="fcm", rtol=1.0e-10, refresh_every=10,
                                refresh_method="fcm"),
            variation=VariationConfig(sigma_pv=0.0, distribution="normal", chip_seed=0),
        ),
        train=_txsim_train(),
    )


def _ideal_hardware() -> HardwareConfig:
    ideal_dir = PeripheryConfig(dac=DACConfig(bits=None, v_read=1.0, input_bits=None),
                                adc=ADCConfig(bits=None, sense_noise=0.0))
    return HardwareConfig(
        crossbar=CrossbarConfig(n_rows=64, n_cols=64, r_row=0.0, r_col=0.0, r_source=0.0,
                                r_sense=0.0),
        device=DeviceConfig(r_min=1.0e5, r_max=1.0e6, bits=None, update_model="linear",
                            nl=0.0, gamma=0.0, sigma_c2c=0.0, sigma_d2d=0.0, n_pulses_max=None),
        forward=ideal_dir,
        backward=ideal_dir,
        update=UpdateConfig(scale="max"),
        mapping=MappingConfig(scheme="signed_split", weight_bits=None, slice_bits=None),
        solver=SolverConfig(method="ideal"),
        variation=VariationConfig(sigma_pv=0.0),
    )


def cross_ideal() -> RunConfig:
    """TxSim Cross-Ideal: the ``txsim`` run on crossbars without any non-ideality.

    Source: TxSim (IEEE TVLSI 2021, arXiv 2002.11151) §VI, "Cross-Ideal" baseline [S]; the
    exact switch-off list is [P].

    Same as ``txsim`` in crossbar geometry (64x64), conductance range (100 kOhm-1 MOhm),
    mapping (signed split, one analog device per weight and polarity), model, data and
    training, but:
    ideal solver (g_eff = g) with all parasitic resistances 0; ideal DAC and ADC (bits null:
    no streaming, clipping or quantisation); linear device update (nl = 0) without write noise,
    cycle-to-cycle, device-to-device or process variation. Should match ``software`` to float
    round-off, except that weights saturate at ``+-w_scale`` (``update.headroom``).
    """
    base = txsim()
    return RunConfig(seed=base.seed, data=base.data, model=base.model,
                     hardware=_ideal_hardware(), train=_txsim_train(), output=base.output)


def software() -> RunConfig:
    """Native float64 training of the ``txsim`` network, the reference for both crossbar runs.

    Source: TxSim §VI compares Cross-Ideal and Cross-NI against native training [S]; the
    values are ``txsim``'s model, data and training settings with ``train.mode: software`` [P].
    The hardware section is the ``cross_ideal`` one; it is ignored in software mode, but a
    later ``--set train.mode=crossbar`` then gives Cross-Ideal, not a silent Cross-NI.
    """
    base = cross_ideal()
    t = _txsim_train()
    train = dc.replace(t, mode="software")
    return RunConfig(seed=base.seed, data=base.data, model=base.model, hardware=base.hardware,
                     train=train, output=base.output)


def chakraborty() -> RunConfig:
    """Chakraborty et al.: MLP 784-500-10 on MNIST with source/neuron resistance, c2c variation.

    Source: I. Chakraborty, D. Roy, K. Roy, "Technology Aware Training in Memristive
    Neuromorphic Systems for Nonideal Synaptic Crossbars", IEEE TETCI 2018 (arXiv
    1711.08889); see docs/aware.md and docs/reproduction.md. Only the abstract was available.

    * Non-idealities: source resistance, neuron (sense) resistance and chip-to-chip device
      variation [S]; no wire resistance (r_row = r_col = 0) [M] (whether the paper includes
      it is unknown).
    * One crossbar holds a whole 784x500 FC layer ("crossbar arrays of sizes 784x500 for
      FCNs") [V]; the network is therefore taken as an MLP 784-500-10 on MNIST [M].
    * r_source = r_sense = 1 kOhm [M]+[P] (the paper's values are unknown); sigma_pv = 0.1,
      normal [M]+[P].
    * Exact model without wire resistance, each row and each column one node (docs/circuit.md,
      'The circuit') [P]; ideal converters and a linear, noiseless device, so that only the
      paper's three non-idealities act [P]; device range as TxSim, no bit slicing [P].
    * Training [P]: 10 epochs of SGD, batch 128, lr 0.1, ``train.mode: crossbar`` (in situ
      on the non-ideal crossbars). The paper's technology-aware training (gradients through
      the non-ideal model) is ``train.mode: aware`` (docs/aware.md); the "ideal-trained,
      deployed on non-ideal" baseline is ``train.mode: software`` followed by ``xbarsim
      deploy`` or by ``train.evaluate_only: true`` with ``train.weights`` on this hardware.
    """
    ideal_dir = PeripheryConfig(dac=DACConfig(bits=None, v_read=1.0, input_bits=None),
                                adc=ADCConfig(bits=None, sense_noise=0.0))
    hardware = HardwareConfig(
        crossbar=CrossbarConfig(n_rows=784, n_cols=500, r_row=0.0, r_col=0.0,
                                r_source=1.0e3, r_sense=1.0e3),
        device=DeviceConfig(r_min=1.0e5, r_max=1.0e6, bits=None, update_model="linear",
                            nl=0.0, gamma=0.0, sigma_c2c=0.0, sigma_d2d=0.0),
        forward=ideal_dir,
        backward=ideal_dir,
        update=UpdateConfig(scale="max"),
        mapping=MappingConfig(scheme="signed_split", weight_bits=None, slice_bits=None),
        solver=SolverConfig(method="fcm"),
        variation=VariationConfig(sigma_pv=0.1, distribution="normal", chip_seed=0),
    )
    return RunConfig(
        seed=0,
        data=DataConfig(dataset="mnist"),
        model=ModelConfig(name="mlp", hidden=(500,), activation="relu"),
        hardware=hardware,
        train=TrainConfig(mode="crossbar", epochs=10, batch_size=128, lr=0.1),
    )


PRESETS: dict[str, Callable[[], RunConfig]] = {
    "txsim": txsim,
    "cross_ideal": cross_ideal,
    "software": software,
    "chakraborty": chakraborty,
}
"""Preset name -> factory of a complete RunConfig."""
