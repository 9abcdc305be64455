"""The documented defaults (``default.yaml``) and the resolution of a run's configuration.

``default.yaml`` is the one place where every key, its type, its default and its meaning
are written; this module parses the ``# (type) meaning`` comments so validation and
``--help`` use the same text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from visionkit.config import ConfigError, closest_key, matches_type, parse_value

# Keys a run adds to its config.yaml (read from the data and the model): accepted when a
# saved config is used again, and recomputed by the run.
DERIVED_KEYS = frozenset(
    (
        "class_names",
        "num_classes",
        "input_shape",
        "pretrained",
        "backbone",
        "replicas",
        "global_batch",
    )
)

_LINE = re.compile(
    r"^(?P<key>[a-z_][a-z0-9_]*):\s*(?P<value>[^#]*?)\s*#\s*\((?P<type>[^)]+)\)\s*(?P<help>.*)$"
)
_TYPES: dict[str, type | None] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "null": type(None),
}


@dataclass(frozen=True)
class KeySpec:
    """One documented key: its default, accepted types and meaning."""

    key: str
    default: Any
    types: tuple[type, ...]
    type_text: str
    help: str


@cache
def key_specs() -> dict[str, KeySpec]:
    """Every key of ``default.yaml`` in file order."""
    text = resources.files("visionkit.cfg").joinpath("default.yaml").read_text(encoding="utf-8")
    specs: dict[str, KeySpec] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        names = match["type"].split("|")
        unknown = [n for n in names if n not in _TYPES]
        if unknown:
            raise RuntimeError(f"default.yaml: key {match['key']!r} has unknown type {unknown}")
        specs[match["key"]] = KeySpec(
            key=match["key"],
            default=yaml.safe_load(match["value"]) if match["value"] else None,
            types=tuple(_TYPES[n] for n in names),
            type_text=match["type"],
            help=match["help"],
        )
    return specs


def defaults() -> dict[str, Any]:
    """The default value of every key."""
    return {k: spec.default for k, spec in key_specs().items()}


def coerce(key: str, raw: str) -> Any:
    """Type a command-line value by its key: text for text-only keys (``name=2024``,
    ``data=1e3`` stay as written), YAML scalars otherwise; ``null`` is None where allowed."""
    spec = key_specs().get(key)
    if spec is not None and set(spec.types) <= {str, type(None)}:
        return None if raw in ("null", "~", "None") and type(None) in spec.types else raw
    if spec is not None and dict in spec.types and raw.strip().startswith("{"):
        try:
            value = yaml.safe_load(raw)  # a flow mapping: augment="{elastic_prob: 0.5}"
        except yaml.YAMLError as err:
            raise ConfigError(f"{key}={raw}: not a valid YAML mapping ({err})") from None
        if isinstance(value, dict):
            return value
    return parse_value(raw)


def check_value(key: str, value: Any, *, where: str = "config") -> Any:
    """Validate one key's value (ints are accepted where floats are); return it."""
    specs = key_specs()
    if key in DERIVED_KEYS:
        return value
    if key not in specs:
        near = closest_key(key, specs)
        hint = f" Did you mean {near!r}?" if near else ""
        raise ConfigError(f"{where}: unknown key {key!r}.{hint} `visionkit keys` lists every key.")
    spec = specs[key]
    if matches_type(value, spec.types):
        return (
            float(value)
            if float in spec.types
            and int not in spec.types
            and isinstance(value, int)
            and not isinstance(value, bool)
            else value
        )
    raise ConfigError(
        f"{where}: key {key!r} must be {spec.type_text}, got {value!r} ({type(value).__name__}): {spec.help}"
    )


def resolve(*layers: dict[str, Any] | None, where: str = "config") -> dict[str, Any]:
    """Defaults, then each layer (pipeline file, command line) on top; every key checked.

    Keys a run derives (``DERIVED_KEYS``) are dropped: the run recomputes them.
    """
    config = defaults()
    for layer in layers:
        for key, value in (layer or {}).items():
            value = check_value(key, value, where=where)
            if key not in DERIVED_KEYS:
                config[key] = value
    return config


def resolve_cli(*layers: dict[str, Any] | None, tokens: list[str], where: str) -> dict[str, Any]:
    """``resolve`` with command-line ``key=value`` tokens typed by their keys on top."""
    from visionkit.config import parse_overrides

    overrides = {k: coerce(k, v) for k, v in parse_overrides(tokens, raw=True).items()}
    return resolve(*layers, overrides, where=where)


def load_pipeline(path: str) -> dict[str, Any]:
    """Read a pipeline YAML (safe loader) into a flat key → value mapping, keys checked."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise ConfigError(f"pipeline file not found: {path}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{path}{where}: not valid YAML: {getattr(err, 'problem', err)}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a pipeline is a mapping of key: value lines, got {type(data).__name__}"
        )
    for key, value in data.items():
        check_value(str(key), value, where=path)
    return data


def format_keys() -> str:
    """Every key with its default, type and meaning, for ``visionkit keys``."""
    rows = [
        (s.key, repr(s.default) if s.default is not None else "null", s.type_text, s.help)
        for s in key_specs().values()
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{k:<{widths[0]}}  {d:<{widths[1]}}  {t:<{widths[2]}}  {h}" for k, d, t, h in rows
    )
