"""Strict YAML loading of a :class:`~xbarsim.config.schema.RunConfig`.

The flow is that of mkdocs' ``load_config`` (the messages users see: docs/inputs.md):

1. parse the file with :func:`parse_yaml`: YAML's safe subset, strictly (an unreadable file, a
   YAML syntax error or a key written twice in one mapping is a
   :class:`~xbarsim.errors.ConfigError` naming the file, the key and the lines);
2. apply the ``--set a.b.c=value`` overrides, each value parsed with :func:`parse_yaml`; an
   override of a path that does not exist in the schema is an error with a suggestion;
3. expand presets: any section may hold ``preset: <name>`` (top level, ``hardware``,
   ``hardware.device``, ...). The section is then the same section of ``PRESETS[name]()``
   with the explicit keys merged over it (deeply). Inner presets are expanded first, so
   ``device: {preset: cross_ideal}`` under a top-level ``preset: txsim`` wins for the device;
   overrides are explicit keys and therefore win over every preset;
4. a strict ``from_dict``: unknown keys are errors with a ``difflib`` "did you mean", every
   value is type-checked (``int -> float`` is the only coercion; a bool is not a number; the
   string ``'1e-4'`` gets the hint to write ``1.0e-4``), ranges are checked by the dataclasses;
5. *all* errors are collected with their dotted paths, e.g.
   ``hardware.crossbar.r_row: expected float >= 0, got -1.0``, and raised together as one
   :class:`~xbarsim.errors.ConfigError`.

:func:`dump_config` writes a config back to YAML; ``load_config(yaml.safe_load(dump_config(c)))
== c`` holds exactly for every valid config.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass
from typing import Any

import yaml

from xbarsim.config.presets import PRESETS
from xbarsim.config.schema import RunConfig, describe, section_fields, type_hints
from xbarsim.errors import ConfigError

__all__ = ["load_config", "dump_config", "config_to_dict", "from_dict", "parse_override",
           "parse_yaml", "StrictSafeLoader"]

PRESET_KEY = "preset"


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _unknown_key(path: str, key: Any, valid: Sequence[str]) -> str:
    where = _join(path, key)
    close = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.6)
    if close:
        return f"{where}: unknown key; did you mean {close[0]!r}?"
    return f"{where}: unknown key; valid keys here: {', '.join(valid)}"


def _valid_keys(cls: type) -> list[str]:
    return [f.name for f in fields(cls)] + [PRESET_KEY]


# --------------------------------------------------------------------------------------------
# dict <-> dataclass
# --------------------------------------------------------------------------------------------


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (tuples become lists), in field order."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            value = config_to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def dump_config(cfg: RunConfig) -> str:
    """Write the config as YAML (block style, field order); floats keep a dot (``1.0e-10``)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False,
                          allow_unicode=True)


def from_dict(cls: type, raw: Any, path: str = "") -> tuple[Any, list[str]]:
    """Build config section ``cls`` from a preset-free mapping, strictly.

    Returns ``(instance, errors)``; ``instance`` is None when there are errors. Each message
    starts with its dotted path below ``path``.
    """
    if raw is None:  # a section written as `device:` with nothing under it
        raw = {}
    if not isinstance(raw, Mapping):
        what = path or "top level"
        return None, [f"{what}: expected a mapping of keys ({', '.join(_valid_keys(cls)[:-1])}),"
                      f" got {raw!r} ({type(raw).__name__})"]
    errors: list[str] = []
    names = [f.name for f in fields(cls)]
    for key in raw:
        if key not in names:
            errors.append(_unknown_key(path, key, names))
    kwargs: dict[str, Any] = {}
    sections = section_fields(cls)
    failed_child = False
    for name in names:
        if name not in raw:
            continue
        if name in sections:
            child, child_errors = from_dict(sections[name], raw[name], _join(path, name))
            if child_errors:
                errors.extend(child_errors)
                failed_child = True
                continue  # the field default stands in, to check the rest of this section
            kwargs[name] = child
        else:
            kwargs[name] = raw[name]
    try:
        instance = cls(**kwargs)
    except ConfigError as exc:
        own = exc.errors
        if failed_child:
            # cross-section rules were checked against a default stand-in: not meaningful
            own = [m for m in own if m.split(".", 1)[0].split(":", 1)[0] not in sections]
        errors.extend(_join(path, m) for m in own)
        instance = None
    return (None if errors else instance), errors


# --------------------------------------------------------------------------------------------
# presets and overrides
# --------------------------------------------------------------------------------------------


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _preset_section(name: str, parts: Sequence[str]) -> dict[str, Any]:
    node: Any = config_to_dict(PRESETS[name]())
    for part in parts:
        node = node[part]
    return node


def _expand_presets(cls: type, raw: Any, parts: tuple[str, ...],
                    errors: list[str]) -> Any:
    """Replace every ``preset:`` key below ``raw`` by the preset's section (inner ones first)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return raw  # from_dict reports it
    out = dict(raw)
    for name, child_cls in section_fields(cls).items():
        if name in out:
            out[name] = _expand_presets(child_cls, out[name], (*parts, name), errors)
    if PRESET_KEY in out:
        preset = out.pop(PRESET_KEY)
        where = _join(".".join(parts), PRESET_KEY)
        if not isinstance(preset, str) or preset not in PRESETS:
            msg = f"{where}: unknown preset {preset!r}"
            close = difflib.get_close_matches(str(preset), list(PRESETS), n=1, cutoff=0.6)
            msg += f"; did you mean {close[0]!r}?" if close else ""
            errors.append(msg + f" (available: {', '.join(PRESETS)})")
        else:
            out = _deep_merge(_preset_section(preset, parts), out)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b.c=value"`` into the key path and the YAML-parsed value.

    Raises
    ------
    ConfigError
        Without ``=``, with an empty key, or when the value is not valid YAML.
    """
    key, sep, value_text = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not p for p in key.split(".")):
        raise ConfigError([f"--set {text!r}: expected KEY=VALUE with a dotted KEY, "
                           f"e.g. hardware.crossbar.r_row=1.0"])
    try:
        value = parse_yaml(value_text)
    except ConfigError as exc:
        raise ConfigError([f"--set {text!r}: the value is not valid YAML ({exc.errors[0]})"]) \
            from None
    return key.split("."), value


def _check_override_path(parts: Sequence[str], text: str) -> str | None:
    cls: type = RunConfig
    for i, part in enumerate(parts):
        where = ".".join(parts[: i + 1])
        last = i == len(parts) - 1
        if part == PRESET_KEY and last:
            return None
        names = [f.name for f in fields(cls)]
        if part not in names:
            close = difflib.get_close_matches(part, [*names, PRESET_KEY], n=1, cutoff=0.6)
            hint = f"did you mean {'.'.join([*parts[:i], close[0]])!r}?" if close else \
                f"valid keys here: {', '.join(names)}"
            return f"--set {text!r}: unknown key {where!r}; {hint}"
        sections = section_fields(cls)
        if part in sections:
            cls = sections[part]
        elif not last:
            return (f"--set {text!r}: {where!r} is a value ({describe(type_hints(cls)[part])}),"
                    f" not a section")
    return None


def _apply_override(raw: dict[str, Any], parts: Sequence[str], value: Any, text: str) -> str | None:
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            return (f"--set {text!r}: {'.'.join(parts[: i + 1])!r} is {child!r} in the config, "
                    f"not a mapping")
        node = child
    last = parts[-1]
    if isinstance(value, Mapping) and isinstance(node.get(last), Mapping):
        node[last] = _deep_merge(node[last], value)
    else:
        node[last] = value
    return None


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


class DuplicateKeyError(yaml.YAMLError):
    """A mapping holds the same key twice (YAML 1.2 forbids it; PyYAML keeps the last)."""

    def __init__(self, path: str, first: yaml.Mark, second: yaml.Mark) -> None:
        self.path, self.first, self.second = path, first, second

        def where(mark: yaml.Mark) -> str:
            column = f", column {mark.column + 1}" if first.line == second.line else ""
            return f"line {mark.line + 1}{column}"

        super().__init__(f"{path}: duplicate key at {where(second)} (first defined at "
                         f"{where(first)}); YAML would silently keep only the last value: "
                         f"remove or merge one of them")


_MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping.

    PyYAML's own loaders keep the last value of a duplicated key and drop the earlier one
    without a word (``lr: 0.1`` then ``lr: 0.2``; or two ``train:`` sections, where the whole
    first section is lost). YAML 1.2 requires keys to be unique; this loader checks every
    mapping of the document, before any value is constructed, and raises
    :class:`DuplicateKeyError` with the dotted path of the key and both line numbers. Merge
    keys (``<<: *anchor``) keep their YAML meaning: explicit keys override merged ones.
    """

    def get_single_node(self) -> yaml.Node | None:  # type: ignore[override]
        """Compose the document's node tree and check every mapping in it for duplicates."""
        node = super().get_single_node()
        if node is not None:
            self._check_unique_keys(node, "", set())
        return node

    def _check_unique_keys(self, node: yaml.Node, path: str, seen_nodes: set[int]) -> None:
        if id(node) in seen_nodes:  # an alias of a node already checked (or a cycle)
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for k, item in enumerate(node.value):
                self._check_unique_keys(item, f"{path}[{k}]", seen_nodes)
        elif isinstance(node, yaml.MappingNode):
            first_seen: dict[Any, yaml.Mark] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                label = _join(path, key)
                try:
                    previous = first_seen.get(key)
                except TypeError:  # an unhashable key: the constructor reports it
                    previous = None
                else:
                    if previous is None:
                        first_seen[key] = key_node.start_mark
                if previous is not None:
                    raise DuplicateKeyError(label, previous, key_node.start_mark)
                self._check_unique_keys(value_node, label, seen_nodes)


def parse_yaml(text: str, source: str | None = None) -> Any:
    """Parse YAML ``text`` strictly: the safe subset, and every mapping key written once.

    Both ``xbarsim run`` configurations and ``xbarsim tile --config`` files are read with it.
    Keys are compared as the mapping would store them: ``lr`` and ``'lr'`` are the same key,
    and so are ``yes`` and ``true``.

    Parameters
    ----------
    text : str
        The YAML document.
    source : str, optional
        File name, quoted in the error.

    Returns
    -------
    object
        The document as ``yaml.safe_load`` would return it (None for an empty document).

    Raises
    ------
    ConfigError
        A YAML syntax error (with its line and column) or a duplicate key (with the dotted
        path of the key and the lines of both occurrences).
    """
    try:
        return yaml.load(text, Loader=StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as exc:
        raise ConfigError([str(exc)], source=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"YAML syntax error at {where}{problem}"], source=source) from None


def _read_yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError([f"cannot read the config file: {exc.strerror or exc}"],
                          source=path) from None
    return parse_yaml(text, source=path)


def load_config(source: str | os.PathLike[str] | Mapping[str, Any],
                overrides: Sequence[str] = ()) -> RunConfig:
    """Load, merge and validate a run configuration.

    Parameters
    ----------
    source : str, path-like or mapping
        A YAML file, or an already parsed mapping (e.g. ``yaml.safe_load(dump_config(cfg))``).
    overrides : sequence of str
        ``"a.b.c=value"`` items (the CLI's ``--set``), applied in order; each value is parsed
        with :func:`parse_yaml` (so ``1.0e-4`` is a float, ``null`` is None).

    Returns
    -------
    RunConfig
        The validated, frozen configuration.

    Raises
    ------
    ConfigError
        Listing every problem found, each with its dotted key, the value and the fix.
    """
    if isinstance(source, Mapping):
        label = None
        raw: Any = copy.deepcopy(dict(source))
    else:
        label = os.fspath(source)
        raw = _read_yaml(label)
    if raw is None:  # an empty file: all defaults
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"top level: expected a mapping of sections "
                           f"({', '.join(_valid_keys(RunConfig))}), got {type(raw).__name__}"],
                          source=label)
    if isinstance(overrides, str):  # a lone "a=b" is not a list of one-character overrides
        overrides = [overrides]

    errors: list[str] = []
    for text in overrides:
        try:
            parts, value = parse_override(text)
        except ConfigError as exc:
            errors.extend(exc.errors)
            continue
        problem = _check_override_path(parts, text) or _apply_override(raw, parts, value, text)
        if problem:
            errors.append(problem)

    expanded = _expand_presets(RunConfig, raw, (), errors)
    cfg, build_errors = from_dict(RunConfig, expanded)
    errors.extend(build_errors)
    if errors:
        raise ConfigError(errors, source=label)
    assert cfg is not None
    return cfg
