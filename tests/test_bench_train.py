"""The training-step benchmark (xbarsim.studies.bench_train): models, ratios, targets, memory."""

from __future__ import annotations

import numpy as np
import pytest

from xbarsim.studies.bench_train import BENCH_MODELS, TARGETS, check_models, format_train_bench


def _row(model, torch, software, exact, interp):
    return dict(model=model, torch=torch, software=software, cross_ni_exact=exact,
                cross_ni_interp=interp)


def test_ratios_and_verdicts_against_torch():
    text = format_train_bench([_row("lenet5", 0.010, 0.0099, 0.031, 0.019)])
    assert "| lenet5 | 10 | 9.9 | 31 | 19 | 0.99x | 3.10x | 1.90x |" in text
    assert "PASS: lenet5 software <= 1.0x PyTorch (0.99x)" in text
    assert "FAIL: lenet5 Cross-NI exact refresh every batch <= 3x PyTorch (3.10x)" in text
    assert "PASS: lenet5 Cross-NI interpolated (L = 10) <= 2x PyTorch (1.90x)" in text
    assert text.count("PASS") + text.count("FAIL") == len(TARGETS["lenet5"])


def test_models_without_targets_are_reported_only():
    text = format_train_bench([_row("vgg_small", 1.0, 2.0, 3.0, 2.5)])
    assert "vgg_small: no target set (reported only)" in text
    assert "PASS" not in text and "FAIL" not in text


def test_memory_and_inputs_are_reported():
    row = _row("resnet20", 1.0, 1.1, 1.5, 1.3)
    row["data"] = "CIFAR-10-shaped synthetic"
    row["rss_mb"] = {"torch": 612.4, "software": 301.0, "cross_ni_exact": 350.6,
                     "cross_ni_interp": 360.0}
    text = format_train_bench([row])
    assert "resnet20: CIFAR-10-shaped synthetic" in text
    assert "| resnet20 | 612 | 301 | 351 | 360 |" in text


def test_without_torch_no_verdicts():
    text = format_train_bench([_row("mlp", None, 0.002, 0.1, 0.03)])
    assert "| mlp | - | 2 | 100 | 30 | - | - | - |" in text
    assert "PASS" not in text and "FAIL" not in text
    assert "pip install torch==2.13.0" in text


@pytest.mark.parametrize("model", sorted(TARGETS))
@pytest.mark.parametrize("limit_key", ["software", "cross_ni_exact", "cross_ni_interp"])
def test_each_target_can_fail(model, limit_key):
    row = _row(model, 1.0, 0.5, 0.5, 0.5)
    row[limit_key] = 100.0
    assert format_train_bench([row]).count("FAIL") == 1


def test_model_names_are_checked():
    assert check_models(("mlp", "resnet20")) == ("mlp", "resnet20")
    with pytest.raises(ValueError, match="model 'resnet': expected one of lenet5, mlp"):
        check_models(("resnet",))
    with pytest.raises(ValueError, match="name at least one"):
        check_models(())


@pytest.mark.parametrize("model", BENCH_MODELS)
def test_every_model_builds_and_steps_on_crossbars(model):
    """One Cross-NI step of each benchmark network at batch 2: finite outputs, weights move."""
    from xbarsim.studies.bench_train import _build, cross_ni_hardware

    net, tiles, forward, backward, update = _build(model, cross_ni_hardware("fcm"), 2, 0)
    before = [t.get_weights().copy() for t in tiles]
    forward()
    backward()
    update()
    assert tiles and any(not np.array_equal(t.get_weights(), w)
                         for t, w in zip(tiles, before, strict=True))


def test_peak_rss_is_measured_in_a_fresh_process():
    from xbarsim.studies.bench_train import peak_rss_mb

    # a parent holding 400 MB does not leak into the child's figure (ru_maxrss would)
    ballast = np.ones(50_000_000)
    rss = peak_rss_mb("mlp", "software", batch=4, steps=1)
    assert ballast.sum() > 0
    assert 20.0 < rss < 350.0


def test_step_parts_time_every_part_of_a_crossbar_step():
    from xbarsim.studies.bench_train import PARTS, format_step_parts, run_step_parts

    r = run_step_parts("mlp", "interpolated", batch=8, steps=10, warmup=1)
    assert all(r[k] > 0 for k in PARTS)
    # 784x256, 256x128, 128x10 on 64x64 arrays, signed split: two devices per weight
    assert r["n_devices"] == 2 * (784 * 256 + 256 * 128 + 128 * 10)
    assert r["update_ns_per_device"] == pytest.approx(1e9 * r["update"] / r["n_devices"])
    text = format_step_parts({("mlp", "interpolated"): r})
    assert text.splitlines()[2].startswith("| mlp | interpolated | ")
    assert f"| {int(r['n_devices'])} |" in text


def test_per_round_ratios_are_listed_and_the_table_uses_their_median():
    row = _row("lenet5", 0.010, 0.012, 0.05, 0.03)
    row["rounds"] = {"torch": [0.010, 0.020], "software": [0.012, 0.030],
                     "cross_ni_exact": [0.05, 0.05], "cross_ni_interp": [0.03, 0.03]}
    text = format_train_bench([row])
    assert "  lenet5 software: 1.20/1.50 (range 1.20-1.50)" in text
    assert "  lenet5 cross_ni_exact: 5.00/2.50 (range 2.50-5.00)" in text
    # ratios and verdicts: medians of the per-round ratios, not ratios of the median times
    assert "| lenet5 | 10 | 12 | 50 | 30 | 1.35x | 3.75x | 2.25x |" in text
    assert "FAIL: lenet5 software <= 1.0x PyTorch (1.35x)" in text
    assert "round" not in format_train_bench([_row("lenet5", 0.010, 0.012, 0.05, 0.03)])


# ---------------------------------------------------------------- CLI and the other benches

def _invoke(*args):
    from click.testing import CliRunner  # noqa: PLC0415

    from xbarsim.cli import main  # noqa: PLC0415

    return CliRunner().invoke(main, list(args))


def test_cli_refuses_unknown_models():
    for cmd in ("train", "refresh"):
        result = _invoke("bench", cmd, "--models", "lenet5,resnet")
        assert result.exit_code == 2, result.output
        assert "Error: --models: model 'resnet': expected one of lenet5, mlp" in result.output


def test_cli_api_bench_small():
    result = _invoke("bench", "api", "--size", "8", "--rounds", "2")
    assert result.exit_code == 0, result.output
    assert "g_eff of one 8 x 8 array (txsim regime)" in result.output
    assert "splu / API:" in result.output
    assert "target of issue 24 is set for 64 x 64" in result.output


def test_api_bench_agrees_with_the_sparse_solve():
    from xbarsim.studies.bench_api import format_api_bench, run_api_bench  # noqa: PLC0415

    res = run_api_bench(16, rounds=2, calls=2)
    assert res["max_rel_diff"] < 1e-9
    assert res["ratio"] == pytest.approx(sorted(res["ratios"])[len(res["ratios"]) // 2], rel=0.5)
    res64 = dict(res, n=64, ratio=60.0, ratios=[60.0])
    assert "PASS: public g_eff >= 50x faster than the sparse LU (60.0x)" in format_api_bench(res64)
    assert "FAIL" in format_api_bench(dict(res64, ratio=20.0))


def test_refresh_bench_counts_every_array_and_its_flops():
    from xbarsim.hardware import schur  # noqa: PLC0415
    from xbarsim.studies.bench_train import format_refresh_bench, run_refresh_bench  # noqa: PLC0415

    (row,) = run_refresh_bench(("mlp",), rounds=1)
    # 784x256, 256x128, 128x10 on 64x64 arrays, signed split
    assert row["n_arrays"] == 2 * (13 * 4 + 4 * 2 + 2 * 1)
    want = 2 * (12 * 4 * schur.flop_count(64, 64) + 4 * schur.flop_count(16, 64)
                + 4 * 2 * schur.flop_count(64, 64) + 2 * schur.flop_count(64, 10))
    assert row["flops"] == want
    text = format_refresh_bench([row])
    assert text.splitlines()[2].startswith("| mlp | 124 | ")
