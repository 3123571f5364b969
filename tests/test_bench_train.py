"""The training-step benchmark report (xbarsim.studies.bench_train): ratios, target verdicts."""

from __future__ import annotations

import pytest

from xbarsim.studies.bench_train import TARGETS, format_train_bench


def _row(model, torch, software, exact, interp):
    return dict(model=model, torch=torch, software=software, cross_ni_exact=exact,
                cross_ni_interp=interp)


def test_ratios_and_verdicts_against_torch():
    text = format_train_bench([_row("lenet5", 0.010, 0.0149, 0.101, 0.049)])
    assert "| lenet5 | 10 | 14.9 | 101 | 49 | 1.49x | 10.10x | 4.90x |" in text
    assert "PASS: lenet5 software <= 1.5x PyTorch (1.49x)" in text
    assert "FAIL: lenet5 Cross-NI exact refresh every batch <= 10x PyTorch (10.10x)" in text
    assert "PASS: lenet5 Cross-NI interpolated (L = 10) <= 5x PyTorch (4.90x)" in text
    assert text.count("PASS") + text.count("FAIL") == len(TARGETS)


def test_without_torch_no_verdicts():
    text = format_train_bench([_row("mlp", None, 0.002, 0.1, 0.03)])
    assert "| mlp | - | 2 | 100 | 30 | - | - | - |" in text
    assert "PASS" not in text and "FAIL" not in text
    assert "pip install torch==2.13.0" in text


@pytest.mark.parametrize("limit_key", [k for k, _, _ in TARGETS])
def test_each_target_can_fail(limit_key):
    row = _row("m", 1.0, 1.0, 1.0, 1.0)
    row[limit_key] = 100.0
    assert format_train_bench([row]).count("FAIL") == 1


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
    assert "  lenet5 software: 1.20/1.50" in text
    assert "  lenet5 cross_ni_exact: 5.00/2.50" in text
    # ratios and verdicts: medians of the per-round ratios, not ratios of the median times
    assert "| lenet5 | 10 | 12 | 50 | 30 | 1.35x | 3.75x | 2.25x |" in text
    assert "PASS: lenet5 software <= 1.5x PyTorch (1.35x)" in text
    assert "round" not in format_train_bench([_row("lenet5", 0.010, 0.012, 0.05, 0.03)])
