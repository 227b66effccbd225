"""Memo of verification work that depends only on immutable bytes (a certificate chain, a JWKS key, a collateral
file's parse), owned by the running services and handed to the verifiers through the context — never module state.

A remembered result still carries its validity window: every use judges it again at that verification's time.
Thread-safe (verification runs in a thread pool) and bounded (cleared when full).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class Memo:
    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._data: dict[bytes, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Any:
        return self._data.get(key)

    def put(self, key: bytes, value: Any) -> None:
        with self._lock:
            if len(self._data) >= self._max:
                self._data.clear()
            self._data[key] = value

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True, slots=True)
class VerificationMemo:
    gpu_chains: Memo = field(default_factory=lambda: Memo(4096))  # GPU device chains validated to the root
    nras_keys: Memo = field(default_factory=lambda: Memo(256))  # NRAS JWKS keys whose x5c validated
    collateral: Memo = field(default_factory=lambda: Memo(256))  # bundle collateral files parsed, by sha256 of bytes
    pck: Memo = field(default_factory=lambda: Memo(1024))  # (FMSPC, CA) of a PCK chain, by sha256 of its PEM bytes


def remembered(memo: Memo | None, parse: Callable[[bytes], T]) -> Callable[[bytes], T]:
    """``parse`` remembered in ``memo`` by sha256 of its input bytes (content, not a name: other bytes are parsed
    afresh). Only results are remembered; an input that raises is parsed, and raises, every time."""
    if memo is None:
        return parse

    def cached(data: bytes) -> T:
        key = hashlib.sha256(data).digest()
        hit: T | None = memo.get(key)
        if hit is None:
            hit = parse(data)
            memo.put(key, hit)
        return hit

    return cached
