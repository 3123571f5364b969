"""Datasets: IDX reader, MNIST lookup and checksummed download, CIFAR-10 reader, batches."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from xbarsim.data import (
    BatchIterator,
    DataFormatError,
    DataNotFoundError,
    download_mnist,
    find_mnist,
    load_cifar10,
    load_mnist,
    mnist_cache_dir,
    read_cifar10_batch,
    read_idx,
    synthetic,
)


# --------------------------------------------------------------------------- helpers
def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array, written from the format description."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_idx(path: Path, arr: np.ndarray) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def write_mnist(folder: Path, rng, n_train=12, n_test=7, *, subset=False, gz=True, value=None):
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    tr = "train-6k" if subset else "train"
    data = {}
    for split, n in ((tr, n_train), ("t10k", n_test)):
        img = rng.integers(0, 256, size=(n, 28, 28)) if value is None else np.full((n, 28, 28),
                                                                                     value)
        lab = rng.integers(0, 10, size=n)
        write_idx(folder / f"{split}-images-idx3-ubyte{ext}", img)
        write_idx(folder / f"{split}-labels-idx1-ubyte{ext}", lab)
        data[split] = (img, lab)
    return data


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """No XBARSIM_DATA, and a private cache directory."""
    monkeypatch.delenv("XBARSIM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_dir(tmp_path):
    """Serve tmp_path/'srv' on 127.0.0.1 from a thread; yields (folder, base_url)."""
    root = tmp_path / "srv"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip(tmp_path, rng, gz):
    arr = rng.integers(0, 256, size=(5, 4, 3))
    got = read_idx(write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), arr))
    assert got.dtype == np.uint8 and got.shape == (5, 4, 3)
    assert_array_equal(got, arr)


def test_read_idx_rejects_corrupt_files(tmp_path, rng):
    good = idx_bytes(rng.integers(0, 256, size=(3, 2, 2)))
    cases = {
        "magic.idx": b"\x01" + good[1:],                  # bad magic
        "code.idx": good[:2] + b"\x07" + good[3:],        # unknown type code
        "short.idx": good[:-1],                           # truncated body
        "header.idx": good[:6],                           # truncated header
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataFormatError, match=name):
            read_idx(tmp_path / name)
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataFormatError, match="bad.gz"):
        read_idx(tmp_path / "bad.gz")


@pytest.mark.parametrize("gz,subset", [(True, False), (False, True)])
def test_load_mnist_generated(tmp_path, rng, no_env, gz, subset):
    data = write_mnist(tmp_path / "m", rng, gz=gz, subset=subset)
    x_tr, y_tr, x_te, y_te = load_mnist(tmp_path / "m", download=False)
    tr = "train-6k" if subset else "train"
    assert x_tr.shape == (12, 1, 28, 28) and x_te.shape == (7, 1, 28, 28)
    assert x_tr.dtype == np.float64 and y_tr.dtype == np.int64
    assert_array_equal(x_tr[:, 0] * 255, data[tr][0])
    assert_array_equal(y_te, data["t10k"][1])
    assert x_tr.min() >= 0 and x_tr.max() <= 1
    x_tr, y_tr, x_te, y_te = load_mnist(tmp_path / "m", n_train=5, n_test=3, download=False)
    assert x_tr.shape[0] == 5 and y_te.shape == (3,)
    with pytest.raises(ValueError, match="n_train"):
        load_mnist(tmp_path / "m", n_train=13, download=False)


def test_load_mnist_mismatched_counts(tmp_path, rng, no_env):
    write_mnist(tmp_path / "m", rng)
    write_idx(tmp_path / "m" / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, size=6))
    with pytest.raises(DataFormatError, match="7 images but .* 6 labels"):
        load_mnist(tmp_path / "m", download=False)


def test_lookup_order_data_dir_then_env_then_cache(tmp_path, rng, no_env, monkeypatch):
    for name, value in (("arg", 10), ("env", 20), ("cache", 30)):
        write_mnist(tmp_path / name, rng, value=value)
    monkeypatch.setenv("XBARSIM_DATA", str(tmp_path / "env"))

    def first_pixel(**kw):
        return round(load_mnist(download=False, cache_dir=tmp_path / "cache", **kw)[0][0, 0, 0, 0]
                     * 255)

    assert first_pixel(data_dir=tmp_path / "arg") == 10
    assert first_pixel() == 20
    monkeypatch.delenv("XBARSIM_DATA")
    assert first_pixel() == 30
    # an incomplete explicit folder is skipped, a mnist/ sub-folder is found
    (tmp_path / "incomplete").mkdir()
    write_mnist(tmp_path / "parent" / "mnist", rng, value=40)
    assert first_pixel(data_dir=tmp_path / "incomplete") == 30
    assert first_pixel(data_dir=tmp_path / "parent") == 40


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert mnist_cache_dir() == tmp_path / "xbarsim" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert mnist_cache_dir() == Path.home() / ".cache" / "xbarsim" / "mnist"


def test_missing_without_download_says_what_to_put_where(tmp_path, no_env):
    with pytest.raises(DataNotFoundError) as err:
        load_mnist(tmp_path / "nothing", download=False)
    msg = str(err.value)
    for needle in ("t10k-images-idx3-ubyte", "train-6k-images-idx3-ubyte", "XBARSIM_DATA",
                   str(tmp_path / "nothing"), str(mnist_cache_dir())):
        assert needle in msg


# --------------------------------------------------------------------------- download
def _serve_mnist(root: Path, rng) -> dict[str, str]:
    data = write_mnist(root, rng, n_train=9, n_test=4)
    assert data
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in root.iterdir()}


def test_download_from_local_mirror(tmp_path, rng, no_env, http_dir):
    root, url = http_dir
    sums = _serve_mnist(root, rng)
    cache = tmp_path / "cache"
    x_tr, y_tr, x_te, y_te = load_mnist(cache_dir=cache, mirrors=[url], checksums=sums)
    assert x_tr.shape == (9, 1, 28, 28) and y_te.shape == (4,)
    assert_array_equal(y_tr, read_idx(root / "train-labels-idx1-ubyte.gz"))
    assert sorted(p.name for p in cache.iterdir()) == sorted(sums)
    # second call: found in the cache, no network needed (the mirror is gone)
    assert find_mnist(cache_dir=cache) is not None
    load_mnist(cache_dir=cache, mirrors=["http://127.0.0.1:1/"], checksums=sums)


def test_download_falls_back_to_the_next_mirror(tmp_path, rng, no_env, http_dir):
    root, url = http_dir
    sums = _serve_mnist(root, rng)
    dest = download_mnist(tmp_path / "c", mirrors=[url + "missing/", url], checksums=sums)
    assert sorted(p.name for p in dest.iterdir()) == sorted(sums)


def test_md5_mismatch_leaves_no_file(tmp_path, rng, no_env, http_dir):
    root, url = http_dir
    sums = _serve_mnist(root, rng)
    sums["t10k-labels-idx1-ubyte.gz"] = "0" * 32
    cache = tmp_path / "cache"
    with pytest.raises(DataNotFoundError, match="md5"):
        load_mnist(cache_dir=cache, mirrors=[url], checksums=sums)
    left = sorted(p.name for p in cache.iterdir())
    assert "t10k-labels-idx1-ubyte.gz" not in left
    assert not any(name.endswith(".part") for name in left)


def test_offline_raises_one_clear_error(tmp_path, no_env):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache = tmp_path / "cache"
    with pytest.raises(DataNotFoundError) as err:
        load_mnist(cache_dir=cache, mirrors=[f"http://127.0.0.1:{port}/"], timeout=5)
    msg = str(err.value)
    assert "download failed" in msg and "train-images-idx3-ubyte" in msg
    assert "XBARSIM_DATA" in msg and str(cache) in msg
    assert not any(p.name.endswith(".part") for p in cache.iterdir())


# --------------------------------------------------------------------------- real MNIST
def test_real_mnist_subset(mnist_path):
    x_tr, y_tr, x_te, y_te = load_mnist(mnist_path, download=False)
    assert x_tr.shape == (6000, 1, 28, 28) and x_te.shape == (10000, 1, 28, 28)
    assert x_tr.dtype == np.float64 and 0.0 <= x_tr.min() and x_tr.max() == 1.0
    assert_array_equal(np.bincount(y_tr, minlength=10),
                       [592, 671, 581, 608, 623, 514, 608, 651, 551, 601])
    assert np.bincount(y_te).sum() == 10000
    assert hashlib.md5((mnist_path / "t10k-labels-idx1-ubyte.gz").read_bytes()).hexdigest() \
        == "ec29112dd5afa0611ce80d1b7f02629c"


# --------------------------------------------------------------------------- CIFAR-10
def write_cifar(path: Path, labels, images):
    rec = np.concatenate([np.asarray(labels, np.uint8)[:, None],
                          images.reshape(len(labels), -1).astype(np.uint8)], axis=1)
    path.write_bytes(rec.tobytes())


def test_cifar10_reader_on_generated_files(tmp_path, rng):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    imgs = {}
    for name, n in (("data_batch_1.bin", 3), ("data_batch_2.bin", 2), ("test_batch.bin", 4)):
        img = rng.integers(0, 256, size=(n, 3, 32, 32))
        lab = rng.integers(0, 10, size=n)
        write_cifar(folder / name, lab, img)
        imgs[name] = (img, lab)
    x, y = read_cifar10_batch(folder / "test_batch.bin")
    assert x.shape == (4, 3, 32, 32)
    assert_array_equal(x * 255, imgs["test_batch.bin"][0])  # channel planes R, G, B in order
    x_tr, y_tr, x_te, y_te = load_cifar10(tmp_path)
    assert x_tr.shape == (5, 3, 32, 32)
    assert_array_equal(y_tr, np.concatenate([imgs["data_batch_1.bin"][1],
                                             imgs["data_batch_2.bin"][1]]))
    (folder / "test_batch.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(DataFormatError, match="test_batch.bin"):
        load_cifar10(tmp_path)
    with pytest.raises(DataNotFoundError, match="data_batch_1.bin"):
        load_cifar10(tmp_path / "none")


# --------------------------------------------------------------------------- synthetic + batches
def test_synthetic_is_seeded_and_learnable():
    a = synthetic(50, 20, shape=(1, 4, 4), seed=3)
    b = synthetic(50, 20, shape=(1, 4, 4), seed=3)
    c = synthetic(50, 20, shape=(1, 4, 4), seed=4)
    for u, v in zip(a, b, strict=True):
        assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    x_tr, y_tr, x_te, y_te = synthetic(400, 200, shape=(1, 6, 6), noise=0.2, seed=0)
    # nearest class mean separates the classes (it is learnable)
    means = np.stack([x_tr[y_tr == k].mean(0) for k in range(10)])
    pred = ((x_te[:, None] - means[None]) ** 2).sum(axis=(2, 3, 4)).argmin(1)
    assert (pred == y_te).mean() > 0.9


def test_batch_iterator_shuffles_each_pass_and_covers_everything(rng):
    x = np.arange(10.0)[:, None]
    y = np.arange(10)
    it = BatchIterator(x, y, 4, rng=np.random.default_rng(0))
    assert len(it) == 3
    passes = [np.concatenate([yb for _, yb in it]) for _ in range(2)]
    for p in passes:
        assert sorted(p) == list(range(10))
    assert not np.array_equal(passes[0], passes[1])
    for xb, yb in it:
        assert_array_equal(xb[:, 0], yb)  # pairs stay together
    assert len(BatchIterator(x, y, 4, shuffle=False, drop_last=True)) == 2
    assert_array_equal(next(iter(BatchIterator(x, y, 4, shuffle=False)))[1], [0, 1, 2, 3])
    with pytest.raises(ValueError, match="rng"):
        BatchIterator(x, y, 4)
    with pytest.raises(ValueError, match="batch_size"):
        BatchIterator(x, y, 0, shuffle=False)
