"""The golden reference suite: make, adapters, check, the documented schema (docs/golden.md).

The suite is made once per session through the CLI, exactly as docs/golden.md says; the tests
then run the documented commands on it, perturb results to show that ``golden check`` catches
them with the case and quantity named, read every documented dataset back, and reproduce the
stored updates from the stored random draws.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from xbarsim.cli import main
from xbarsim.golden import adapters, schema
from xbarsim.golden.check import MismatchError, check_results, parse_tolerances

DOC = Path(__file__).resolve().parents[1] / "docs" / "golden.md"
HAS_BADCROSSBAR = importlib.util.find_spec("badcrossbar") is not None
needs_badcrossbar = pytest.mark.skipif(not HAS_BADCROSSBAR,
                                       reason="badcrossbar is not installed")


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def suite_path(tmp_path_factory):
    """The default suite, made as docs/golden.md says: xbarsim golden make --out suite.h5."""
    folder = tmp_path_factory.mktemp("golden")
    result = invoke("golden", "make", "--out", folder / "suite.h5")
    assert result.exit_code == 0, result.output
    assert re.search(r"wrote .*suite\.h5: 31 cases \(27 tile, 3 layer, 1 mlp_step\)",
                     result.output)
    return folder / "suite.h5"


@pytest.fixture(scope="module")
def suite(suite_path):
    return adapters.read_suite(suite_path)


def _own_outputs(suite, cases=None) -> adapters.Results:
    """THEIRS equal to the reference's own outputs (for perturbation tests)."""
    out = adapters.Results(tool="reference copy")
    for name, case in suite["cases"].items():
        if cases is not None and name not in cases:
            continue
        kind = case["attrs"]["case_kind"]
        out.cases[name] = {k: np.array(case["data"][k])
                           for k in schema.outputs_of(kind, list(case["data"]))}
    return out


# ---------------------------------------------------------------------------------------------
# the documented commands, end to end


@needs_badcrossbar
def test_documented_workflow_end_to_end(suite_path, tmp_path):
    """make -> adapt badcrossbar -> check, as the first code block of docs/golden.md."""
    commands = re.search(r"```\n(xbarsim golden make.*?)```", DOC.read_text(), re.S).group(1)
    theirs, report = tmp_path / "theirs.h5", tmp_path / "report.csv"
    lines = [line.split("#")[0].split() for line in commands.strip().splitlines()]
    assert lines[1][:4] == ["xbarsim", "golden", "adapt", "badcrossbar"]
    assert lines[2][:3] == ["xbarsim", "golden", "check"]
    args = {"suite.h5": suite_path, "theirs.h5": theirs, "report.csv": report}
    result = invoke(*[args.get(a, a) for a in lines[1][1:]])
    assert result.exit_code == 0, result.output
    assert "badcrossbar 1.1.0 on 8 cases, 23 refused" in result.output
    result = invoke(*[args.get(a, a) for a in lines[2][1:]])
    assert result.exit_code == 0, result.output
    assert "pass: 40 quantities of 8 cases compared, 0 failed; 23 cases refused" in result.output
    rows = report.read_text().splitlines()
    assert rows[0].startswith("case,kind,quantity,status,error,index")
    assert sum(",pass," in r for r in rows) == 40 and not any(",FAIL," in r for r in rows)


@needs_badcrossbar
def test_badcrossbar_passes_every_case_it_can_express(suite):
    results = adapters.badcrossbar_results(suite)
    expressible = {n for n, c in suite["cases"].items() if adapters.badcrossbar_refusal(c) is None}
    assert set(results.cases) == expressible
    assert expressible >= {"ideal_8x8", "segment_txsim_1x1", "segment_txsim_64x64",
                           "segment_harsh_64x64", "segment_open_32x32",
                           "segment_zero_wires_8x8"}
    report = check_results(suite, results)
    assert not report.failed, report.table()
    assert {r.case for r in report.compared} == expressible
    assert all(r.error < 1e-12 for r in report.compared), report.table()
    assert "r_source = 100 Ohm differs from r_row = 1 Ohm" in results.refused["txsim_64x64"]
    assert "layer case needs converters" in results.refused["layer_txsim"]


def test_ci_installs_badcrossbar():
    """CI must run the badcrossbar validation: .ci/run installs it (no cairo needed)."""
    import os

    if os.environ.get("CI") == "true":
        assert HAS_BADCROSSBAR, "CI: badcrossbar is not installed (see .ci/run)"
    run = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "--no-deps" in run and "badcrossbar==1.1.0" in run


def test_badcrossbar_refusal_names_what_it_cannot_express(suite):
    for name in ("txsim_64x64", "perline_24x20", "zero_terminals_20x20", "zero_wires_16x12"):
        reason = adapters.badcrossbar_refusal(suite["cases"][name])
        assert reason is not None and "end wire segments" in reason
    assert "per line" in adapters.badcrossbar_refusal(suite["cases"]["perline_24x20"])
    assert adapters.badcrossbar_refusal(suite["cases"]["segment_harsh_32x24"]) is None


def test_missing_badcrossbar_is_an_input_error(suite_path, tmp_path, monkeypatch):
    monkeypatch.setattr(adapters, "_import_badcrossbar", lambda: (_ for _ in ()).throw(
        ImportError("badcrossbar is not installed (x); install its solver with 'pip install "
                    "--no-deps badcrossbar==1.1.0 pathvalidate'")))
    result = invoke("golden", "adapt", "badcrossbar", suite_path, "--out", tmp_path / "t.h5")
    assert result.exit_code == 2
    assert "pip install --no-deps badcrossbar==1.1.0" in result.output
    assert not (tmp_path / "t.h5").exists()


# ---------------------------------------------------------------------------------------------
# perturbed results are caught, with the case and the quantity named


def test_the_reference_against_itself_is_exact(suite, suite_path):
    report = check_results(suite, _own_outputs(suite))
    assert not report.failed and len(report.compared) > 150
    assert all(r.error == 0.0 for r in report.compared)
    result = invoke("golden", "check", suite_path, suite_path)      # a suite as THEIRS
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("fmt", [".h5", ".npz", ".csv"])
@pytest.mark.parametrize("perturbation", ["current_1e-6", "transposed_g_eff", "sign_flip"])
def test_perturbed_results_fail_with_case_and_quantity_named(suite, suite_path, tmp_path, fmt,
                                                               perturbation):
    cases = ("segment_txsim_16x16", "txsim_64x64", "layer_txsim")
    theirs = _own_outputs(suite, cases)
    if perturbation == "current_1e-6":
        case, quantity, index = "txsim_64x64", "i_sense", (2, 17)
        theirs.cases[case][quantity][index] *= 1 + 1e-6
    elif perturbation == "transposed_g_eff":
        case, quantity = "segment_txsim_16x16", "g_eff"
        theirs.cases[case][quantity] = theirs.cases[case][quantity].T.copy()
    else:
        case, quantity = "layer_txsim", "y_backward"
        theirs.cases[case][quantity] = -theirs.cases[case][quantity]
    path = adapters.write_results(tmp_path / f"theirs{fmt}", theirs)
    report_path = tmp_path / "report.json"
    result = invoke("golden", "check", suite_path, path, "--report", report_path)
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.rstrip().endswith("FAIL")]
    assert len(failed) == 1, result.output
    assert failed[0].split()[:2] == [case, quantity]
    report = json.loads(report_path.read_text())
    assert not report["passed"]
    (row,) = [r for r in report["rows"] if r["status"] == "FAIL"]
    assert (row["case"], row["quantity"]) == (case, quantity)
    if perturbation == "current_1e-6":
        assert row["index"] == "2:17"
        assert 1e-7 < row["error"] < 1e-6      # relative to the drive's current scale
    else:
        assert row["error"] > 1e-3


def test_tolerance_override_and_failures_only(suite, suite_path, tmp_path):
    theirs = _own_outputs(suite, ("txsim_64x64",))
    theirs.cases["txsim_64x64"]["i_sense"][0, 0] *= 1 + 1e-6
    path = adapters.write_results(tmp_path / "t.npz", theirs)
    assert invoke("golden", "check", suite_path, path).exit_code == 1
    result = invoke("golden", "check", suite_path, path, "--tolerance", "i_sense=1e-5")
    assert result.exit_code == 0, result.output
    result = invoke("golden", "check", suite_path, path, "--failures-only")
    assert result.exit_code == 1
    assert [ln.split()[1] for ln in result.output.splitlines() if "FAIL" in ln
            and not ln.startswith("FAIL")] == ["i_sense"]
    assert "txsim_64x64                  g_eff" not in result.output
    assert parse_tolerances(["1e-6", "g_eff=2e-9"]) == {"*": 1e-6, "g_eff": 2e-9}
    with pytest.raises(ValueError, match="finite number > 0"):
        parse_tolerances(["i_sense=-1"])


def test_mlp_per_layer_tolerance_and_quantities(suite):
    theirs = _own_outputs(suite, ("mlp_step",))
    theirs.cases["mlp_step"]["fc2/g_updated"] = theirs.cases["mlp_step"]["fc2/g_updated"] * 1.01
    report = check_results(suite, theirs)
    assert [(r.case, r.quantity) for r in report.failed] == [("mlp_step", "fc2/g_updated")]
    assert not check_results(suite, theirs, tolerances={"g_updated": 0.1}).failed


# ---------------------------------------------------------------------------------------------
# input that does not fit: exit code 2, the dataset named


def test_mismatched_input_exits_2_naming_the_dataset(suite, suite_path, tmp_path):
    def check(theirs, *fragments):
        path = adapters.write_results(tmp_path / "t.npz", theirs, force=True)
        result = invoke("golden", "check", suite_path, path)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("Error: ") and "Traceback" not in result.output
        for fragment in fragments:
            assert fragment in result.output, result.output

    theirs = _own_outputs(suite, ("harsh_96x40",))
    theirs.cases["harsh_96x40"]["g_eff"] = theirs.cases["harsh_96x40"]["g_eff"].T
    check(theirs, "harsh_96x40/g_eff", "(40, 96)", "(96, 40)", "transposed?")
    theirs = _own_outputs(suite, ("harsh_96x40",))
    theirs.cases["harsh_96x40"]["i_sens"] = theirs.cases["harsh_96x40"].pop("i_sense")
    check(theirs, "harsh_96x40/i_sens", "did you mean 'i_sense'")
    check(adapters.Results(cases={"harsh_97x40": {"g_eff": np.zeros(1)}}),
          "case 'harsh_97x40' is not in the suite", "harsh_96x40")
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    result = invoke("golden", "check", suite_path, bad)
    assert result.exit_code == 2 and "cannot open as HDF5" in result.output
    csv_bad = tmp_path / "bad.csv"
    csv_bad.write_text("case,name,index,value\ntxsim_1x1,g_eff,0:0,1e-6\ntxsim_1x1,g_eff,0:0,2\n")
    result = invoke("golden", "check", suite_path, csv_bad)
    assert result.exit_code == 2 and "txsim_1x1/g_eff[0:0] is given twice" in result.output
    csv_bad.write_text("case,name,index,value\ntxsim_2x3,g_eff,1:2,1e-6\n")
    result = invoke("golden", "check", suite_path, csv_bad)
    assert result.exit_code == 2 and "elements are missing" in result.output
    result = invoke("golden", "check", suite_path, tmp_path / "t.npz", "--report",
                    tmp_path / "r.txt")
    assert result.exit_code == 2 and ".csv or .json" in result.output


def test_refused_cases_are_reported_not_failed(suite, tmp_path):
    theirs = adapters.Results(refused={"layer_ideal": "no converters"})
    i_sense = np.array(suite["cases"]["ideal_8x8"]["data"]["i_sense"])
    theirs.cases["ideal_8x8"] = {"i_sense": i_sense}
    for fmt in (".h5", ".npz", ".csv"):
        back = adapters.read_results(adapters.write_results(tmp_path / f"r{fmt}", theirs))
        assert back.refused == {"layer_ideal": "no converters"}
        report = check_results(suite, back)
        assert not report.failed
        assert [r.status for r in report.rows if r.case == "layer_ideal"] == ["refused"]
        assert {r.quantity for r in report.rows if r.status == "not given"} == {
            "g_eff", "u", "w", "i_back"}
        assert "refused by the tool (1 cases):\n  layer_ideal: no converters" in report.table()
    with pytest.raises(MismatchError, match="holds no case"):
        check_results(suite, adapters.Results())


def test_nothing_compared_exits_1(suite_path, tmp_path):
    path = adapters.write_results(tmp_path / "t.h5",
                                  adapters.Results(refused={"txsim_1x1": "cannot"}))
    result = invoke("golden", "check", suite_path, path)
    assert result.exit_code == 1 and "0 quantities of 0 cases compared" in result.output


# ---------------------------------------------------------------------------------------------
# the schema document matches the files


def _documented() -> dict[str, dict[str, tuple[str, ...]]]:
    """Dataset rows of the three tables of docs/golden.md: kind -> name -> columns."""
    text = DOC.read_text()
    sections = {"tile": "### Tile cases", "layer": "### Layer cases",
                "mlp_step": "### MLP-step cases"}
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for kind, head in sections.items():
        body = text.split(head, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        rows = {}
        for line in body.splitlines():
            hit = re.match(r"^\| `([^`]+)` \|(.*)\|$", line)
            if hit:
                cells = tuple(c.strip() for c in hit.group(2).split("|"))
                rows[hit.group(1)] = cells
        out[kind] = rows
    return out


def test_schema_document_matches_the_schema_module():
    documented = _documented()
    for kind, table in schema.DATASETS.items():
        assert list(documented[kind]) == [s.name for s in table], kind
        for spec in table:
            role, shape, units, what = documented[kind][spec.name][:4]
            assert (role, shape, units) == (spec.role, spec.shape, spec.units), spec.name
            if spec.dtype == "int64":
                assert "int64" in what, spec.name
            if spec.role == "output" and kind != "mlp_step":
                assert f"scale `{spec.scale}`" in what, spec.name


def test_every_documented_dataset_is_in_the_suite_and_nothing_else(suite_path):
    documented = _documented()
    seen: dict[str, set[str]] = {kind: set() for kind in documented}
    with h5py.File(suite_path, "r") as f:
        assert f.attrs["kind"] == schema.SUITE_KIND
        for case, grp in f["cases"].items():
            kind = grp.attrs["case_kind"]
            layers = list(grp.attrs.get("layers", []))
            names: list[str] = []
            grp.visititems(lambda n, obj, names=names: names.append(n)
                           if isinstance(obj, h5py.Dataset) else None)
            for name in names:
                generic = name
                if "/" in name:
                    assert name.split("/", 1)[0] in layers, name
                    generic = "<layer>/" + name.split("/", 1)[1]
                assert generic in documented[kind], f"{case}/{name} is not documented"
                spec = schema.dataset_spec(kind, name)
                dset = grp[name]
                assert dset.attrs["units"] == spec.units and dset.attrs["role"] == spec.role
                assert dset.dtype == np.dtype(spec.dtype), f"{case}/{name}: {dset.dtype}"
                if spec.role == "output":
                    assert dset.attrs["scale"] == spec.scale
                    assert dset.attrs["tolerance"] == schema.DEFAULT_TOLERANCE
                seen[kind].add(generic)
    for kind, rows in documented.items():
        assert set(rows) == seen[kind], f"{kind}: documented but in no case: " \
                                        f"{set(rows) - seen[kind]}"


def test_documented_specification_example_and_default_spec_load(tmp_path):
    from xbarsim.golden.spec import load_spec

    text = DOC.read_text().split("## Writing a suite specification", 1)[1]
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    assert set(example["tiles"][0]) == set(load_spec.__globals__["_TILE_KEYS"])
    example["tiles"][0].pop("terminals")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(example))
    spec = load_spec(path)
    assert [t.name for t in spec.tiles] == ["my_tile"] and spec.layers[0].n_in == 40
    assert len(load_spec().names) == 23


def test_bad_specification_exits_2_naming_case_and_key(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("seed: 1\ntiles:\n  - {name: a, shape: [4, 4], r_rw: 1.0, g: [1e-6, 1.0e-5]}\n"
                    "  - {name: a, shape: [4], terminals: segment, r_source: 2.0}\n"
                    "layers:\n  - {name: l, n_in: 4, n_out: 2, hardware: {crossbar: "
                    "{n_rows: 0}}}\n")
    result = invoke("golden", "make", spec, "--out", tmp_path / "o.h5")
    assert result.exit_code == 2
    for fragment in ("tiles[0] (a): unknown key 'r_rw'", "did you mean 'r_row'",
                     "tiles[0] (a).g[0]: expected a number, got the string '1e-6'",
                     "tiles[1] (a).shape: expected [n_rows, n_cols]",
                     "tiles[1] (a).r_source: not with terminals: segment",
                     "tiles[1].name: 'a' is used twice", "layers[0] (l).hardware: "
                     "hardware.crossbar.n_rows"):
        assert fragment in result.output, result.output
    assert not (tmp_path / "o.h5").exists()
    spec.write_text("layers:\n  - {name: l, n_in: 4, n_out: 2, hardware: {solver: "
                    "{method: aam}}}\n")
    result = invoke("golden", "make", spec, "--out", tmp_path / "o.h5")
    assert result.exit_code == 2 and "needs an exact solver" in result.output


def test_existing_output_is_not_overwritten(suite_path):
    before = suite_path.stat().st_mtime_ns
    result = invoke("golden", "make", "--out", suite_path)
    assert result.exit_code == 2 and "use --force" in result.output
    assert suite_path.stat().st_mtime_ns == before


def test_spec_and_show_commands(suite_path):
    result = invoke("golden", "spec")
    assert result.exit_code == 0 and "txsim_256x256" in result.output
    result = invoke("golden", "show", suite_path)
    assert result.exit_code == 0
    assert "layer_txsim [layer]" in result.output and "xi_write" in result.output


# ---------------------------------------------------------------------------------------------
# the reference's content


def test_tile_outputs_are_consistent(suite):
    for name, case in suite["cases"].items():
        if case["attrs"]["case_kind"] != "tile":
            continue
        d = case["data"]
        scale = np.max(np.abs(d["v"]) @ d["g"], axis=1, keepdims=True)
        assert np.all(np.abs(d["v"] @ d["g_eff"] - d["i_sense"]) <= 1e-14 * scale), name
        back = np.max(np.abs(d["d"]) @ d["g"].T, axis=1, keepdims=True)
        assert np.all(np.abs(d["d"] @ d["g_eff"].T - d["i_back"]) <= 1e-14 * back), name
        if "i_spice" in d:
            assert np.all(np.abs(d["i_spice"] - d["i_sense"]) <= 1e-12 * scale), name
        if "u" in d:   # the device currents of the last row add up to the sense currents
            dev = np.einsum("bj,j->bj", (d["u"] - d["w"])[:, -1, :], d["g"][-1])
            assert dev.shape == d["i_sense"].shape
    cancelling = suite["cases"]["txsim_64x64"]["data"]
    ideal = cancelling["v"][4] @ cancelling["g"][:, 0]
    assert abs(ideal) < 1e-20 and abs(cancelling["i_sense"][4, 0]) > 1e-12


def test_layer_ideal_is_the_matrix_product(suite):
    d = suite["cases"]["layer_ideal"]["data"]
    assert np.allclose(d["y_forward"], d["x"] @ d["weights"], rtol=0, atol=1e-12)
    assert np.allclose(d["y_backward"], d["delta"] @ d["weights"].T, rtol=0, atol=1e-12)
    assert "xi_write" not in d


def _devices(case):
    """Devices of a case's hardware, one per master array (as the tile builds them)."""
    from xbarsim.config import load_config
    from xbarsim.hardware.tile import Tile

    hw = load_config({"hardware": yaml.safe_load(case["attrs"]["hardware_yaml"])}).hardware
    n_in, n_out = case["attrs"]["n_in"], case["attrs"]["n_out"]
    tile = Tile(n_in, n_out, hw, rng=np.random.default_rng(0), name="x")
    return [[x.device for x in blk.masters] for blk in tile.blocks]


@pytest.mark.parametrize("name", ["layer_txsim", "layer_tile_adc"])
def test_stored_draws_reproduce_the_update_exactly(suite, name):
    """g_updated from g_programmed, dg_request, step_gain and xi_write: bit for bit."""
    from xbarsim.kernels import update as kernels

    case = suite["cases"][name]
    d = case["data"]
    devices = _devices(case)
    assert "xi_write" in d
    if name == "layer_tile_adc":
        assert "step_gain" in d and "pv_factor" in d
    for b, (r0, r1, c0, c1) in enumerate(d["blocks"]):
        for a, device in enumerate(devices[b]):
            rows, cols = r1 - r0, c1 - c0
            g0 = d["g_programmed"][b, a, :rows, :cols]
            dg = d["dg_request"][b, a, :rows, :cols]
            if "step_gain" in d:
                dg = dg * d["step_gain"][b, a, :rows, :cols]
            xi = d["xi_write"][b, a, :rows, :cols]
            v = np.full(g0.size, device.v)
            new = kernels.apply_update(device.model_code, g0.ravel(), dg.ravel(), v,
                                       kernels.saturation(v), xi.ravel(), device.params)
            assert np.array_equal(new.reshape(g0.shape), d["g_updated"][b, a, :rows, :cols])
            assert np.all(np.isnan(d["xi_write"][b, a, rows:, :]))


def test_realised_noise_inversion_reproduces_the_update(suite):
    """The generator-agnostic path (noise drawn inside a kernel, not observed) also works."""
    from xbarsim.golden.make import _invert_write_noise

    case = suite["cases"]["layer_tile_adc"]
    d = case["data"]
    devices = _devices(case)
    r0, r1, c0, c1 = d["blocks"][0]
    g0 = d["g_programmed"][0, 0, :r1 - r0, :c1 - c0]
    req = d["dg_request"][0, 0, :r1 - r0, :c1 - c0]
    g1 = d["g_updated"][0, 0, :r1 - r0, :c1 - c0]
    device = devices[0][0]
    xi = _invert_write_noise(_with_gain(device, d["step_gain"][0, 0, :r1 - r0, :c1 - c0]),
                             g0, req, g1)
    recorded = d["xi_write"][0, 0, :r1 - r0, :c1 - c0]
    inside = (g1 > device.g_min) & (g1 < device.g_max) & (recorded != 0)
    assert inside.sum() > 10
    assert np.allclose(xi[inside], recorded[inside], rtol=1e-9, atol=1e-12)


def _with_gain(device, gain):
    """The device with the stored step gains (a view of the device for the inversion)."""
    class View:
        def __getattr__(self, name):
            return gain if name == "step_gain" else getattr(device, name)
    return View()


def test_mlp_step_reproduces_digital_parts(suite):
    d = suite["cases"]["mlp_step"]["data"]
    lr = float(d["lr"])
    for layer in ("fc1", "fc2"):
        grad = d[f"{layer}/grad_output"]
        assert np.allclose(d[f"{layer}/bias_updated"], d[f"{layer}/bias"] - lr * grad.sum(0),
                           rtol=0, atol=1e-15)
    logits = d["logits"]
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(len(d["labels"])), d["labels"]].mean()
    assert abs(loss - float(d["loss"])) < 1e-14
    assert np.array_equal(d["fc2/y_forward"], logits)
