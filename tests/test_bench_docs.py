"""docs/benchmarks.md against data/bench; benchmarks/update_docs.py (renderer, check, errors)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "update_docs.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("update_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["update_docs"] = module       # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


ud = _load_script()


# --- the committed page ---------------------------------------------------------------------

def test_committed_page_is_up_to_date():
    stale = ud.check_page(REPO / "docs" / "benchmarks.md", REPO)
    assert stale == [], (f"docs/benchmarks.md is stale in {stale}: "
                         "run python benchmarks/update_docs.py")


def test_committed_page_check_through_the_command_line(capsys):
    assert ud.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_page_has_one_block_per_bench_file_in_the_documented_order():
    lines = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8").splitlines()
    names = [b.name for b in ud.find_blocks(lines, "docs/benchmarks.md")]
    on_disk = {f"data/bench/{p.name}" for p in (REPO / "data" / "bench").glob("*.txt")}
    assert sorted(names) == sorted(on_disk)          # every file once, no block without a file
    order = ["tile", "api", "refresh", "layer", "train", "memory", "update", "aware",
             "aware_gradient", "blas_idle", "schur_box"]
    assert names == [f"data/bench/{n}.txt" for n in order]


def test_no_link_to_the_removed_perf_page():
    for path in [*(REPO / "docs").glob("*.md"), REPO / "data" / "README.md"]:
        assert "benchmarks_perf" not in path.read_text(encoding="utf-8"), path


# --- renderer -------------------------------------------------------------------------------

def test_render_keeps_tables_and_fences_text():
    text = ("# xbarsim bench tile\nsecond comment\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
            "Targets:\n  PASS: x\n")
    assert ud.render_bench_text(text) == (
        "```text\n# xbarsim bench tile\nsecond comment\n```\n"
        "\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n"
        "\n"
        "```text\nTargets:\n  PASS: x\n```\n")


def test_render_blank_lines_separate_runs_and_are_collapsed_and_trimmed():
    text = "\n\n  \nfirst\n\n\n\nsecond\n| t |\n\n\n"
    assert ud.render_bench_text(text) == (
        "```text\nfirst\n```\n\n```text\nsecond\n```\n\n| t |\n")


def test_render_table_then_text_without_blank_line_gets_one():
    assert ud.render_bench_text("| t |\nnote\n") == "| t |\n\n```text\nnote\n```\n"


def test_render_only_lines_starting_with_a_bar_are_table_rows():
    out = ud.render_bench_text("  | indented |\nx | y\n")
    assert out == "```text\n  | indented |\nx | y\n```\n"


def test_render_fence_longer_than_backticks_inside():
    out = ud.render_bench_text("code ```python``` and ````\n")
    assert out == "`````text\ncode ```python``` and ````\n`````\n"


def test_render_empty_and_crlf():
    assert ud.render_bench_text("") == ""
    assert ud.render_bench_text(" \n\n") == ""
    assert ud.render_bench_text("a\r\n| t |\r\n") == "```text\na\n```\n\n| t |\n"


_line = st.one_of(
    st.just(""),
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12),
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
            max_size=12).map(lambda s: "|" + s),
    st.sampled_from(["```", "`x`", "| a | b |", "Targets:", "  PASS: y"]),
)


@given(st.lists(_line, max_size=20))
def test_render_keeps_every_nonblank_line_in_order(lines):
    """Dropping the fences and blank lines of the output gives the input's non-blank lines."""
    out = ud.render_bench_text("\n".join(lines))
    kept = [x for x in lines if x.strip()]
    body: list[str] = []
    fence = None
    for line in out.splitlines():
        if fence is None and line.startswith("```") and line.endswith("text") \
                and set(line[:-4]) == {"`"}:
            fence = line[:-4]
        elif fence is not None and line == fence:
            fence = None
        elif line:
            assert fence is not None or line.startswith("|"), line   # text only inside fences
            body.append(line)
        else:
            assert fence is None                                     # no blank inside a fence
    assert fence is None
    assert body == kept


# --- regenerate / check / update on temporary pages -------------------------------------------

def _tree(tmp_path: Path, files: dict[str, str], page: str) -> Path:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    page_path = tmp_path / "docs" / "benchmarks.md"
    page_path.parent.mkdir(parents=True, exist_ok=True)
    page_path.write_text(page, encoding="utf-8")
    return page_path


PAGE = ("# Title\n\nIntro.\n\n"
        "<!-- begin data/bench/a.txt -->\nold a\n<!-- end data/bench/a.txt -->\n\n"
        "Middle text.\n\n"
        "<!-- begin data/bench/b.txt -->\n<!-- end data/bench/b.txt -->\n\nEnd.\n")


def test_regenerate_fills_blocks_and_leaves_the_rest(tmp_path):
    page = _tree(tmp_path, {"data/bench/a.txt": "# comment\n| x |\n",
                            "data/bench/b.txt": "note\n"}, PAGE)
    new, changed = ud.regenerate(page.read_text(), tmp_path, "p")
    assert changed == ["data/bench/a.txt", "data/bench/b.txt"]
    assert new == ("# Title\n\nIntro.\n\n<!-- begin data/bench/a.txt -->\n\n"
                   "```text\n# comment\n```\n\n| x |\n\n<!-- end data/bench/a.txt -->\n"
                   "\nMiddle text.\n\n<!-- begin data/bench/b.txt -->\n\n```text\nnote\n```\n\n"
                   "<!-- end data/bench/b.txt -->\n\nEnd.\n")
    again, changed_again = ud.regenerate(new, tmp_path, "p")
    assert again == new and changed_again == []


def test_check_names_only_the_stale_block_and_writes_nothing(tmp_path, capsys):
    page = _tree(tmp_path, {"data/bench/a.txt": "| x |\n", "data/bench/b.txt": "note\n"}, PAGE)
    assert ud.main(["--root", str(tmp_path)]) == 0
    assert ud.check_page(page, tmp_path) == []
    (tmp_path / "data/bench/b.txt").write_text("note, rerun\n", encoding="utf-8")
    before = page.read_bytes()
    assert ud.check_page(page, tmp_path) == ["data/bench/b.txt"]
    capsys.readouterr()
    assert ud.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "data/bench/b.txt" in err and "data/bench/a.txt" not in err
    assert page.read_bytes() == before                 # --check never writes


def test_check_sees_a_hand_edit_inside_a_block(tmp_path):
    page = _tree(tmp_path, {"data/bench/a.txt": "| x |\n", "data/bench/b.txt": "note\n"}, PAGE)
    ud.update_page(page, tmp_path)
    page.write_text(page.read_text().replace("| x |", "| y |"), encoding="utf-8")
    assert ud.check_page(page, tmp_path) == ["data/bench/a.txt"]


def test_update_rewrites_atomically_and_reports_changed_blocks(tmp_path, capsys):
    page = _tree(tmp_path, {"data/bench/a.txt": "| x |\n", "data/bench/b.txt": "note\n"}, PAGE)
    os.chmod(page, 0o640)
    assert ud.main(["--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "data/bench/a.txt" in out and "data/bench/b.txt" in out
    assert "| x |" in page.read_text()
    assert page.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in page.parent.iterdir()) == ["benchmarks.md"]   # no temp file
    mtime = page.stat().st_mtime_ns
    assert ud.main(["--root", str(tmp_path)]) == 0
    assert "nothing written" in capsys.readouterr().out
    assert page.stat().st_mtime_ns == mtime


def test_write_atomically_leaves_no_temp_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "page.md"
    target.write_text("old\n", encoding="utf-8")

    def fail(*_):
        raise OSError("disk full")

    monkeypatch.setattr(ud.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        ud.write_atomically(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["page.md"]


# --- errors: exit 2, the file or marker named, nothing written -------------------------------

@pytest.mark.parametrize("page, message", [
    ("<!-- begin data/bench/a.txt -->\nx\n", r"p:1: begin marker for data/bench/a.txt has no end"),
    ("x\n<!-- end data/bench/a.txt -->\n", r"p:2: end marker for data/bench/a.txt without a begin"),
    ("<!-- begin data/bench/a.txt -->\n<!-- begin data/bench/b.txt -->\n"
     "<!-- end data/bench/b.txt -->\n<!-- end data/bench/a.txt -->\n",
     r"p:2: begin marker for data/bench/b.txt inside the block of data/bench/a.txt opened at "
     r"line 1"),
    ("<!-- begin data/bench/a.txt -->\n<!-- end data/bench/b.txt -->\n",
     r"p:2: end marker for data/bench/b.txt closes the block of data/bench/a.txt"),
    ("<!-- begin data/bench/a.txt\n", r"p:1: malformed block marker"),
    ("<!-- end -->\n", r"p:1: malformed block marker"),
])
def test_unbalanced_or_malformed_markers(tmp_path, page, message):
    _tree(tmp_path, {"data/bench/a.txt": "a\n", "data/bench/b.txt": "b\n"}, "")
    with pytest.raises(ud.BenchDocsError, match=message):
        ud.regenerate(page, tmp_path, "p")


def test_missing_data_file_exits_2_naming_it_and_writes_nothing(tmp_path, capsys):
    page = _tree(tmp_path, {"data/bench/a.txt": "| x |\n"}, PAGE)     # b.txt is missing
    before = page.read_bytes()
    for args in (["--root", str(tmp_path)], ["--check", "--root", str(tmp_path)]):
        assert ud.main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("Error: ") and err.count("\n") == 1
        assert "data/bench/b.txt" in err and "does not exist" in err and ":11:" in err
        assert page.read_bytes() == before


def test_unbalanced_page_exits_2_and_is_not_written(tmp_path, capsys):
    page = _tree(tmp_path, {"data/bench/a.txt": "| x |\n", "data/bench/b.txt": "n\n"},
                 PAGE.replace("<!-- end data/bench/b.txt -->\n", ""))
    before = page.read_bytes()
    assert ud.main(["--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "begin marker for data/bench/b.txt has no end marker" in err
    assert page.read_bytes() == before


def test_missing_page_exits_2(tmp_path, capsys):
    assert ud.main(["--check", "--page", str(tmp_path / "nope.md"), "--root", str(tmp_path)]) == 2
    assert "nope.md" in capsys.readouterr().err


def test_marker_path_must_stay_inside_the_root(tmp_path):
    (tmp_path / "outside.txt").write_text("x\n", encoding="utf-8")
    root = tmp_path / "repo"
    root.mkdir()
    page = "<!-- begin ../outside.txt -->\n<!-- end ../outside.txt -->\n"
    with pytest.raises(ud.BenchDocsError, match="relative to the repository root"):
        ud.regenerate(page, root, "p")
