"""Values of a policy file: each key's value checked and converted by its kind, and where a too-deeply nested
TOML document nests (``appraise.policy`` declares the keys)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from typing import Any

from verifier.core.errors import ConfigError
from verifier.core.model import Severity

MAX_INT = 2**40  # every int key is seconds or a count: anything larger is a typo (and overflows SQLite's INTEGER)
_BARE_OR_QUOTED = r"""(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')"""
_ASSIGNMENT = re.compile(rf"\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*=")
_HEADER = re.compile(rf"\s*\[\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*\]")


def too_deep(text: str) -> str:
    """Where the nesting is (tomllib raises a bare RecursionError): the first line whose prefix of the file
    recurses too deeply (found by bisection, each prefix parsed by tomllib again), and the key assigned there."""
    lines = text.splitlines(keepends=True)
    lo, hi = 1, len(lines)  # invariant: lines[:hi] recurses too deeply
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            tomllib.loads("".join(lines[:mid]))
        except RecursionError:
            hi = mid
            continue
        except ValueError:
            pass
        lo = mid + 1
    key = section = None
    for line in reversed(lines[:hi]):
        if key is None and (m := _ASSIGNMENT.match(line)):
            key = m.group(1)
        elif key is not None and (m := _HEADER.match(line)):
            section = m.group(1)
            break
    name = f"{section}.{key}" if section and key else key
    return f"line {hi}" + (f" (key {name!r:.80})" if name else "")


def show(value: Any) -> str:
    """A bounded description of a value for a message: repr of a scalar, the type of an array or table."""
    if isinstance(value, list | dict):
        return "an array" if isinstance(value, list) else "a table"
    return f"{value!r:.80}"


def _hex_bytes(name: str, value: Any, size: int, source: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {name}: got {type(value).__name__}, expected a hex string of {size} bytes")
    text = value.lower().removeprefix("0x")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{source}: {name}: {value!r} is not hex") from None
    if len(raw) != size:
        raise ConfigError(f"{source}: {name}: got {len(raw)} bytes, expected {size}")
    return raw


def coerce(kind: str, name: str, value: Any, source: str) -> Any:
    """``value`` of key ``name`` as its ``kind`` (see ``policy.Key``); ConfigError naming the key and the file."""
    scalar: dict[str, Callable[[Any], bool]] = {
        "str": lambda x: isinstance(x, str),
        "int": lambda x: isinstance(x, int) and not isinstance(x, bool),
        "bool": lambda x: isinstance(x, bool),
    }
    if kind in scalar:
        if not scalar[kind](value):
            raise ConfigError(f"{source}: {name}: got {show(value)}, expected {kind}")
        if kind == "int" and not -MAX_INT <= value <= MAX_INT:
            raise ConfigError(f"{source}: {name}: got {value}, expected a number within ±{MAX_INT}")
        return value
    if kind == "severity":
        if not isinstance(value, str) or value not in {s.value for s in Severity}:
            raise ConfigError(f"{source}: {name}: got {show(value)}, expected required | advisory | off")
        return value
    if kind == "str_list":
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise ConfigError(f"{source}: {name}: expected a list of strings")
        return value
    if kind.startswith("hex_list:"):
        size = int(kind.split(":")[1])
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {name}: expected a list of hex strings")
        return [_hex_bytes(name, x, size, source) for x in value]
    if kind == "table:str_list":
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(x, list) and all(isinstance(i, str) and i for i in x)
            for k, x in value.items()
        ):
            raise ConfigError(f'{source}: {name}: expected a table of "model" = ["alias", ...]')
        return value
    if kind.startswith("table:hex_list:"):
        size = int(kind.split(":")[2])
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {name}: expected a table of model = [hex, ...]")
        return {model: _coerce_list(f"{name}.{model}", ids, size, source) for model, ids in value.items()}
    raise AssertionError(f"unknown key kind {kind}")


def _coerce_list(name: str, value: Any, size: int, source: str) -> list[bytes]:
    if not isinstance(value, list):
        raise ConfigError(f"{source}: {name}: expected a list of hex strings")
    return [_hex_bytes(name, x, size, source) for x in value]
