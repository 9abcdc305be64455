"""Command-line ``key=value`` overrides: parsing, typing and validation against known keys.

Values are parsed as YAML scalars with ``yaml.safe_load`` (``epochs=3`` → 3,
``strict=true`` → True, ``imgsz=[224,224]`` → a list); a token that is not ``key=value``
or a key the command does not know is an error that names it and the closest valid key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names it and what to do."""


def did_you_mean(name: str, valid: Iterable[str], n: int = 3) -> str:
    """`` Did you mean a, b?`` for the valid names closest to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(valid), n=n, cutoff=0.5)
    return f" Did you mean {', '.join(close)}?" if close else ""


def closest_key(key: str, valid: Iterable[str]) -> str | None:
    """The valid key most like ``key``, or None when nothing is close."""
    matches = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return matches[0] if matches else None


def parse_overrides(tokens: Iterable[str], *, raw: bool = False) -> dict[str, Any]:
    """Turn ``["epochs=3", "data=path/to/set"]`` into ``{"epochs": 3, "data": "path/to/set"}``.

    ``raw=True`` keeps every value as its text, for callers that type values by key
    (``visionkit.cfg.coerce``), so ``name=2024`` stays the name ``"2024"``.
    """
    out: dict[str, Any] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"expected key=value, got {token!r}; for example `epochs=10` or `data=path/to/images`"
            )
        if key in out:
            raise ConfigError(f"key {key!r} given twice")
        out[key] = value if raw else parse_value(value)
    return out


def parse_value(raw: str) -> Any:
    """A YAML scalar (bool, int, float, null, list) or, failing that, the raw string."""
    if raw == "":
        return ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, str) and _FLOAT.fullmatch(raw.strip()):
        return float(raw)  # YAML 1.1 reads "1e-3" as text; users mean a number
    # A key=value token never means a nested mapping ("a: b" stays text).
    return raw if isinstance(value, dict) else value


def validate_keys(
    values: Mapping[str, Any], valid: Mapping[str, type | tuple[type, ...]], *, where: str
) -> None:
    """Reject unknown keys (naming the closest valid one) and values of the wrong type."""
    for key, value in values.items():
        if key not in valid:
            near = closest_key(key, valid)
            hint = f" Did you mean {near!r}?" if near else ""
            raise ConfigError(
                f"unknown key {key!r} for {where}.{hint} Valid keys: {', '.join(sorted(valid))}"
            )
        expected = valid[key]
        if value is not None and not matches_type(value, expected):
            names = " or ".join(
                t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,))
            )
            raise ConfigError(
                f"{where}: key {key!r} must be {names}, got {value!r} ({type(value).__name__})"
            )


def matches_type(value: Any, expected: type | tuple[type, ...]) -> bool:
    """Whether ``value`` fits ``expected``: ints count as floats, bools only as bools, and
    numbers as strings where a string is expected but no number is (a folder named 2024)."""
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    if isinstance(value, (int, float)) and str in types and int not in types and float not in types:
        return True
    return isinstance(value, types)
