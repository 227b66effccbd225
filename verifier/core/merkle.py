"""RFC 9162 Merkle tree hashing, inclusion and consistency proofs (Certificate Transparency v2, §2.1).

leaf hash ``SHA-256(0x00 ‖ entry)``, interior node ``SHA-256(0x01 ‖ left ‖ right)``, the empty tree hashes to
``SHA-256("")``. A tree of ``n`` leaves splits at ``k``, the largest power of two below ``n`` (§2.1.1). Proofs are
generated from the list of leaf hashes (§2.1.3.1 PATH, §2.1.4.1 PROOF/SUBPROOF) and verified with the algorithms of
§2.1.3.2 and §2.1.4.2. Pure functions: no I/O. A proof that does not verify raises ``ProofError``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import rfc8785

HASH_SIZE = 32


class ProofError(ValueError):
    """A Merkle proof that does not verify, or whose parameters are impossible."""


def verdict_entry(verdict: dict[str, Any]) -> bytes:
    """The log entry of a verdict: its RFC 8785 (JCS) canonical JSON, so anyone holding the JSON re-derives it.

    A verdict outside I-JSON (a string with a lone surrogate, an integer beyond 2**53, both possible in echoed
    untrusted input) has no JCS form; its entry is then the JCS of ``{"verdict_json_ascii": T}`` where T is
    ``json.dumps(verdict, ensure_ascii=True, sort_keys=True, separators=(",", ":"))``, an ASCII string. No verdict
    has that one key, so the two forms never collide.
    """
    try:
        return rfc8785.dumps(verdict)
    except (rfc8785.CanonicalizationError, UnicodeError):
        text = json.dumps(verdict, ensure_ascii=True, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return rfc8785.dumps({"verdict_json_ascii": text})


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes (not entries)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    return _mth(leaves, 0, len(leaves))


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    if hi - lo == 1:
        return leaves[lo]
    k = _split(hi - lo)
    return node_hash(_mth(leaves, lo, lo + k), _mth(leaves, lo + k, hi))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) for the tree of ``leaves`` (leaf hashes), leaf-to-root order."""
    if not 0 <= index < len(leaves):
        raise ProofError(f"leaf index {index} is outside a tree of size {len(leaves)}")
    return _path(leaves, index, 0, len(leaves))


def _path(leaves: Sequence[bytes], m: int, lo: int, hi: int) -> list[bytes]:
    if hi - lo == 1:
        return []
    k = _split(hi - lo)
    if m < k:
        return [*_path(leaves, m, lo, lo + k), _mth(leaves, lo + k, hi)]
    return [*_path(leaves, m - k, lo + k, hi), _mth(leaves, lo, lo + k)]


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]): the tree of the first ``old_size`` leaves is a prefix of the tree of ``leaves``."""
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise ProofError(f"old size {old_size} is outside 0..{n}")
    if old_size in (0, n):
        return []
    return _subproof(leaves, old_size, 0, n, True)


def _subproof(leaves: Sequence[bytes], m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
    if m == hi - lo:
        return [] if whole else [_mth(leaves, lo, hi)]
    k = _split(hi - lo)
    if m <= k:
        return [*_subproof(leaves, m, lo, lo + k, whole), _mth(leaves, lo + k, hi)]
    return [*_subproof(leaves, m - k, lo + k, hi, False), _mth(leaves, lo, lo + k)]


def _check_hashes(*hashes: object) -> None:
    for h in hashes:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ProofError(
                f"expected {HASH_SIZE}-byte hashes, got {len(h) if isinstance(h, bytes) else type(h).__name__}"
            )


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: ``leaf`` (a leaf hash) is leaf ``index`` of the tree of ``size`` leaves whose root is
    ``root``."""
    _check_hashes(leaf, root, *proof)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root hash")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: the tree of ``old_size`` leaves (``old_root``) is a prefix of the one of ``new_size``."""
    _check_hashes(old_root, new_root, *proof)
    if not 0 <= old_size <= new_size:
        raise ProofError(f"old size {old_size} is not within 0..{new_size}")
    if old_size == new_size or old_size == 0:
        if proof:
            raise ProofError("a consistency proof from an empty or equal tree must be empty")
        if old_size == new_size and old_root != new_root:
            raise ProofError("two trees of the same size have different root hashes")
        return
    if not proof:
        raise ProofError("empty consistency proof between different trees")
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the tree is deep")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root hash")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root hash")


def frontier_append(frontier: Sequence[bytes], size: int, leaf: bytes) -> list[bytes]:
    """The right frontier (the roots of the perfect subtrees that make a tree of ``size`` leaves, largest first) after
    appending ``leaf``: two subtrees of equal size merge, as the carry of a binary increment."""
    if len(frontier) != bin(size).count("1"):
        raise ValueError(
            f"a frontier of a tree of {size} leaves has {bin(size).count('1')} hashes, got {len(frontier)}"
        )
    out, carry, n = list(frontier), leaf, size
    while n & 1:
        carry = node_hash(out.pop(), carry)
        n >>= 1
    out.append(carry)
    return out


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """MTH of the tree whose right frontier this is (the empty frontier: the empty tree)."""
    if not frontier:
        return hashlib.sha256(b"").digest()
    r = frontier[-1]
    for h in reversed(frontier[:-1]):
        r = node_hash(h, r)
    return r
