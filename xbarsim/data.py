"""Datasets: MNIST (IDX files, md5-verified, checksummed download, cache), CIFAR-10, synthetic.

All loaders return ``(x_train, y_train, x_test, y_test)`` with images float64 in ``[0, 1]``
shaped NCHW ``(n, c, h, w)`` and labels int64 ``(n,)``; with ``return_source=True`` a
:class:`DataSource` (the folder and the md5 of every file read) follows.

Where MNIST is read from (exactly one place; a folder that was asked for and does not hold the
data is an error naming it, never a silent fall-back to another folder or a download):

1. the explicit ``data_dir`` argument (config ``data.data_dir`` / CLI ``--data-dir``), if given;
2. otherwise the environment variable ``XBARSIM_DATA``, if set;
3. otherwise the user cache ``$XDG_CACHE_HOME/xbarsim/mnist`` (default
   ``~/.cache/xbarsim/mnist``), where missing files are downloaded from the public mirrors with
   md5 checks (``download=True``).

For 1 and 2 both the folder itself and its ``mnist/`` sub-folder are searched. A complete set is
the two test files plus either the official 60k training files (``train-images-idx3-ubyte``)
or the 6k subset (``train-6k-images-idx3-ubyte``), each ``.gz`` or uncompressed.

Verification of the files read (``verify=True``, the default). Every file's md5 is computed
(and recorded in the run file). A file is *known* when the md5 of the file, or of its
uncompressed IDX content, is one of :data:`KNOWN_MNIST_FILES`: the official files (gzip and
uncompressed) and the 6k training subset. A known file is accepted if it plays the role it
is known for (the official test images in place of the training images is an error). For an
*unknown* md5 the content is checked for plausibility instead of refused, because MNIST-format
sets that are not MNIST are legitimate inputs (Fashion-MNIST, KMNIST, EMNIST digits, a
re-compressed or re-packed copy): labels must cover the classes without one dominating, and
images must look like images (not blank, neighbouring pixels correlated as in any picture,
unlike random bytes). An implausible file is an error naming it and the statistic that
failed; a plausible unknown file is used with an :class:`UnverifiedDataWarning` naming it and
its md5. This catches the silent failures a valid header hides (random pixels, all-zero
labels), while a user's own MNIST-format data still loads.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import NDArray

from xbarsim.errors import XbarsimError

__all__ = [
    "DataError", "DataNotFoundError", "DataFormatError", "ChecksumError",
    "UnverifiedDataWarning", "DataSource", "KnownFile", "KNOWN_MNIST_FILES",
    "read_idx", "find_mnist", "locate_mnist", "download_mnist", "load_mnist", "mnist_cache_dir",
    "read_cifar10_batch", "load_cifar10", "synthetic", "BatchIterator",
    "MNIST_MIRRORS", "MNIST_MD5",
]

logger = logging.getLogger(__name__)

Arrays = tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]


class DataError(XbarsimError):
    """Base class of dataset errors."""


class DataNotFoundError(DataError, FileNotFoundError):
    """Dataset files are absent (and could not be downloaded); says what to put where."""


class DataFormatError(DataError, ValueError):
    """A dataset file is corrupt or not in the expected format; the message names the file."""


class ChecksumError(DataFormatError):
    """A downloaded file does not have the expected md5."""


class UnverifiedDataWarning(UserWarning):
    """A data file is not one of the known files; its content passed the plausibility checks."""


@dataclass(frozen=True)
class DataSource:
    """Where a data set was read from: for the run file's provenance record.

    Attributes
    ----------
    dataset : str
        ``"mnist"`` or ``"cifar10"``.
    folder : Path
        The folder the files were read from (absolute).
    files : tuple of Path
        Every file read, in reading order (MNIST: train images, train labels, test images,
        test labels).
    md5 : tuple of str
        md5 (hex) of each file as stored on disk (what ``md5sum`` prints).
    known_as : tuple of str
        What each file was verified to be (e.g. ``"official MNIST test images"``), or
        ``"unknown md5 (content checked)"`` / ``"not verified"``.
    """

    dataset: str
    folder: Path
    files: tuple[Path, ...]
    md5: tuple[str, ...]
    known_as: tuple[str, ...]

    def attrs(self) -> dict[str, Any]:
        """Root attributes of the run file (layout in :mod:`xbarsim.io.hdf5`)."""
        return {"data_dir": str(self.folder), "data_files": [p.name for p in self.files],
                "data_md5": list(self.md5), "data_known_as": list(self.known_as)}


# --- IDX ---------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_file(path: Path) -> tuple[bytes, bytes]:
    """Return ``(bytes as stored, IDX content)``: the content is gunzipped for ``.gz``."""
    try:
        stored = path.read_bytes()
        if path.name.endswith(".gz"):
            return stored, gzip.decompress(stored)
        return stored, stored
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataFormatError(f"{path}: cannot read ({exc}); delete it and download it again") \
            from exc


def _parse_idx(raw: bytes, path: Path) -> NDArray:
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
    return _parse_idx(_read_file(path)[1], path)


# --- known MNIST files -----------------------------------------------------------------------

MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
"""Public mirrors of the official MNIST files (tried in order)."""


@dataclass(frozen=True)
class KnownFile:
    """An MNIST file whose content is known by its md5.

    Attributes
    ----------
    name : str
        Conventional file name without ``.gz``.
    role : {"train_images", "train_labels", "test_images", "test_labels"}
        The part of the data set it holds.
    n : int
        Number of records.
    gz_md5 : str
        md5 of the gzip file as distributed.
    idx_md5 : str
        md5 of the uncompressed IDX content (so a gunzipped or re-compressed copy is known too).
    what : str
        Description for messages and the run file.
    """

    name: str
    role: str
    n: int
    gz_md5: str
    idx_md5: str
    what: str


KNOWN_MNIST_FILES: tuple[KnownFile, ...] = (
    # The official files: gzip md5s as published by torchvision; md5s of the uncompressed files
    # as published by several independent projects (they agree), and for t10k recomputed here
    # from the official t10k files.
    KnownFile("train-images-idx3-ubyte", "train_images", 60000,
              "f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb",
              "official MNIST training images (60,000)"),
    KnownFile("train-labels-idx1-ubyte", "train_labels", 60000,
              "d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624",
              "official MNIST training labels (60,000)"),
    KnownFile("t10k-images-idx3-ubyte", "test_images", 10000,
              "9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea",
              "official MNIST test images (10,000)"),
    KnownFile("t10k-labels-idx1-ubyte", "test_labels", 10000,
              "ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637",
              "official MNIST test labels (10,000)"),
    # The 6k training subset used by the project's tests and offline machines: the first 6,000
    # records of the official training files, re-packed as valid IDX files whose header count
    # says 6000 (0x1770), gzip-compressed again (so neither md5 can be derived from the
    # official ones). Checked on the files themselves: magic 0x00000803 / 0x00000801, count
    # 6000, 28 x 28, sizes 16 + 6000*784 and 8 + 6000 bytes; the labels begin
    # 5 0 4 1 9 2 1 3 1 4 3 5 3 6 1 7 2 8 6 9, the well-known start of the official training
    # labels, and count 592 671 581 608 623 514 608 651 551 601 per digit. A byte comparison
    # with the official 60k files needs those files; with them,
    # read_idx(official)[:6000] == read_idx(subset) is the check.
    KnownFile("train-6k-images-idx3-ubyte", "train_images", 6000,
              "787c48d9d2798010260d4bf1f838570d", "e5745bbfadcc33b878fede0ec121d742",
              "MNIST training subset: the first 6,000 official training images"),
    KnownFile("train-6k-labels-idx1-ubyte", "train_labels", 6000,
              "2a5e2f9e1e216487e768c65f748760a5", "13b93db4247929e07df96478a06f95de",
              "MNIST training subset: the first 6,000 official training labels"),
)
"""Every MNIST file xbarsim recognises by md5 (module docstring, "Verification")."""

_KNOWN_BY_MD5: dict[str, KnownFile] = {
    md5: k for k in KNOWN_MNIST_FILES for md5 in (k.gz_md5, k.idx_md5)}

MNIST_MD5: dict[str, str] = {k.name + ".gz": k.gz_md5 for k in KNOWN_MNIST_FILES[:4]}
"""md5 of the official gzip files, the ones :func:`download_mnist` fetches."""

_ROLES = ("train_images", "train_labels", "test_images", "test_labels")
_ROLE_WHAT = {"train_images": "training images", "train_labels": "training labels",
              "test_images": "test images", "test_labels": "test labels"}
_TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_TRAIN_SETS = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               ("train-6k-images-idx3-ubyte", "train-6k-labels-idx1-ubyte"))


# --- MNIST location and download -----------------------------------------------------------

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


def _given_folder(data_dir: str | os.PathLike[str] | None) -> tuple[Path, str] | None:
    """Return the folder asked for and by whom: ``data_dir``, else ``$XBARSIM_DATA``, or None."""
    if data_dir is not None and os.fspath(data_dir) != "":
        return Path(data_dir), "data_dir"
    env = os.environ.get("XBARSIM_DATA")
    if env:
        return Path(env), "$XBARSIM_DATA"
    return None


def _in_folder(folder: Path) -> dict[str, Path] | None:
    for candidate in (folder, folder / "mnist"):
        found = _complete_set(candidate)
        if found is not None:
            return found
    return None


def _what_is_there(folder: Path) -> str:
    """Describe what ``folder`` (and ``folder/mnist``) holds, for a not-found message."""
    if not folder.exists():
        return "the folder does not exist"
    if not folder.is_dir():
        return "it is not a folder"
    names: list[str] = []
    n_other = 0
    for sub in (folder, folder / "mnist"):
        if not sub.is_dir():
            continue
        for p in sorted(sub.iterdir()):
            if "ubyte" in p.name or "idx" in p.name:
                names.append(str(p.relative_to(folder)))
            else:
                n_other += 1
    if not names:
        return (f"it holds no MNIST file ({n_other} other entr{'y' if n_other == 1 else 'ies'})"
                if n_other else "it is empty")
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    return f"found only {shown}"


_EXPECTED = ("t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte and either train-images-idx3-ubyte "
             "+ train-labels-idx1-ubyte (60k) or train-6k-images-idx3-ubyte + "
             "train-6k-labels-idx1-ubyte (6k subset), each .gz or uncompressed")


def find_mnist(data_dir: str | os.PathLike[str] | None = None, *,
               cache_dir: str | os.PathLike[str] | None = None) -> dict[str, Path] | None:
    """Locate a complete MNIST set in the one place the module docstring names, without download.

    Returns
    -------
    dict or None
        ``{"train_images", "train_labels", "test_images", "test_labels"} -> Path``, or None
        when that place (``data_dir``, else ``$XBARSIM_DATA``, else the cache) holds no
        complete set.
    """
    given = _given_folder(data_dir)
    if given is not None:
        return _in_folder(given[0])
    return _complete_set(Path(cache_dir) if cache_dir is not None else mnist_cache_dir())


def locate_mnist(data_dir: str | os.PathLike[str] | None = None, *, download: bool = True,
                 cache_dir: str | os.PathLike[str] | None = None,
                 mirrors: Sequence[str] = MNIST_MIRRORS, checksums: dict[str, str] | None = None,
                 timeout: float = 30.0, data_dir_name: str = "data_dir") -> dict[str, Path]:
    """Return the four MNIST files, downloading them into the cache only when no folder is given.

    Parameters
    ----------
    data_dir : path-like, optional
        The folder to read (or its ``mnist/`` sub-folder). Default: ``$XBARSIM_DATA`` if set,
        else the cache.
    download, cache_dir, mirrors, checksums, timeout
        As in :func:`load_mnist`.
    data_dir_name : str
        What ``data_dir`` is called in error messages (e.g. ``"data.data_dir"``,
        ``"--data-dir"``).

    Returns
    -------
    dict
        ``{"train_images", "train_labels", "test_images", "test_labels"} -> Path``.

    Raises
    ------
    DataNotFoundError
        ``data_dir`` (or ``$XBARSIM_DATA``) is given and does not hold a complete set (the
        message names the folder, what was expected and what was found); or, with neither,
        the cache is incomplete and the download is disabled or fails.
    """
    given = _given_folder(data_dir)
    cache = Path(cache_dir) if cache_dir is not None else mnist_cache_dir()
    if given is not None:
        folder, origin = given
        found = _in_folder(folder)
        if found is not None:
            return found
        if origin == "data_dir":
            origin = data_dir_name
        fix = (f"fix the path, or leave {origin} unset to use $XBARSIM_DATA or the cache"
               if origin != "$XBARSIM_DATA" else
               f"fix it, or unset XBARSIM_DATA to use the cache {cache}")
        raise DataNotFoundError(f"{origin} {folder}: no complete MNIST set there or in its "
                                f"mnist/ sub-folder ({_what_is_there(folder)}); expected "
                                f"{_EXPECTED}; {fix}")
    found = _complete_set(cache)
    if found is not None:
        return found
    if not download:
        raise DataNotFoundError(f"MNIST not found in the cache {cache} ({_what_is_there(cache)})"
                                f" and data.download is off; " + _manual_instructions(cache))
    try:
        download_mnist(cache, mirrors=mirrors, checksums=checksums, timeout=timeout)
    except DataNotFoundError as exc:
        raise DataNotFoundError(f"MNIST not found (no data_dir given, XBARSIM_DATA not set, "
                                f"the cache {cache} incomplete) and the download failed: "
                                f"{exc}") from exc
    found = _complete_set(cache)
    if found is None:
        raise DataNotFoundError(f"MNIST download into {cache} did not produce a complete set; "
                                + _manual_instructions(cache))
    return found


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


def _make_dirs(dest: Path) -> list[Path]:
    """``mkdir -p dest``; return the folders it created, deepest first."""
    created: list[Path] = []
    p = dest
    while not p.exists():
        created.append(p)
        if p.parent == p:
            break
        p = p.parent
    dest.mkdir(parents=True, exist_ok=True)
    return created


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            return


def download_mnist(dest: str | os.PathLike[str] | None = None, *,
                   mirrors: Sequence[str] = MNIST_MIRRORS,
                   checksums: dict[str, str] | None = None, timeout: float = 30.0) -> Path:
    """Download the official MNIST files into ``dest`` (default the user cache), md5-checked.

    Files already present with the right md5 are kept. When the download fails, the folders
    this call created are removed again if they are empty (no empty cache is left behind to
    be mistaken for a data folder).

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
    created = _make_dirs(dest)
    checksums = dict(MNIST_MD5 if checksums is None else checksums)
    try:
        for name, md5 in checksums.items():
            target = dest / name
            if target.is_file() and hashlib.md5(target.read_bytes()).hexdigest() == md5:
                continue
            failures = _download_file(name, md5, dest, mirrors, timeout)
            if failures:
                raise DataNotFoundError(
                    f"could not download {name} into {dest}:\n  " + "\n  ".join(failures)
                    + f"\n{_manual_instructions(dest)}")
    except BaseException:  # also Ctrl-C: leave no empty folder behind
        _remove_if_empty(created)
        raise
    return dest


def _manual_instructions(cache: Path) -> str:
    return ("put the MNIST IDX files (.gz or uncompressed) t10k-images-idx3-ubyte, "
            "t10k-labels-idx1-ubyte and either train-images-idx3-ubyte + train-labels-idx1-ubyte "
            "(60k) or train-6k-images-idx3-ubyte + train-6k-labels-idx1-ubyte (6k subset) into "
            f"one folder and pass it as data_dir (--data-dir) or set XBARSIM_DATA to it, or copy "
            f"them into {cache}")


# --- MNIST verification and reading ----------------------------------------------------------

#: Plausibility limits applied to files of unknown md5 (module docstring, "Verification").
#: A label file of at least ``LABEL_CHECK_MIN`` records must hold every class, each with a
#: share within ``[1/LABEL_SHARE_FACTOR, LABEL_SHARE_FACTOR]`` times the uniform share
#: (MNIST: 0.89-1.14; a file of one class, e.g. all zeros, fails); a smaller file must hold
#: more than one class from 20 records on.
LABEL_CHECK_MIN = 500
LABEL_SHARE_FACTOR = 3.0
#: Images: at most ``BLANK_IMAGE_SHARE`` of them constant (MNIST: none), and the correlation
#: of horizontally neighbouring pixels (over the first ``CORRELATION_SAMPLE`` images) at least
#: ``MIN_NEIGHBOUR_CORRELATION`` (MNIST: 0.79-0.81; uniform random bytes: 0.00).
BLANK_IMAGE_SHARE = 0.01
MIN_NEIGHBOUR_CORRELATION = 0.4
CORRELATION_SAMPLE = 500


def _label_problem(y: NDArray, n_classes: int) -> str | None:
    n = y.shape[0]
    counts = np.bincount(y.astype(np.int64), minlength=n_classes)
    if n >= LABEL_CHECK_MIN:
        share = counts / n * n_classes  # 1 = uniform
        if share.min() < 1 / LABEL_SHARE_FACTOR or share.max() > LABEL_SHARE_FACTOR:
            return (f"implausible class balance: counts per class {counts.tolist()} (each class "
                    f"should hold between 1/{LABEL_SHARE_FACTOR:g} and {LABEL_SHARE_FACTOR:g} "
                    f"times its uniform share of {n / n_classes:g})")
    elif n >= 20 and np.count_nonzero(counts) < 2:
        return f"all {n} labels are {int(y[0])}"
    return None


def _image_problem(x: NDArray) -> str | None:
    n = x.shape[0]
    flat = x.reshape(n, -1)
    constant = int(np.count_nonzero(flat.max(axis=1) == flat.min(axis=1))) if flat.size else n
    if constant > BLANK_IMAGE_SHARE * n:
        return f"{constant} of {n} images are blank (one constant value)"
    sample = x[:CORRELATION_SAMPLE].astype(np.float64)
    if sample.shape[-1] > 1:
        left, right = sample[..., :-1].ravel(), sample[..., 1:].ravel()
        if left.std() > 0 and right.std() > 0:
            corr = float(np.corrcoef(left, right)[0, 1])
        else:
            corr = 0.0
        if not corr >= MIN_NEIGHBOUR_CORRELATION:
            return (f"neighbouring pixels are uncorrelated (correlation {corr:.2f}, pictures "
                    f"have >= {MIN_NEIGHBOUR_CORRELATION:g}; MNIST 0.8): random bytes, not "
                    f"images")
    return None


def _read_checked(path: Path, role: str, verify: bool) -> tuple[NDArray, str, str]:
    """Read one MNIST file; return ``(array, md5 of the file, what it is known as)``."""
    stored, content = _read_file(path)
    md5 = hashlib.md5(stored).hexdigest()
    known = _KNOWN_BY_MD5.get(md5)
    if known is None and content is not stored:
        known = _KNOWN_BY_MD5.get(hashlib.md5(content).hexdigest())
    arr = _parse_idx(content, path)
    if role.endswith("images"):
        if arr.ndim != 3 or arr.dtype != np.uint8:
            raise DataFormatError(f"{path}: expected uint8 images of shape (n, h, w), got "
                                  f"{arr.dtype} {arr.shape}")
    else:
        if arr.ndim != 1:
            raise DataFormatError(f"{path}: expected labels of shape (n,), got {arr.shape}")
        if arr.size and arr.max() >= 10:
            raise DataFormatError(f"{path}: label {int(arr.max())} outside 0..9")
    if not verify:
        return arr, md5, known.what if known is not None else "not verified"
    if known is not None:
        if known.role != role:
            raise DataFormatError(f"{path}: this file is the {known.what} (md5 {md5}), not "
                                  f"{_ROLE_WHAT[role]}; check the file names")
        return arr, md5, known.what
    problem = (_image_problem if role.endswith("images") else
               lambda y: _label_problem(y, 10))(arr)
    if problem is not None:
        raise DataFormatError(
            f"{path}: not MNIST {_ROLE_WHAT[role]}: {problem}. Its md5 {md5} is none of the "
            f"known MNIST files (official or the 6k subset); replace it with the original "
            f"(download with data.download and no data folder set, or from "
            f"{MNIST_MIRRORS[0]})")
    warnings.warn(f"{path}: md5 {md5} is not one of the known MNIST files (official or the "
                  f"6k subset); its content looks like {_ROLE_WHAT[role]}, so it is used "
                  f"(the md5 is recorded in the run file)", UnverifiedDataWarning, stacklevel=3)
    return arr, md5, "unknown md5 (content checked)"


def _limit(name: str, n: int | None, avail: int) -> int:
    if n is None:
        return avail
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name}: expected an int >= 1 or None, got {n!r}")
    if n > avail:
        raise ValueError(f"{name}: asked for {n} samples but only {avail} are available")
    return int(n)


@overload
def load_mnist(data_dir: str | os.PathLike[str] | None = ..., *, n_train: int | None = ...,
               n_test: int | None = ..., download: bool = ...,
               cache_dir: str | os.PathLike[str] | None = ...,
               mirrors: Sequence[str] = ..., checksums: dict[str, str] | None = ...,
               timeout: float = ..., verify: bool = ..., data_dir_name: str = ...,
               return_source: Literal[False] = ...) -> Arrays: ...


@overload
def load_mnist(data_dir: str | os.PathLike[str] | None = ..., *, n_train: int | None = ...,
               n_test: int | None = ..., download: bool = ...,
               cache_dir: str | os.PathLike[str] | None = ...,
               mirrors: Sequence[str] = ..., checksums: dict[str, str] | None = ...,
               timeout: float = ..., verify: bool = ..., data_dir_name: str = ...,
               return_source: Literal[True]) -> tuple[Any, Any, Any, Any, DataSource]: ...


def load_mnist(data_dir: str | os.PathLike[str] | None = None, *, n_train: int | None = None,
               n_test: int | None = None, download: bool = True,
               cache_dir: str | os.PathLike[str] | None = None,
               mirrors: Sequence[str] = MNIST_MIRRORS, checksums: dict[str, str] | None = None,
               timeout: float = 30.0, verify: bool = True, data_dir_name: str = "data_dir",
               return_source: bool = False) -> Any:
    """Load MNIST as ``(x_train, y_train, x_test, y_test)``.

    Parameters
    ----------
    data_dir : path-like, optional
        The folder holding the files (or an ``mnist/`` sub-folder of it); an error when it
        does not. Default: ``$XBARSIM_DATA``, else the cache (module docstring).
    n_train, n_test : int, optional
        Keep only the first ``n`` samples of each split.
    download : bool
        Download the official files into the cache when neither ``data_dir`` nor
        ``$XBARSIM_DATA`` is given and the cache is incomplete.
    cache_dir : path-like, optional
        Override of the cache folder (default :func:`mnist_cache_dir`).
    mirrors, checksums, timeout
        Passed to :func:`download_mnist`.
    verify : bool
        Check every file by md5, and the content of files with an unknown md5 (module
        docstring, "Verification"). False: read any well-formed IDX files as they are.
    data_dir_name : str
        What ``data_dir`` is called in error messages (the runner passes ``"data.data_dir"``
        or ``"--data-dir"``).
    return_source : bool
        Also return the :class:`DataSource` (folder, files, md5s).

    Returns
    -------
    x_train : ndarray of shape (n_train, 1, 28, 28), float64 in [0, 1]
    y_train : ndarray of shape (n_train,), int64
    x_test : ndarray of shape (n_test, 1, 28, 28), float64 in [0, 1]
    y_test : ndarray of shape (n_test,), int64
    source : DataSource
        Only with ``return_source=True``.

    Raises
    ------
    DataNotFoundError
        The folder given holds no complete set (named, with what was expected and found), or
        no folder is given, the cache is incomplete and download is disabled or impossible.
    DataFormatError
        A file is corrupt, is a known file in the wrong role, has an unknown md5 and
        implausible content, or images and labels disagree in number.

    Warns
    -----
    UnverifiedDataWarning
        A file of unknown md5 whose content is plausible (used).
    """
    files = locate_mnist(data_dir, download=download, cache_dir=cache_dir, mirrors=mirrors,
                         checksums=checksums, timeout=timeout, data_dir_name=data_dir_name)
    out: list[Any] = []
    md5s, known = [], []
    for split, n in (("train", n_train), ("test", n_test)):
        img_path, lab_path = files[f"{split}_images"], files[f"{split}_labels"]
        img, img_md5, img_known = _read_checked(img_path, f"{split}_images", verify)
        lab, lab_md5, lab_known = _read_checked(lab_path, f"{split}_labels", verify)
        if img.shape[0] != lab.shape[0]:
            raise DataFormatError(f"{img_path} has {img.shape[0]} images but {lab_path} has "
                                  f"{lab.shape[0]} labels")
        k = _limit(f"n_{split}", n, img.shape[0])
        # (k, h, w) uint8 -> (k, 1, h, w) float64 in [0, 1]
        out += [(img[:k].astype(np.float64) / 255.0)[:, None, :, :], lab[:k].astype(np.int64)]
        md5s += [img_md5, lab_md5]
        known += [img_known, lab_known]
    if not return_source:
        return out[0], out[1], out[2], out[3]
    order = [files[r] for r in _ROLES]
    source = DataSource("mnist", order[2].parent.resolve(), tuple(p.resolve() for p in order),
                        tuple(md5s), tuple(known))
    return out[0], out[1], out[2], out[3], source


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
                 n_test: int | None = None, return_source: bool = False) -> Any:
    """Load CIFAR-10 (binary version) from ``data_dir`` or ``data_dir/cifar-10-batches-bin``.

    Training batches ``data_batch_1.bin`` ... ``data_batch_5.bin`` that exist are concatenated
    in order (at least one is required); ``test_batch.bin`` is the test split. With
    ``return_source=True`` a :class:`DataSource` (folder, files and their md5s; the batch files
    are not verified against reference md5s) follows the four arrays.

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
    if not return_source:
        return x_tr[:a], y_tr[:a], x_te[:b], y_te[:b]
    files = (*train, folder / "test_batch.bin")
    source = DataSource("cifar10", folder.resolve(), tuple(p.resolve() for p in files),
                        tuple(hashlib.md5(p.read_bytes()).hexdigest() for p in files),
                        ("not verified",) * len(files))
    return x_tr[:a], y_tr[:a], x_te[:b], y_te[:b], source


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
