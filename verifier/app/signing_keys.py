"""The verifier's own Ed25519 signing keys (the log's checkpoint key, the EAR key), each kept in a PEM file.

A key file holds one or more PKCS#8 PEM private keys: the LAST one signs, the earlier ones are retired keys whose
public halves stay published (rotation appends a key, see ``rotate``). A missing file is created, with one new key,
mode 0600, when ``create`` is set (first ``serve``, like the admin key); ``path=None`` gives one key that lives
only in memory (tests, `--db :memory:`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from verifier.core.errors import ConfigError

_PEM = re.compile(rb"-----BEGIN PRIVATE KEY-----\r?\n.+?-----END PRIVATE KEY-----\r?\n?", re.DOTALL)


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def _write_new(path: Path, data: bytes, *, append: bool) -> None:
    flags = os.O_WRONLY | (os.O_APPEND if append else os.O_CREAT | os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def load_keys(path: str | Path | None, *, create: bool = False) -> tuple[Ed25519PrivateKey, ...]:
    """The keys in the file, oldest first (the last one signs). ConfigError if it is unreadable or holds a non-Ed25519
    key, or is missing and ``create`` is false."""
    if path is None:
        return (Ed25519PrivateKey.generate(),)
    p = Path(path)
    if not p.exists():
        if not create:
            raise ConfigError(f"key file {p}: does not exist")
        key = Ed25519PrivateKey.generate()
        try:
            _write_new(p, _pem(key), append=False)
        except FileExistsError:
            pass  # another process made it just now: read theirs
        except OSError as exc:
            raise ConfigError(f"key file {p}: cannot create: {exc}") from None
        else:
            return (key,)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"key file {p}: cannot read: {exc}") from None
    keys: list[Ed25519PrivateKey] = []
    for block in _PEM.findall(data):
        try:
            loaded = load_pem_private_key(block, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"key file {p}: not a PEM private key: {exc}") from None
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ConfigError(f"key file {p}: expected Ed25519 keys, got {type(loaded).__name__}")
        keys.append(loaded)
    if not keys:
        raise ConfigError(f"key file {p}: no PEM private key in it")
    return tuple(keys)


def rotate(path: str | Path) -> Ed25519PrivateKey:
    """Append a new key to an existing key file: it signs from now on, the older ones stay published."""
    p = Path(path)
    load_keys(p)  # refuse to append to a file we could not read back
    key = Ed25519PrivateKey.generate()
    prefix = b"" if p.read_bytes().endswith(b"\n") else b"\n"
    _write_new(p, prefix + _pem(key), append=True)
    return key
