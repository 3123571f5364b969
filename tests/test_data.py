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
    KNOWN_MNIST_FILES,
    BatchIterator,
    DataFormatError,
    DataNotFoundError,
    UnverifiedDataWarning,
    download_mnist,
    find_mnist,
    load_cifar10,
    load_mnist,
    mnist_cache_dir,
    read_cifar10_batch,
    read_idx,
    synthetic,
)

# generated files are MNIST-format but not MNIST: their md5 is unknown, and loading them
# warns (the warning itself is tested below)
unverified = pytest.mark.filterwarnings("ignore::xbarsim.data.UnverifiedDataWarning")


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


def digit_like(rng, n: int) -> np.ndarray:
    """(n, 28, 28) uint8 pictures: one bright blurred stroke each on a black background."""
    yy, xx = np.mgrid[0:28, 0:28]
    out = np.empty((n, 28, 28), dtype=np.uint8)
    for k in range(n):
        cy, cx = rng.uniform(9, 19, size=2)
        angle = rng.uniform(0, np.pi)
        along = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        across = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        stroke = np.exp(-0.5 * (across / 1.5) ** 2) * (np.abs(along) < rng.uniform(4, 9))
        out[k] = np.rint(255 * stroke)
    return out


def write_mnist(folder: Path, rng, n_train=12, n_test=7, *, subset=False, gz=True, value=None):
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    tr = "train-6k" if subset else "train"
    data = {}
    for split, n in ((tr, n_train), ("t10k", n_test)):
        img = digit_like(rng, n) if value is None else np.full((n, 28, 28), value)
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


@unverified
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


@unverified
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
        # constant images are refused by the content check: read them unverified
        return round(load_mnist(download=False, cache_dir=tmp_path / "cache", verify=False,
                                **kw)[0][0, 0, 0, 0] * 255)

    assert first_pixel(data_dir=tmp_path / "arg") == 10
    assert first_pixel() == 20
    monkeypatch.delenv("XBARSIM_DATA")
    assert first_pixel() == 30
    # a mnist/ sub-folder of the folder given is found
    write_mnist(tmp_path / "parent" / "mnist", rng, value=40)
    assert first_pixel(data_dir=tmp_path / "parent") == 40


@pytest.mark.parametrize("where", ["data_dir", "env"])
def test_a_folder_given_without_the_data_is_an_error_naming_it(tmp_path, rng, no_env,
                                                               monkeypatch, where):
    """A typo in --data-dir / data.data_dir / $XBARSIM_DATA must not fall through.

    The environment folder and the cache both hold a complete set and the mirrors would serve
    one; the old lookup silently used the next of them.
    """
    write_mnist(tmp_path / "env", rng)
    write_mnist(tmp_path / "cache", rng)
    (tmp_path / "typo").mkdir()
    write_idx(tmp_path / "typo" / "t10k-images-idx3-ubyte.gz", digit_like(rng, 3))
    kw = {"cache_dir": tmp_path / "cache", "mirrors": ["http://127.0.0.1:1/"]}
    if where == "data_dir":
        monkeypatch.setenv("XBARSIM_DATA", str(tmp_path / "env"))
        cases = {tmp_path / "typo": "found only t10k-images-idx3-ubyte.gz",
                 tmp_path / "missing": "the folder does not exist"}
        for folder, found in cases.items():
            with pytest.raises(DataNotFoundError) as err:
                load_mnist(folder, data_dir_name="--data-dir", **kw)
            msg = str(err.value)
            for needle in (f"--data-dir {folder}:", found, "t10k-labels-idx1-ubyte",
                           "train-6k-images-idx3-ubyte"):
                assert needle in msg, (needle, msg)
            assert find_mnist(folder, cache_dir=tmp_path / "cache") is None
    else:
        monkeypatch.setenv("XBARSIM_DATA", str(tmp_path / "typo"))
        with pytest.raises(DataNotFoundError) as err:
            load_mnist(**kw)
        msg = str(err.value)
        assert f"$XBARSIM_DATA {tmp_path / 'typo'}:" in msg and "unset XBARSIM_DATA" in msg
        assert find_mnist(cache_dir=tmp_path / "cache") is None


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert mnist_cache_dir() == tmp_path / "xbarsim" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert mnist_cache_dir() == Path.home() / ".cache" / "xbarsim" / "mnist"


def test_missing_without_download_says_what_to_put_where(tmp_path, no_env):
    with pytest.raises(DataNotFoundError) as err:
        load_mnist(cache_dir=tmp_path / "nothing", download=False)
    msg = str(err.value)
    for needle in ("t10k-images-idx3-ubyte", "train-6k-images-idx3-ubyte", "XBARSIM_DATA",
                   str(tmp_path / "nothing"), "data.download is off"):
        assert needle in msg


# --------------------------------------------------------------------------- download
def _serve_mnist(root: Path, rng) -> dict[str, str]:
    data = write_mnist(root, rng, n_train=9, n_test=4)
    assert data
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in root.iterdir()}


@unverified
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
    left = sorted(p.name for p in cache.iterdir()) if cache.exists() else []
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
    assert not cache.exists()  # nothing was fetched: no (empty) cache folder is left behind


def test_failed_download_leaves_no_empty_cache_folder(tmp_path, no_env):
    """The folders a failed download created are removed; existing ones and fetched files stay."""
    cache = tmp_path / "xdg" / "xbarsim" / "mnist"   # none of the three exists yet
    with pytest.raises(DataNotFoundError):
        load_mnist(mirrors=["http://127.0.0.1:1/"], timeout=5)  # the default cache under xdg
    assert not (tmp_path / "xdg").exists()
    assert mnist_cache_dir() == cache
    # a folder that existed before is kept, even when empty
    cache.mkdir(parents=True)
    with pytest.raises(DataNotFoundError):
        download_mnist(mirrors=["http://127.0.0.1:1/"], timeout=5)
    assert cache.is_dir() and not any(cache.iterdir())


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


OFFICIAL_TRAIN_LABELS_START = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7, 2, 8, 6, 9]


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_known_md5s_match_the_files_and_the_subset_is_what_it_claims(mnist_path):
    """The md5 table's entries are those of the files, and the 6k subset is the official prefix.

    Checked here: each file's gzip and IDX md5, record count and header; the subset's labels
    begin like the official training labels and count as documented. When the official 60k
    training files sit next to the subset, the subset must equal their first 6000 records.
    """
    seen = 0
    for known in KNOWN_MNIST_FILES:
        path = mnist_path / (known.name + ".gz")
        if not path.exists():  # the official 60k training files are not in the shared folder
            continue
        stored = path.read_bytes()
        assert md5_of(stored) == known.gz_md5, path
        assert md5_of(gzip.decompress(stored)) == known.idx_md5, path
        assert read_idx(path).shape[0] == known.n
        seen += 1
    assert seen >= 4
    images = gzip.decompress((mnist_path / "train-6k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((mnist_path / "train-6k-labels-idx1-ubyte.gz").read_bytes())
    # magic 0x803 / 0x801, header count 6000 = 0x1770, 28 x 28, nothing after the records
    assert images[:16] == bytes.fromhex("00000803" "00001770" "0000001c" "0000001c")
    assert labels[:8] == bytes.fromhex("00000801" "00001770")
    assert len(images) == 16 + 6000 * 784 and len(labels) == 8 + 6000
    y = read_idx(mnist_path / "train-6k-labels-idx1-ubyte.gz")
    assert y[:20].tolist() == OFFICIAL_TRAIN_LABELS_START
    assert np.bincount(y).tolist() == [592, 671, 581, 608, 623, 514, 608, 651, 551, 601]
    full = mnist_path / "train-labels-idx1-ubyte.gz"
    if full.exists():  # only where a user keeps the official files next to the subset
        assert_array_equal(read_idx(full)[:6000], y)
        assert_array_equal(read_idx(mnist_path / "train-images-idx3-ubyte.gz")[:6000],
                           read_idx(mnist_path / "train-6k-images-idx3-ubyte.gz"))


def test_known_files_load_without_warning_and_their_source_is_recorded(mnist_path):
    *_, source = load_mnist(mnist_path, download=False, return_source=True)
    assert source.folder == mnist_path.resolve()
    assert [p.name for p in source.files] == [
        "train-6k-images-idx3-ubyte.gz", "train-6k-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert source.md5 == tuple(md5_of(p.read_bytes()) for p in source.files)
    assert source.known_as[2] == "official MNIST test images (10,000)"
    assert "first 6,000 official training images" in source.known_as[0]
    attrs = source.attrs()
    assert attrs["data_dir"] == str(mnist_path.resolve())
    assert attrs["data_md5"][3] == "ec29112dd5afa0611ce80d1b7f02629c"


def real_set(mnist_path: Path, folder: Path, *, skip: tuple[str, ...] = ()) -> Path:
    """``folder`` with links to the real MNIST files except those named in ``skip``."""
    folder.mkdir()
    for name in ("train-6k-images-idx3-ubyte.gz", "train-6k-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        if name not in skip:
            (folder / name).symlink_to(mnist_path / name)
    return folder


def test_random_pixels_under_a_valid_header_are_refused(tmp_path, mnist_path, rng):
    """Random bytes with a correct IDX header trained to "completed, 15 %" before."""
    m = real_set(mnist_path, tmp_path / "m", skip=("train-6k-images-idx3-ubyte.gz",))
    write_idx(m / "train-6k-images-idx3-ubyte.gz", rng.integers(0, 256, size=(6000, 28, 28)))
    with pytest.raises(DataFormatError) as err:
        load_mnist(m)
    msg = str(err.value)
    assert "train-6k-images-idx3-ubyte.gz: not MNIST training images" in msg
    assert "uncorrelated" in msg and "none of the known MNIST files" in msg
    x_tr = load_mnist(m, verify=False)[0]  # the user may insist
    assert x_tr.shape == (6000, 1, 28, 28)


def test_all_zero_labels_are_refused(tmp_path, mnist_path):
    """All-zero labels gave test accuracy 8.4 % and exit 0 before."""
    m = real_set(mnist_path, tmp_path / "m", skip=("train-6k-labels-idx1-ubyte.gz",))
    write_idx(m / "train-6k-labels-idx1-ubyte.gz", np.zeros(6000, dtype=np.uint8))
    with pytest.raises(DataFormatError, match=r"train-6k-labels-idx1-ubyte.gz: not MNIST "
                                              r"training labels: implausible class balance: "
                                              r"counts per class \[6000, 0, 0"):
        load_mnist(m)


def test_a_known_file_in_the_wrong_role_is_refused(tmp_path, mnist_path):
    m = tmp_path / "m"
    m.mkdir()
    for src, dst in (("t10k-images", "train-images"), ("t10k-labels", "train-labels"),
                     ("t10k-images", "t10k-images"), ("t10k-labels", "t10k-labels")):
        kind = "idx3" if "images" in src else "idx1"
        (m / f"{dst}-{kind}-ubyte.gz").symlink_to(mnist_path / f"{src}-{kind}-ubyte.gz")
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte.gz: this file is the "
                                              "official MNIST test images"):
        load_mnist(m)


def test_official_content_is_known_in_any_packaging(tmp_path, mnist_path):
    """Gunzipped or re-compressed official files are recognised by their IDX md5 (no warning)."""
    m = tmp_path / "m"
    m.mkdir()
    for name in ("train-6k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (m / name).write_bytes(gzip.decompress((mnist_path / f"{name}.gz").read_bytes()))
    for name in ("train-6k-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        raw = gzip.decompress((mnist_path / f"{name}.gz").read_bytes())
        (m / f"{name}.gz").write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
    *_, source = load_mnist(m, return_source=True)
    assert source.known_as[1] == "MNIST training subset: the first 6,000 official training labels"
    assert source.known_as[3] == "official MNIST test labels (10,000)"


def test_unknown_but_plausible_files_load_with_a_warning(tmp_path, mnist_path):
    m = real_set(mnist_path, tmp_path / "m", skip=("t10k-images-idx3-ubyte.gz",))
    images = read_idx(mnist_path / "t10k-images-idx3-ubyte.gz")
    images[0, 14, 14] ^= 1  # one pixel changed: no longer the official file
    write_idx(m / "t10k-images-idx3-ubyte.gz", images)
    with pytest.warns(UnverifiedDataWarning, match="t10k-images-idx3-ubyte.gz: md5 [0-9a-f]{32} "
                                                   "is not one of the known MNIST files"):
        *_, source = load_mnist(m, return_source=True)
    assert source.known_as[2] == "unknown md5 (content checked)"
    assert source.md5[2] == md5_of((m / "t10k-images-idx3-ubyte.gz").read_bytes())


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
    x_tr, y_tr, x_te, y_te, source = load_cifar10(tmp_path, return_source=True)
    assert x_tr.shape == (5, 3, 32, 32)
    assert source.folder == folder.resolve()
    assert [p.name for p in source.files] == ["data_batch_1.bin", "data_batch_2.bin",
                                              "test_batch.bin"]
    assert source.md5[2] == md5_of((folder / "test_batch.bin").read_bytes())
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
