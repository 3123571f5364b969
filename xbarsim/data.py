"""Datasets: MNIST (IDX files, checksummed download, cache), CIFAR-10 (binary), synthetic.

All loaders return ``(x_train, y_train, x_test, y_test)`` with images float64 in ``[0, 1]``
shaped NCHW ``(n, c, h, w)`` and labels int64 ``(n,)``.

MNIST lookup order (first directory holding a complete set wins):

1. the explicit ``data_dir`` argument (config ``data.data_dir`` / CLI ``--data-dir``);
2. the environment variable ``XBARSIM_DATA``;
3. the user cache ``$XDG_CACHE_HOME/xbarsim/mnist`` (default ``~/.cache/xbarsim/mnist``),
   where missing files are downloaded from the public mirrors with md5 checks.

For 1 and 2 both the directory itself and its ``mnist/`` sub-directory are searched. A complete
set is the two test files plus either the official 60k training files
(``train-images-idx3-ubyte``) or the 6k subset (``train-6k-images-idx3-ubyte``), each ``.gz``
or uncompressed.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from xbarsim.errors import XbarsimError

__all__ = [
    "DataError", "DataNotFoundError", "DataFormatError", "ChecksumError",
    "read_idx", "find_mnist", "download_mnist", "load_mnist", "mnist_cache_dir",
    "read_cifar10_batch", "load_cifar10", "synthetic", "BatchIterator",
    "MNIST_MIRRORS", "MNIST_MD5",
]

logger = logging.getLogger(__name__)


class DataError(XbarsimError):
    """Base class of dataset errors."""


class DataNotFoundError(DataError, FileNotFoundError):
    """Dataset files are absent (and could not be downloaded); says what to put where."""


class DataFormatError(DataError, ValueError):
    """A dataset file is corrupt or not in the expected format; the message names the file."""


class ChecksumError(DataFormatError):
    """A downloaded file does not have the expected md5."""


# --- IDX ---------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataFormatError(f"{path}: cannot read ({exc}); delete it and download it again") \
            from exc


def read_idx(path: str | os.PathLike[str]) -> NDArray:
    """Read an IDX file (``.gz`` or raw) into an array of its stored dtype.

    Parameters
    ----------
    path : path-like
        File name; gzip is used when it ends with ``.gz``.

    Returns
    -------
    ndarray
        Shape from the header, e.g. (n, 28, 28) uint8 images or (n,) uint8 labels.

    Raises
    ------
    DataFormatError
        Bad magic number, unknown type code, or a size that does not match the header; the
        message names the file.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataFormatError(f"{path}: not an IDX file (magic number must start with two zero "
                              f"bytes, got {raw[:4].hex() or 'empty file'})")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise DataFormatError(f"{path}: unknown IDX data type code 0x{code:02x}")
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise DataFormatError(f"{path}: truncated IDX header ({ndim} dimensions, {len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = len(raw) - 4 - 4 * ndim
    if body != expected:
        raise DataFormatError(f"{path}: header says shape {dims} ({expected} data bytes) but the "
                              f"file holds {body} data bytes; the file is corrupt or truncated")
    arr = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


# --- MNIST location and download -----------------------------------------------------------

MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
"""Public mirrors of the official MNIST files (tried in order)."""

MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
"""md5 of the official gzip files (as published by torchvision; t10k checked against
../shared/data/mnist)."""

_TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_TRAIN_SETS = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               ("train-6k-images-idx3-ubyte", "train-6k-labels-idx1-ubyte"))


def mnist_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/xbarsim/mnist``, default ``~/.cache/xbarsim/mnist``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "xbarsim" / "mnist"


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _complete_set(folder: Path) -> dict[str, Path] | None:
    """Return the four MNIST files in ``folder`` (60k train preferred over 6k), or None."""
    test = [_find_file(folder, s) for s in _TEST_FILES]
    if None in test:
        return None
    for img, lab in _TRAIN_SETS:
        tr = [_find_file(folder, img), _find_file(folder, lab)]
        if None not in tr:
            return {"train_images": tr[0], "train_labels": tr[1],  # type: ignore[dict-item]
                    "test_images": test[0], "test_labels": test[1]}  # type: ignore[dict-item]
    return None


def _candidates(data_dir: str | os.PathLike[str] | None,
                cache_dir: str | os.PathLike[str] | None) -> list[Path]:
    out: list[Path] = []
    for d in (data_dir, os.environ.get("XBARSIM_DATA") or None):
        if d:
            out += [Path(d), Path(d) / "mnist"]
    out.append(Path(cache_dir) if cache_dir is not None else mnist_cache_dir())
    return out


def find_mnist(data_dir: str | os.PathLike[str] | None = None, *,
               cache_dir: str | os.PathLike[str] | None = None) -> dict[str, Path] | None:
    """Locate a complete MNIST set in the lookup order (module docstring), without downloading.

    Returns
    -------
    dict or None
        ``{"train_images", "train_labels", "test_images", "test_labels"} -> Path``.
    """
    for folder in _candidates(data_dir, cache_dir):
        found = _complete_set(folder)
        if found is not None:
            logger.info("MNIST: using %s", folder)
            return found
    return None


def _download_file(name: str, md5: str, dest: Path, mirrors: Sequence[str],
                   timeout: float) -> list[str]:
    """Fetch ``name`` into ``dest`` from the first mirror that serves it with the right md5.

    Writes to a temporary file in ``dest`` and renames it atomically only after the md5
    matched, so no partial or corrupt file is ever left under the final name. Returns the
    list of failures (empty on success).
    """
    failures: list[str] = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + name
        fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=".part", dir=dest)
        try:
            digest = hashlib.md5()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                while chunk := resp.read(1 << 16):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != md5:
                failures.append(f"{url}: md5 {digest.hexdigest()} != expected {md5}")
                continue
            os.replace(tmp, dest / name)
            logger.info("MNIST: downloaded %s", url)
            return []
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            failures.append(f"{url}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return failures


def download_mnist(dest: str | os.PathLike[str] | None = None, *,
                   mirrors: Sequence[str] = MNIST_MIRRORS,
                   checksums: dict[str, str] | None = None, timeout: float = 30.0) -> Path:
    """Download the official MNIST files into ``dest`` (default the user cache), md5-checked.

    Files already present with the right md5 are kept.

    Parameters
    ----------
    dest : path-like, optional
        Target directory (created); default :func:`mnist_cache_dir`.
    mirrors : sequence of str
        Base URLs tried in order for each file.
    checksums : dict, optional
        ``{file name: md5}``; default :data:`MNIST_MD5`. The keys are the files fetched.
    timeout : float
        Socket timeout per request [s].

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DataNotFoundError
        A file could not be fetched with the right md5 from any mirror; the message lists every
        failure and how to install the files by hand.
    """
    dest = Path(dest) if dest is not None else mnist_cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    checksums = dict(MNIST_MD5 if checksums is None else checksums)
    for name, md5 in checksums.items():
        target = dest / name
        if target.is_file() and hashlib.md5(target.read_bytes()).hexdigest() == md5:
            continue
        failures = _download_file(name, md5, dest, mirrors, timeout)
        if failures:
            raise DataNotFoundError(
                f"could not download {name} into {dest}:\n  " + "\n  ".join(failures)
                + f"\n{_manual_instructions(dest)}")
    return dest


def _manual_instructions(cache: Path) -> str:
    return ("put the MNIST IDX files (.gz or uncompressed) t10k-images-idx3-ubyte, "
            "t10k-labels-idx1-ubyte and either train-images-idx3-ubyte + train-labels-idx1-ubyte "
            "(60k) or train-6k-images-idx3-ubyte + train-6k-labels-idx1-ubyte (6k subset) into "
            f"one folder and pass it as data_dir (--data-dir) or set XBARSIM_DATA to it, or copy "
            f"them into {cache}")


def _images(path: Path) -> NDArray[np.float64]:
    arr = read_idx(path)
    if arr.ndim != 3 or arr.dtype != np.uint8:
        raise DataFormatError(f"{path}: expected uint8 images of shape (n, h, w), got "
                              f"{arr.dtype} {arr.shape}")
    # (n, h, w) uint8 -> (n, 1, h, w) float64 in [0, 1]
    return (arr.astype(np.float64) / 255.0)[:, None, :, :]


def _labels(path: Path, n_classes: int = 10) -> NDArray[np.int64]:
    arr = read_idx(path)
    if arr.ndim != 1:
        raise DataFormatError(f"{path}: expected labels of shape (n,), got {arr.shape}")
    if arr.size and arr.max() >= n_classes:
        raise DataFormatError(f"{path}: label {int(arr.max())} outside 0..{n_classes - 1}")
    return arr.astype(np.int64)


def _limit(name: str, n: int | None, avail: int) -> int:
    if n is None:
        return avail
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name}: expected an int >= 1 or None, got {n!r}")
    if n > avail:
        raise ValueError(f"{name}: asked for {n} samples but only {avail} are available")
    return int(n)


def load_mnist(data_dir: str | os.PathLike[str] | None = None, *, n_train: int | None = None,
               n_test: int | None = None, download: bool = True,
               cache_dir: str | os.PathLike[str] | None = None,
               mirrors: Sequence[str] = MNIST_MIRRORS, checksums: dict[str, str] | None = None,
               timeout: float = 30.0) -> tuple[NDArray[np.float64], NDArray[np.int64],
                                               NDArray[np.float64], NDArray[np.int64]]:
    """Load MNIST as ``(x_train, y_train, x_test, y_test)``.

    Parameters
    ----------
    data_dir : path-like, optional
        First folder searched (see the module docstring for the lookup order).
    n_train, n_test : int, optional
        Keep only the first ``n`` samples of each split.
    download : bool
        Download the official files into the cache when no complete set is found.
    cache_dir : path-like, optional
        Override of the cache folder (default :func:`mnist_cache_dir`).
    mirrors, checksums, timeout
        Passed to :func:`download_mnist`.

    Returns
    -------
    x_train : ndarray of shape (n_train, 1, 28, 28), float64 in [0, 1]
    y_train : ndarray of shape (n_train,), int64
    x_test : ndarray of shape (n_test, 1, 28, 28), float64 in [0, 1]
    y_test : ndarray of shape (n_test,), int64

    Raises
    ------
    DataNotFoundError
        No complete set found and download disabled or impossible (offline); the message
        lists the folders searched and which files to put where.
    DataFormatError
        A file is corrupt, or images and labels disagree in number.
    """
    files = find_mnist(data_dir, cache_dir=cache_dir)
    cache = Path(cache_dir) if cache_dir is not None else mnist_cache_dir()
    if files is None:
        searched = ", ".join(str(p) for p in _candidates(data_dir, cache_dir))
        if not download:
            raise DataNotFoundError(f"MNIST not found (searched {searched}); "
                                    + _manual_instructions(cache))
        try:
            download_mnist(cache, mirrors=mirrors, checksums=checksums, timeout=timeout)
        except DataNotFoundError as exc:
            raise DataNotFoundError(f"MNIST not found (searched {searched}) and the download "
                                    f"failed: {exc}") from exc
        files = _complete_set(cache)
        if files is None:
            raise DataNotFoundError(f"MNIST download into {cache} did not produce a complete set; "
                                    + _manual_instructions(cache))
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        x = _images(files[f"{split}_images"])
        y = _labels(files[f"{split}_labels"])
        if x.shape[0] != y.shape[0]:
            raise DataFormatError(f"{files[split + '_images']} has {x.shape[0]} images but "
                                  f"{files[split + '_labels']} has {y.shape[0]} labels")
        k = _limit(f"n_{split}", n, x.shape[0])
        out += [np.ascontiguousarray(x[:k]), y[:k].copy()]
    return out[0], out[1], out[2], out[3]


# --- CIFAR-10 ------------------------------------------------------------------------------

_CIFAR_RECORD = 1 + 3 * 32 * 32


def read_cifar10_batch(
        path: str | os.PathLike[str]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Read one CIFAR-10 binary batch (``data_batch_k.bin`` / ``test_batch.bin``).

    Each record is 1 label byte followed by 3072 bytes: the 1024 red, 1024 green and 1024 blue
    values of a 32x32 image in row-major order.

    Returns
    -------
    x : ndarray of shape (n, 3, 32, 32), float64 in [0, 1]
    y : ndarray of shape (n,), int64

    Raises
    ------
    DataFormatError
        Size not a multiple of 3073 bytes, or a label above 9; names the file.
    """
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise DataFormatError(f"{path}: {raw.size} bytes is not a whole number of CIFAR-10 "
                              f"records of {_CIFAR_RECORD} bytes")
    rec = raw.reshape(-1, _CIFAR_RECORD)  # (n, 1 + 3*32*32)
    y = rec[:, 0].astype(np.int64)
    if y.max() > 9:
        raise DataFormatError(f"{path}: label {int(y.max())} outside 0..9; not a CIFAR-10 file")
    x = rec[:, 1:].reshape(-1, 3, 32, 32).astype(np.float64) / 255.0  # (n, c, h, w)
    return x, y


def load_cifar10(data_dir: str | os.PathLike[str], *, n_train: int | None = None,
                 n_test: int | None = None) -> tuple[NDArray[np.float64], NDArray[np.int64],
                                                     NDArray[np.float64], NDArray[np.int64]]:
    """Load CIFAR-10 (binary version) from ``data_dir`` or ``data_dir/cifar-10-batches-bin``.

    Training batches ``data_batch_1.bin`` ... ``data_batch_5.bin`` that exist are concatenated
    in order (at least one is required); ``test_batch.bin`` is the test split.

    Raises
    ------
    DataNotFoundError
        No training batch or no test batch; the message names the folder and files.
    """
    base = Path(data_dir)
    for folder in (base, base / "cifar-10-batches-bin"):
        train = [folder / f"data_batch_{k}.bin" for k in range(1, 6)
                 if (folder / f"data_batch_{k}.bin").is_file()]
        if train and (folder / "test_batch.bin").is_file():
            break
    else:
        raise DataNotFoundError(f"CIFAR-10 not found in {base}: put data_batch_1.bin ... "
                                "data_batch_5.bin and test_batch.bin (the 'binary version' from "
                                "https://www.cs.toronto.edu/~kriz/cifar.html) there")
    parts = [read_cifar10_batch(p) for p in train]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    x_te, y_te = read_cifar10_batch(folder / "test_batch.bin")
    a = _limit("n_train", n_train, x_tr.shape[0])
    b = _limit("n_test", n_test, x_te.shape[0])
    return x_tr[:a], y_tr[:a], x_te[:b], y_te[:b]


# --- synthetic -----------------------------------------------------------------------------

def synthetic(n_train: int, n_test: int, *, shape: tuple[int, ...] = (1, 28, 28),
              n_classes: int = 10, noise: float = 0.3, seed: int = 0
              ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64],
                         NDArray[np.int64]]:
    """Make a seeded, learnable classification set for benchmarks and smoke tests.

    Each class has a random prototype in ``[0, 1]``; a sample is its class prototype plus
    Gaussian noise of standard deviation ``noise``, clipped to ``[0, 1]``. Labels are drawn
    uniformly. Streams ``data/synthetic/{prototypes,train,test}`` of ``seed``.

    Returns
    -------
    (x_train, y_train, x_test, y_test)
        ``x`` of shape ``(n, *shape)`` float64, ``y`` of shape ``(n,)`` int64.
    """
    from xbarsim.rng import stream

    if n_classes < 2:
        raise ValueError(f"n_classes: expected an int >= 2, got {n_classes!r}")
    if noise < 0:
        raise ValueError(f"noise: expected a value >= 0, got {noise!r}")
    protos = stream(seed, "data/synthetic/prototypes").random((n_classes, *shape))
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_{split}: expected an int >= 1, got {n!r}")
        g = stream(seed, f"data/synthetic/{split}")
        y = g.integers(0, n_classes, size=n)
        x = np.clip(protos[y] + noise * g.standard_normal((n, *shape)), 0.0, 1.0)
        out += [x, y.astype(np.int64)]
    return out[0], out[1], out[2], out[3]


# --- batches -------------------------------------------------------------------------------

class BatchIterator:
    """Mini-batches of ``(x, y)``; re-iterable, reshuffled on every pass.

    Parameters
    ----------
    x : ndarray of shape (n, ...)
    y : ndarray of shape (n,) or (n, k)
    batch_size : int
    rng : numpy.random.Generator, optional
        Shuffling stream (e.g. ``xbarsim.rng.stream(seed, "data/shuffle")``); required when
        ``shuffle`` is true.
    shuffle : bool
        New random permutation at the start of every pass.
    drop_last : bool
        Skip the final incomplete batch.
    """

    def __init__(self, x: NDArray, y: NDArray, batch_size: int, *,
                 rng: np.random.Generator | None = None, shuffle: bool = True,
                 drop_last: bool = False) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
        if shuffle and rng is None:
            raise ValueError("rng: shuffling needs an explicit numpy Generator "
                             "(xbarsim.rng.stream(seed, 'data/shuffle'))")
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.rng, self.shuffle, self.drop_last = rng, shuffle, drop_last

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[NDArray, NDArray]]:
        n = self.x.shape[0]
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)  # type: ignore[union-attr]
        for k in range(len(self)):
            idx = order[k * self.batch_size:(k + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]
