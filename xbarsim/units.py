"""The one place where SI prefixes are converted (for display and human input only).

Everything inside xbarsim is in SI base units (S, Ohm, V, A, s) as float64. These helpers
exist for reports and for parsing strings such as ``"100k"`` typed by a user.
"""

from __future__ import annotations

import math

_PREFIXES = {
    "p": 1e-12, "n": 1e-9, "u": 1e-6, "\u00b5": 1e-6, "m": 1e-3,
    "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9,
}


def parse_si(text: str) -> float:
    """Parse a number with an optional SI prefix, e.g. ``"100k"`` -> 1e5, ``"4.6"`` -> 4.6.

    Raises
    ------
    ValueError
        If the text is not a number with a known prefix.
    """
    s = text.strip()
    for unit in ("Ohm", "ohm", "\u03a9", "S", "V", "A"):
        if s.endswith(unit):
            s = s[: -len(unit)].strip()
            break
    prefix = s[-1:] if s[-1:] in _PREFIXES and s[-1:] != "" else ""
    number = s[: len(s) - len(prefix)]
    try:
        return float(number) * _PREFIXES[prefix]
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a number with an SI prefix "
                         f"(use e.g. 100k, 4.6, 1.0e-6)") from None


def format_si(value: float, unit: str = "", digits: int = 3) -> str:
    """Format ``value`` with an engineering prefix, e.g. ``format_si(1e5, "Ohm")`` -> '100 kOhm'."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}".strip()
    exp3 = int(math.floor(math.log10(abs(value)) / 3))
    exp3 = max(-4, min(3, exp3))
    prefix = {-4: "p", -3: "n", -2: "u", -1: "m", 0: "", 1: "k", 2: "M", 3: "G"}[exp3]
    return f"{value / 10 ** (3 * exp3):.{digits}g} {prefix}{unit}".strip()
