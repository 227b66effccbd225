"""Memo of verification work that depends only on immutable bytes (a certificate chain, a JWKS key), owned by the
running services and handed to the verifiers through the context — never module state.

A remembered result still carries its validity window: every use judges it again at that verification's time.
Thread-safe (verification runs in a thread pool) and bounded (cleared when full).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


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
