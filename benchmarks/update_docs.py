"""Regenerate the measured blocks of ``docs/benchmarks.md`` from the raw outputs in ``data/bench``.

    python benchmarks/update_docs.py            # rewrite the page, print the blocks that changed
    python benchmarks/update_docs.py --check    # exit 1 naming the stale blocks, write nothing

The page holds marked blocks::

    <!-- begin data/bench/NAME.txt -->
    ...generated...
    <!-- end data/bench/NAME.txt -->

and everything between a pair of markers is replaced by the named file (a path relative to the
repository root) rendered for Markdown by :func:`render_bench_text`: Markdown table rows (lines
starting with ``|``) as they are, every run of other non-empty lines in a ``text`` fenced
block, one blank line between the parts. Text outside the blocks is never touched.

Exit codes: 0 up to date or rewritten, 1 stale (``--check``), 2 bad input (a missing data
file, unbalanced or malformed markers, a page that cannot be read), with one ``Error: ...``
line naming the file and line; nothing is written then.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""Repository root: marker paths and the default page are relative to it."""

DEFAULT_PAGE = Path("docs") / "benchmarks.md"
"""The page the script maintains, relative to :data:`ROOT`."""

_MARKER = re.compile(r"^<!--\s+(begin|end)\s+(\S+)\s+-->$")
_MARKER_START = re.compile(r"^<!--\s*(begin|end)\b")


class BenchDocsError(ValueError):
    """Bad input: a missing data file or unbalanced / malformed block markers."""


@dataclass(frozen=True)
class Block:
    """One marked block of the page.

    Attributes
    ----------
    name : str
        Path of the data file as written in the markers, relative to the repository root.
    begin : int
        Index (0-based) of the begin marker's line in the page's lines.
    end : int
        Index (0-based) of the end marker's line; the block's content is ``lines[begin + 1:end]``.
    """

    name: str
    begin: int
    end: int


def _fence_for(lines: list[str]) -> str:
    """Backtick fence longer than any backtick run inside ``lines`` (at least three)."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    return "`" * max(3, longest + 1)


def render_bench_text(text: str) -> str:
    """Render a raw benchmark output for Markdown.

    Lines starting with ``|`` (Markdown table rows) are kept as they are; every run of other
    non-empty lines goes into a fenced block with info string ``text`` (the fence is longer
    than any backtick run inside it). Blank (or whitespace-only) lines separate the parts:
    runs of them become one blank line, leading and trailing ones are dropped, and a table and
    a fenced block that touch in the input get one blank line between them.

    Parameters
    ----------
    text : str
        Content of a benchmark output file (any line endings).

    Returns
    -------
    str
        Markdown, one line per ``\\n``, ending with ``\\n`` (empty for an input with no
        non-blank line).
    """
    # parts: ("table" | "text", lines), split at blank lines and at table/text boundaries
    parts: list[tuple[str, list[str]]] = []
    blank_before = True
    for raw in text.splitlines():
        line = raw.rstrip("\r\n")
        if not line.strip():
            blank_before = True
            continue
        kind = "table" if line.startswith("|") else "text"
        if blank_before or not parts or parts[-1][0] != kind:
            parts.append((kind, []))
        parts[-1][1].append(line)
        blank_before = False
    out: list[str] = []
    for kind, lines in parts:
        if out:
            out.append("")
        if kind == "table":
            out.extend(lines)
        else:
            fence = _fence_for(lines)
            out.extend([fence + "text", *lines, fence])
    return "".join(line + "\n" for line in out)


def generated_block_lines(content: str) -> list[str]:
    """Lines between the markers of a block whose file holds ``content``.

    One blank line after the begin marker and before the end marker keeps the HTML comments
    apart from the Markdown they enclose.
    """
    rendered = render_bench_text(content)
    return ["", *rendered.splitlines(), ""] if rendered else [""]


def find_blocks(lines: list[str], page: str = "page") -> list[Block]:
    """Locate the marked blocks of a page.

    Parameters
    ----------
    lines : list of str
        The page's lines, without line endings.
    page : str
        Name of the page in error messages.

    Returns
    -------
    list of Block
        In page order.

    Raises
    ------
    BenchDocsError
        A begin marker inside an open block, an end marker without a begin marker or naming
        another file than the open block, a begin marker never closed, or a line that starts
        like a marker but is not one (``page:LINE: ...``).
    """
    blocks: list[Block] = []
    open_name: str | None = None
    open_at = -1
    for i, line in enumerate(lines):
        stripped = line.strip()
        match = _MARKER.match(stripped)
        if match is None:
            if _MARKER_START.match(stripped):
                raise BenchDocsError(
                    f"{page}:{i + 1}: malformed block marker {stripped!r}; expected "
                    "'<!-- begin data/bench/NAME.txt -->' or '<!-- end data/bench/NAME.txt -->'")
            continue
        kind, name = match.groups()
        if kind == "begin":
            if open_name is not None:
                raise BenchDocsError(
                    f"{page}:{i + 1}: begin marker for {name} inside the block of {open_name} "
                    f"opened at line {open_at + 1}; add '<!-- end {open_name} -->' before it")
            open_name, open_at = name, i
        else:
            if open_name is None:
                raise BenchDocsError(f"{page}:{i + 1}: end marker for {name} without a begin "
                                     f"marker; add '<!-- begin {name} -->' above it")
            if name != open_name:
                raise BenchDocsError(
                    f"{page}:{i + 1}: end marker for {name} closes the block of {open_name} "
                    f"opened at line {open_at + 1}; the markers must name the same file")
            blocks.append(Block(name, open_at, i))
            open_name = None
    if open_name is not None:
        raise BenchDocsError(f"{page}:{open_at + 1}: begin marker for {open_name} has no end "
                             f"marker; add '<!-- end {open_name} -->' after the block")
    return blocks


def _data_path(name: str, root: Path, page: str, line: int) -> Path:
    """The data file a marker names, checked to exist inside ``root``."""
    rel = Path(name)
    path = (root / rel).resolve()
    if rel.is_absolute() or not path.is_relative_to(root.resolve()):
        raise BenchDocsError(f"{page}:{line}: marker path {name} must be relative to the "
                             f"repository root {root} and stay inside it")
    if not path.is_file():
        raise BenchDocsError(f"{page}:{line}: data file {name} named by the block marker does "
                             f"not exist (looked for {path}); regenerate it with its benchmark "
                             "or remove the block")
    return path


def regenerate(page_text: str, root: Path = ROOT, page: str = "page") -> tuple[str, list[str]]:
    """The page with every block refilled from its data file, and the blocks that changed.

    Parameters
    ----------
    page_text : str
        Content of the page.
    root : Path
        Directory the marker paths are relative to (the repository root).
    page : str
        Name of the page in error messages.

    Returns
    -------
    new_text : str
        The regenerated page (``\\n`` line endings, ending with a newline).
    changed : list of str
        Names of the blocks whose content differs from their file's rendering, in page order
        (a file named by several blocks is listed once).

    Raises
    ------
    BenchDocsError
        Unbalanced or malformed markers, or a data file that does not exist.
    """
    lines = page_text.splitlines()
    blocks = find_blocks(lines, page)
    out: list[str] = []
    changed: list[str] = []
    pos = 0
    for block in blocks:
        path = _data_path(block.name, root, page, block.begin + 1)
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BenchDocsError(f"{page}:{block.begin + 1}: cannot read data file "
                                 f"{block.name}: {exc}") from exc
        new = generated_block_lines(content)
        if lines[block.begin + 1:block.end] != new and block.name not in changed:
            changed.append(block.name)
        out.extend(lines[pos:block.begin + 1])
        out.extend(new)
        pos = block.end
    out.extend(lines[pos:])
    return "".join(line + "\n" for line in out), changed


def check_page(page_path: Path, root: Path = ROOT) -> list[str]:
    """Names of the blocks of ``page_path`` that differ from their data files (nothing written).

    Parameters
    ----------
    page_path : Path
        The Markdown page.
    root : Path
        Directory the marker paths are relative to.

    Returns
    -------
    list of str
        Stale blocks in page order; empty when the page is up to date (a page whose only
        difference is outside the blocks, e.g. a missing final newline, is also reported, as
        ``"(page layout)"``).

    Raises
    ------
    BenchDocsError
        The page cannot be read, unbalanced or malformed markers, or a missing data file.
    """
    text = _read_page(page_path)
    new_text, changed = regenerate(text, root, str(page_path))
    if not changed and new_text != text:
        return ["(page layout)"]
    return changed


def _read_page(page_path: Path) -> str:
    try:
        return page_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchDocsError(f"cannot read the page {page_path}: {exc}") from exc


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` through a temporary file in the same folder and os.replace.

    A reader sees the old page or the new one, never a partial one; the file's permission bits
    are kept.
    """
    mode = path.stat().st_mode & 0o7777 if path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_page(page_path: Path, root: Path = ROOT) -> list[str]:
    """Rewrite the blocks of ``page_path`` from their data files; return the blocks that changed.

    The page is written (atomically) only when its content changes.

    Raises
    ------
    BenchDocsError
        As :func:`check_page`; the page is left as it was.
    """
    text = _read_page(page_path)
    new_text, changed = regenerate(text, root, str(page_path))
    if new_text != text:
        write_atomically(page_path, new_text)
        if not changed:
            changed = ["(page layout)"]
    return changed


def main(argv: list[str] | None = None) -> int:
    """Command line: rewrite the page (default) or check it (``--check``); returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="exit 1 and name the stale blocks if the page differs from the data "
                         "files; write nothing")
    ap.add_argument("--page", type=Path, default=None,
                    help=f"the page (default: {DEFAULT_PAGE} under --root)")
    ap.add_argument("--root", type=Path, default=ROOT,
                    help="repository root the marker paths are relative to (default: %(default)s)")
    args = ap.parse_args(argv)
    page = args.page if args.page is not None else args.root / DEFAULT_PAGE
    try:
        if args.check:
            stale = check_page(page, args.root)
            if stale:
                print(f"{page}: stale block(s): {', '.join(stale)}; "
                      "run: python benchmarks/update_docs.py", file=sys.stderr)
                return 1
            print(f"{page}: up to date")
            return 0
        changed = update_page(page, args.root)
    except BenchDocsError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    if changed:
        print(f"{page}: updated block(s): {', '.join(changed)}")
    else:
        print(f"{page}: up to date, nothing written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
