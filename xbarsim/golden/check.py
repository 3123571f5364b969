"""Compare another tool's results with a golden suite (``xbarsim golden check``).

:func:`check_results` compares every output dataset that THEIRS gives with the suite's
reference, element by element, relative to the dataset's scale (:mod:`xbarsim.golden.schema`,
docs/golden.md "Error metrics"), and returns a :class:`Report`: one row per case and quantity
with the largest error, the worst element, both values there, the tolerance and the verdict.
Input that does not fit the suite (an unknown case or dataset, a wrong shape) raises
:class:`MismatchError` naming the dataset.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xbarsim.golden import schema
from xbarsim.golden.adapters import Results

__all__ = ["MismatchError", "Report", "Row", "check_results", "parse_tolerances"]


class MismatchError(ValueError):
    """THEIRS does not fit the suite (unknown case or dataset, wrong shape); names which."""


@dataclass(frozen=True)
class Row:
    """One case and quantity of a :class:`Report`.

    Attributes
    ----------
    case, kind, quantity : str
        Case name, its kind and the dataset.
    status : {"pass", "FAIL", "not given", "refused"}
        ``not given``: THEIRS has the case but not this quantity; ``refused``: the tool
        cannot express the case (``note`` says why).
    error : float
        Largest error relative to the scale (NaN unless compared).
    index : tuple of int
        Worst element.
    ref, theirs, scale, tolerance : float
        Values at the worst element, its scale, and the tolerance.
    note : str
        The refusal reason, or what a non-finite value means.
    """

    case: str
    kind: str
    quantity: str
    status: str
    error: float = math.nan
    index: tuple[int, ...] = ()
    ref: float = math.nan
    theirs: float = math.nan
    scale: float = math.nan
    tolerance: float = math.nan
    note: str = ""


@dataclass
class Report:
    """The result of :func:`check_results`."""

    rows: list[Row] = field(default_factory=list)
    suite: str = ""
    theirs: str = ""
    tool: str = ""

    @property
    def failed(self) -> list[Row]:
        """Rows whose error exceeds the tolerance."""
        return [r for r in self.rows if r.status == "FAIL"]

    @property
    def compared(self) -> list[Row]:
        """Rows that were compared (pass or fail)."""
        return [r for r in self.rows if r.status in ("pass", "FAIL")]

    def summary(self) -> str:
        """One line: compared / failed / refused / not given, and the verdict."""
        refused = {r.case for r in self.rows if r.status == "refused"}
        missing = [r for r in self.rows if r.status == "not given"]
        cases = {r.case for r in self.compared}
        verdict = "FAIL" if self.failed else "pass"
        return (f"{verdict}: {len(self.compared)} quantities of {len(cases)} cases compared, "
                f"{len(self.failed)} failed; {len(refused)} cases refused by the tool, "
                f"{len(missing)} quantities not given")

    def table(self) -> str:
        """Format the per-case, per-quantity table (plain text), then the refused cases."""
        head = (f"{'case':<28} {'quantity':<22} {'error':>10} {'tolerance':>9}  "
                f"{'worst element':<16} {'reference':>12} {'theirs':>12}  result")
        lines = [head, "-" * len(head)]
        refused = [r for r in self.rows if r.status == "refused"]
        for r in self.rows:
            if r.status == "refused":
                continue
            if r.status == "not given":
                lines.append(f"{r.case:<28} {r.quantity:<22} {'':>10} {'':>9}  {'':<16} "
                             f"{'':>12} {'':>12}  not given")
                continue
            index = "[" + ",".join(map(str, r.index)) + "]"
            lines.append(f"{r.case:<28} {r.quantity:<22} {r.error:>10.2e} {r.tolerance:>9.1e}  "
                         f"{index:<16} {r.ref:>12.5g} {r.theirs:>12.5g}  {r.status}"
                         + (f" ({r.note})" if r.note else ""))
        if refused:
            lines += ["", f"refused by the tool ({len(refused)} cases):"]
            lines += [f"  {r.case}: {r.note}" for r in refused]
        return "\n".join(lines)

    def records(self) -> list[dict[str, Any]]:
        """Return the rows as plain dicts (JSON / CSV)."""
        out = []
        for r in self.rows:
            rec = asdict(r)
            rec["index"] = ":".join(map(str, r.index))
            for key in ("error", "ref", "theirs", "scale", "tolerance"):
                if isinstance(rec[key], float) and not math.isfinite(rec[key]):
                    rec[key] = None if math.isnan(rec[key]) else str(rec[key])
            out.append(rec)
        return out

    def write(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write the report as CSV or JSON (by extension).

        Raises
        ------
        FileExistsError
            ``path`` exists and ``force`` is False.
        ValueError
            The extension is neither ``.csv`` nor ``.json``.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".json"):
            raise ValueError(f"{path}: the report is written as .csv or .json, got "
                             f"{suffix or 'no extension'!r}")
        if path.exists() and not force:
            raise FileExistsError(f"{path}: file exists; use --force to overwrite it")
        records = self.records()
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                if suffix == ".json":
                    json.dump({"suite": self.suite, "theirs": self.theirs, "tool": self.tool,
                               "summary": self.summary(), "passed": not self.failed,
                               "rows": records}, fh, indent=1)
                    fh.write("\n")
                else:
                    writer = csv.DictWriter(fh, fieldnames=list(records[0]) if records
                                            else [f for f in Row.__dataclass_fields__])
                    writer.writeheader()
                    writer.writerows(records)
            os.replace(tmp, path)
        except OSError as exc:
            raise OSError(f"{path}: cannot write the report ({exc.strerror or exc})") from None
        finally:
            if tmp.exists():
                tmp.unlink()
        return path


def parse_tolerances(items: list[str] | tuple[str, ...]) -> dict[str, float]:
    """``["i_sense=1e-6", "1e-7"]`` -> ``{"i_sense": 1e-6, "*": 1e-7}``.

    A bare number applies to every quantity; ``NAME=VALUE`` to the quantity ``NAME`` (in an
    MLP case ``g_updated`` means every layer's, ``fc1/g_updated`` one layer's).

    Raises
    ------
    ValueError
        Not a number, or not > 0.
    """
    out: dict[str, float] = {}
    for item in items:
        name, _, text = item.rpartition("=")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--tolerance {item!r}: expected NAME=VALUE or VALUE with a number, "
                             f"e.g. i_sense=1e-6") from None
        if not value > 0 or not math.isfinite(value):
            raise ValueError(f"--tolerance {item!r}: the tolerance must be a finite number > 0")
        out[name.strip() or "*"] = value
    return out


def _tolerance(name: str, meta: Mapping[str, Any], overrides: Mapping[str, float]) -> float:
    generic = name.split("/", 1)[1] if "/" in name else name
    for key in (name, generic, "*"):
        if key in overrides:
            return overrides[key]
    return float(meta.get("tolerance", schema.DEFAULT_TOLERANCE))


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_results(suite: Mapping[str, Any], theirs: Results, *,
                  tolerances: Mapping[str, float] | None = None) -> Report:
    """Compare ``theirs`` with the suite's reference outputs.

    Parameters
    ----------
    suite : mapping
        As :func:`xbarsim.golden.adapters.read_suite` returns it.
    theirs : Results
        Another tool's outputs (:func:`xbarsim.golden.adapters.read_results`).
    tolerances : mapping of str to float, optional
        Overrides of the suite's tolerances (:func:`parse_tolerances`).

    Returns
    -------
    Report
        One row per suite case and output: compared, not given, or refused; cases THEIRS does
        not mention are left out.

    Raises
    ------
    MismatchError
        A case or dataset of THEIRS that the suite does not have, a shape that differs from
        the reference's, non-numeric data, or THEIRS with no case of the suite at all.
    """
    overrides = dict(tolerances or {})
    cases = suite["cases"]
    order = suite.get("attrs", {}).get("case_names")
    names = ([n for n in order if n in cases] + [n for n in cases if n not in order]
             if isinstance(order, list) else list(cases))
    for case in list(theirs.cases) + list(theirs.refused):
        if case not in cases:
            raise MismatchError(f"THEIRS: case {case!r} is not in the suite"
                                f"{_suggest(case, names)}")
    if not theirs.cases and not theirs.refused:
        raise MismatchError("THEIRS: holds no case of the suite")
    report = Report(suite=str(suite.get("source", "")), theirs=theirs.source, tool=theirs.tool)
    for case in names:
        if case in theirs.refused:
            report.rows.append(Row(case, str(cases[case]["attrs"].get("case_kind", "")), "",
                                   "refused", note=theirs.refused[case]))
            continue
        if case not in theirs.cases:
            continue
        ref_case = cases[case]
        kind = str(ref_case["attrs"].get("case_kind", ""))
        data = ref_case["data"]
        outputs = schema.outputs_of(kind, list(data))
        given = theirs.cases[case]
        for name in given:
            if name in outputs:
                continue
            spec = schema.dataset_spec(kind, name)
            if spec is not None and name in data:
                continue          # an input or info dataset echoed back: not compared
            raise MismatchError(f"THEIRS: {case}/{name}: the suite's case {case!r} has no "
                                f"output {name!r}{_suggest(name, outputs)}; its outputs are "
                                f"{', '.join(outputs)}")
        for name in outputs:
            if name not in given:
                report.rows.append(Row(case, kind, name, "not given"))
                continue
            ref = np.asarray(data[name], dtype=np.float64)
            value = np.asarray(given[name])
            if value.dtype.kind not in "biuf":
                raise MismatchError(f"THEIRS: {case}/{name}: holds {value.dtype} data, "
                                    f"expected numbers")
            if value.shape != ref.shape:
                hint = (" (transposed?)" if value.ndim == 2 and value.shape == ref.shape[::-1]
                        else "")
                raise MismatchError(f"THEIRS: {case}/{name}: shape {value.shape} does not "
                                    f"match the suite's {ref.shape}{hint}")
            meta = ref_case["meta"].get(name, {})
            prefix = name.split("/", 1)[0] + "/" if "/" in name else ""
            scale_kind = str(meta.get("scale") or schema.dataset_spec(kind, name).scale)
            scale = schema.element_scale(scale_kind, ref, data, prefix)
            result = schema.compare(ref, value, scale, _tolerance(name, meta, overrides))
            note = ""
            if not math.isfinite(result.their_value) and math.isfinite(result.ref_value):
                note = "theirs is not finite"
            report.rows.append(Row(case, kind, name, "pass" if result.passed else "FAIL",
                                   error=result.error, index=result.index,
                                   ref=result.ref_value, theirs=result.their_value,
                                   scale=result.scale, tolerance=result.tolerance, note=note))
    return report
