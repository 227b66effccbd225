"""RFC 9162 Merkle tree: hashes, inclusion and consistency proofs against hand-derived and published vectors."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier.core.merkle import (
    ProofError,
    consistency_proof,
    frontier_append,
    frontier_root,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verdict_entry,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "transparency_dev_merkle.json").read_text())["cases"]


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --- a reference written straight from the RFC's definitions, by the formula, independent of the module --------


def ref_mth(d: list[bytes]) -> bytes:
    """MTH over entries (RFC 9162 §2.1.1), with k found by counting up."""
    if not d:
        return h(b"")
    if len(d) == 1:
        return h(b"\x00" + d[0])
    k = 1
    while k * 2 < len(d):
        k *= 2
    return h(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = 1
    while k * 2 < len(d):
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < len(d):
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


ENTRIES = [f"entry {i}".encode() for i in range(16)]
LEAVES = [leaf_hash(e) for e in ENTRIES]


def test_leaf_and_node_hashes_are_domain_separated_sha256() -> None:
    assert leaf_hash(b"abc") == h(b"\x00abc")
    assert node_hash(b"L" * 32, b"R" * 32) == h(b"\x01" + b"L" * 32 + b"R" * 32)
    assert root_hash([]) == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def test_small_trees_written_out_by_hand() -> None:
    a, b, c, d, e = LEAVES[:5]
    assert root_hash([a]) == a
    assert root_hash([a, b]) == node_hash(a, b)
    assert root_hash([a, b, c]) == node_hash(node_hash(a, b), c)
    assert root_hash([a, b, c, d]) == node_hash(node_hash(a, b), node_hash(c, d))
    assert root_hash([a, b, c, d, e]) == node_hash(node_hash(node_hash(a, b), node_hash(c, d)), e)
    # RFC 9162 §2.1.5 example tree of 7 leaves: the path of d0 is [b, h, i], the consistency proof 3->7 is [c, d, g, l]
    t = LEAVES[:7]
    g, hh = node_hash(t[0], t[1]), node_hash(t[2], t[3])
    i = node_hash(node_hash(t[4], t[5]), t[6])
    assert inclusion_proof(t, 0) == [t[1], hh, i]
    assert inclusion_proof(t, 3) == [t[2], g, i]
    assert inclusion_proof(t, 4) == [t[5], t[6], node_hash(g, hh)]
    assert inclusion_proof(t, 6) == [node_hash(t[4], t[5]), node_hash(g, hh)]
    assert consistency_proof(t, 3) == [t[2], t[3], g, i]
    assert consistency_proof(t, 4) == [i]
    assert consistency_proof(t, 6) == [node_hash(t[4], t[5]), t[6], node_hash(g, hh)]


@pytest.mark.parametrize("n", range(1, 17))
def test_every_inclusion_proof_of_every_tree_up_to_16_matches_the_rfc_formula_and_verifies(n: int) -> None:
    root = root_hash(LEAVES[:n])
    assert root == ref_mth(ENTRIES[:n])
    for m in range(n):
        proof = inclusion_proof(LEAVES[:n], m)
        assert proof == ref_path(m, ENTRIES[:n])
        verify_inclusion(m, n, LEAVES[m], proof, root)
        with pytest.raises(ProofError):
            verify_inclusion(m, n, leaf_hash(b"other"), proof, root)
        if proof:
            bad = [*proof[:-1], bytes(32)]
            with pytest.raises(ProofError):
                verify_inclusion(m, n, LEAVES[m], bad, root)
            with pytest.raises(ProofError):
                verify_inclusion(m, n, LEAVES[m], proof[:-1], root)
        with pytest.raises(ProofError):
            verify_inclusion(m, n, LEAVES[m], [*proof, bytes(32)], root)
        # (the tree size is bound by the signed checkpoint, not by the path: a path may verify for several sizes)


@pytest.mark.parametrize("n", range(1, 17))
def test_every_consistency_proof_of_every_tree_up_to_16_matches_the_rfc_formula_and_verifies(n: int) -> None:
    new_root = root_hash(LEAVES[:n])
    for m in range(1, n + 1):
        proof = consistency_proof(LEAVES[:n], m)
        assert proof == ([] if m == n else ref_subproof(m, ENTRIES[:n], True))
        old_root = root_hash(LEAVES[:m])
        verify_consistency(m, n, old_root, new_root, proof)
        if m == n:
            continue
        with pytest.raises(ProofError):
            verify_consistency(m, n, root_hash([*LEAVES[: m - 1], leaf_hash(b"x")]), new_root, proof)
        with pytest.raises(ProofError):
            verify_consistency(m, n, old_root, root_hash([*LEAVES[: n - 1], leaf_hash(b"x")]), proof)
        with pytest.raises(ProofError):
            verify_consistency(m, n, old_root, new_root, [*proof[:-1], bytes(32)])
        with pytest.raises(ProofError):
            verify_consistency(m, n, old_root, new_root, [*proof, bytes(32)])


def test_consistency_edge_cases() -> None:
    verify_consistency(0, 5, root_hash([]), root_hash(LEAVES[:5]), [])
    with pytest.raises(ProofError):
        verify_consistency(3, 2, root_hash(LEAVES[:3]), root_hash(LEAVES[:2]), [])
    with pytest.raises(ProofError):
        verify_consistency(2, 2, root_hash(LEAVES[:2]), root_hash(LEAVES[1:3]), [])
    with pytest.raises(ProofError):
        verify_consistency(2, 4, root_hash(LEAVES[:2]), root_hash(LEAVES[:4]), [])
    with pytest.raises(ProofError):
        inclusion_proof(LEAVES[:3], 3)
    with pytest.raises(ProofError):
        consistency_proof(LEAVES[:3], 4)


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


@pytest.mark.parametrize("name", sorted(n for n in VECTORS if n.startswith("testdata/inclusion/")))
def test_published_transparency_dev_inclusion_vectors(name: str) -> None:
    case = VECTORS[name]
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), proof, _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


# Where we are stricter than the Go library: every hash we accept is 32 bytes, even when no hashing is needed.
STRICTER = {"testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}  # 15-byte "roots"


@pytest.mark.parametrize("name", sorted(n for n in VECTORS if n.startswith("testdata/consistency/")))
def test_published_transparency_dev_consistency_vectors(name: str) -> None:
    case = VECTORS[name]
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), proof)
    if case["wantErr"] or name in STRICTER:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


@given(st.integers(-3, 40), st.integers(-3, 40), st.lists(st.binary(min_size=0, max_size=40), max_size=8))
def test_arbitrary_proofs_raise_only_proof_error(index: int, size: int, proof: list[bytes]) -> None:
    root = root_hash(LEAVES[:5])
    for fn in (
        lambda: verify_inclusion(index, size, LEAVES[0], proof, root),
        lambda: verify_consistency(index, size, root, root, proof),
    ):
        with contextlib.suppress(ProofError):
            fn()


def test_the_frontier_gives_the_root_of_every_prefix() -> None:
    frontier: list[bytes] = []
    assert frontier_root(frontier) == root_hash([])
    for n, leaf in enumerate(LEAVES):
        frontier = frontier_append(frontier, n, leaf)
        assert frontier_root(frontier) == root_hash(LEAVES[: n + 1])
    with pytest.raises(ValueError):
        frontier_append(frontier, 3, LEAVES[0])


def test_verdict_entry_is_rfc8785_canonical_json() -> None:
    assert verdict_entry({"b": 1, "a": [1.0, "é"], "c": None}) == '{"a":[1,"é"],"b":1,"c":null}'.encode()
    assert verdict_entry({"big": 2**64}) == b'{"verdict_json_ascii":"{\\"big\\":18446744073709551616}"}'
    assert verdict_entry({"s": "\ud800"}) == b'{"verdict_json_ascii":"{\\"s\\":\\"\\\\ud800\\"}"}'
