"""xbarsim.io.hdf5: tile-study layout, provenance, overwrite protection, dataset reading."""

from __future__ import annotations

import ast
from pathlib import Path

import h5py
import numpy as np
import pytest
from numpy.testing import assert_array_equal

import xbarsim
from xbarsim.io import hdf5

PACKAGE = Path(xbarsim.__file__).resolve().parent


def _records(rng):
    datasets = {"g": (rng.uniform(1e-6, 1e-5, (4, 3)), "S"),
                "v": (rng.uniform(0, 1, (2, 4)), "V"),
                "i_nodal": (rng.uniform(0, 1e-5, (2, 3)), "A")}
    attrs = {"rows": 4, "cols": 3, "r_row": 1.0, "methods": ["ideal", "nodal"],
             "notes": "", "skipped": None, "ir_drop_argmax": np.array([0, 1, 2])}
    return datasets, attrs


def test_roundtrip_layout_and_provenance(tmp_path, rng):
    datasets, attrs = _records(rng)
    path = hdf5.write_tile_study(tmp_path / "t.h5", datasets=datasets, attrs=attrs)
    got = hdf5.read_tile_study(path)
    assert set(got["data"]) == set(datasets)
    for name, (arr, units) in datasets.items():
        assert_array_equal(got["data"][name], arr)
        assert got["units"][name] == units
    a = got["attrs"]
    for key in ("xbarsim_version", "created_utc", "numpy_version", "scipy_version",
                "numba_version", "h5py_version"):
        assert isinstance(a[key], str) and a[key]
    assert a["xbarsim_version"] == xbarsim.__version__
    assert a["created_utc"].endswith("+00:00")
    assert a["kind"] == "tile_study" and a["layout_version"] == hdf5.LAYOUT_VERSION
    assert a["rows"] == 4 and a["r_row"] == 1.0
    assert a["methods"] == ["ideal", "nodal"]
    assert "skipped" not in a                     # None values are not stored
    assert_array_equal(a["ir_drop_argmax"], [0, 1, 2])
    assert not list(tmp_path.glob(".*tmp*"))      # no temporary file left behind


def test_existing_file_is_refused_and_untouched(tmp_path, rng):
    datasets, attrs = _records(rng)
    path = tmp_path / "t.h5"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="--force"):
        hdf5.write_tile_study(path, datasets=datasets, attrs=attrs)
    assert path.read_bytes() == b"precious"
    hdf5.write_tile_study(path, datasets=datasets, attrs=attrs, force=True)
    assert hdf5.read_tile_study(path)["units"]["g"] == "S"


def test_failed_write_keeps_old_file(tmp_path, rng):
    datasets, attrs = _records(rng)
    path = tmp_path / "t.h5"
    path.write_bytes(b"precious")
    with pytest.raises(TypeError, match="bad"):
        hdf5.write_tile_study(path, datasets=datasets, attrs={"bad": object()}, force=True)
    assert path.read_bytes() == b"precious"
    assert not list(tmp_path.glob(".*tmp*"))


def test_missing_directory(tmp_path, rng):
    datasets, attrs = _records(rng)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hdf5.write_tile_study(tmp_path / "nope" / "t.h5", datasets=datasets, attrs=attrs)


def test_read_dataset(tmp_path):
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f["grp/g"] = np.eye(3)
        f["v"] = np.ones(3)
    assert_array_equal(hdf5.read_dataset(path, "grp/g"), np.eye(3))
    with pytest.raises(ValueError, match="no dataset 'x'.*grp/g"):
        hdf5.read_dataset(path, "x")
    with pytest.raises(ValueError, match="2 datasets"):
        hdf5.read_dataset(path)
    one = tmp_path / "one.h5"
    with h5py.File(one, "w") as f:
        f["only"] = np.arange(4.0)
    assert_array_equal(hdf5.read_dataset(one), np.arange(4.0))


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        hdf5.read_dataset(tmp_path / "missing.h5", "g")
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    with pytest.raises(OSError, match="bad.h5"):
        hdf5.read_dataset(bad, "g")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1.0
    with pytest.raises(ValueError, match="not an xbarsim tile-study"):
        hdf5.read_tile_study(other)


def test_only_io_hdf5_imports_h5py():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "h5py" or n.startswith("h5py.") for n in names):
                offenders.append(path.relative_to(PACKAGE).as_posix())
    assert set(offenders) <= {"io/hdf5.py"}, offenders


def test_run_and_checkpoint_record_every_version_and_read_attrs(tmp_path):
    import platform

    hdf5.write_run(tmp_path / "r.h5", attrs={"status": "completed", "warnings": []},
                   history={"epoch": [1.0]}, layers={})
    hdf5.write_checkpoint(tmp_path / "c.h5", {"model": {"w": np.ones(2)}}, attrs={"epoch": 1})
    for name, kind in (("r.h5", "run"), ("c.h5", "checkpoint")):
        attrs = hdf5.read_attrs(tmp_path / name)
        assert attrs["kind"] == kind
        assert set(hdf5.PROVENANCE_KEYS) <= set(attrs)
        assert attrs["python_version"] == (f"{platform.python_version()} "
                                           f"({platform.python_implementation()})")
        assert attrs["platform"] == platform.platform()
    assert hdf5.read_run(tmp_path / "r.h5")["attrs"]["warnings"] == []
    with pytest.raises(ValueError, match="not an xbarsim run or checkpoint"):
        hdf5.write_tile_study(tmp_path / "t.h5", datasets={}, attrs={})
        hdf5.read_attrs(tmp_path / "t.h5")


def test_a_failed_write_names_the_target_not_the_temporary_file(tmp_path, monkeypatch):
    real = h5py.File

    def refuse(name, mode="r", *args, **kwargs):
        if mode == "w":
            raise PermissionError(13, "Permission denied")
        return real(name, mode, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", refuse)
    with pytest.raises(OSError) as info:
        hdf5.write_run(tmp_path / "r.h5", attrs={}, history={}, layers={})
    message = str(info.value)
    assert f"{tmp_path / 'r.h5'}: cannot write in folder {tmp_path} (Permission denied)" \
        in message and ".tmp-" not in message
    assert list(tmp_path.iterdir()) == []
