"""The ledger's transparency log: one RFC 9162 Merkle leaf per verdict, signed checkpoints, proofs (tables of 0005).

Leaf ``idx`` (0-based, id order) is ``SHA-256(0x00 ‖ JCS(verdict JSON))`` of the verdict as stored (with its id).
Each row also keeps the tree's right frontier and root at size ``idx + 1``: appending is O(log n), and the root of
any past size is one row away. Proofs are built from the leaf hashes (``verifier.core.merkle``). Callers hold the
ledger's write transaction for the writes here.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from verifier.core.checkpoint import Checkpoint, NoteSigner
from verifier.core.merkle import (
    consistency_proof,
    frontier_append,
    frontier_root,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verdict_entry,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _frontier(text: str) -> list[bytes]:
    raw = bytes.fromhex(text)
    return [raw[i : i + 32] for i in range(0, len(raw), 32)]


def append_leaf(db: Database, verdict_id: str, verdict: dict[str, Any]) -> int:
    """Append the verdict's leaf; return its index. ValueError if the verdict has no RFC 8785 encoding."""
    leaf = leaf_hash(verdict_entry(verdict))
    last = db.execute("SELECT idx, frontier FROM tlog ORDER BY idx DESC LIMIT 1").fetchone()
    size = 0 if last is None else last[0] + 1
    frontier = frontier_append([] if last is None else _frontier(last[1]), size, leaf)
    db.execute(
        "INSERT INTO tlog (idx, verdict_id, leaf_sha256, frontier, root_sha256) VALUES (?, ?, ?, ?, ?)",
        [size, verdict_id, leaf.hex(), b"".join(frontier).hex(), frontier_root(frontier).hex()],
    )
    return size


def tree_size(db: Database) -> int:
    row = db.execute("SELECT max(idx) FROM tlog").fetchone()
    return 0 if row is None or row[0] is None else int(row[0]) + 1


def root_at(db: Database, size: int) -> bytes:
    if size == 0:
        return root_hash([])
    row = db.execute("SELECT root_sha256 FROM tlog WHERE idx = ?", [size - 1]).fetchone()
    if row is None:
        raise LookupError(f"the log has fewer than {size} leaves")
    return bytes.fromhex(row[0])


def leaf_hashes(db: Database, size: int) -> list[bytes]:
    return [bytes.fromhex(r[0]) for r in db.execute("SELECT leaf_sha256 FROM tlog WHERE idx < ? ORDER BY idx", [size])]


def index_of(db: Database, verdict_id: str) -> int | None:
    row = db.execute("SELECT idx FROM tlog WHERE verdict_id = ?", [verdict_id]).fetchone()
    return None if row is None else int(row[0])


def stored_checkpoint(db: Database, size: int | None = None) -> tuple[int, str] | None:
    """(size, signed note) of the stored checkpoint of ``size``, or the latest one; None if there is none."""
    if size is None:
        row = db.execute("SELECT size, note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1").fetchone()
    else:
        row = db.execute("SELECT size, note FROM tlog_checkpoints WHERE size = ?", [size]).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def sign_head(db: Database, signer: NoteSigner, now: float) -> str:
    """The signed checkpoint of the current tree head, stored (once per size). Inside a write transaction."""
    size = tree_size(db)
    have = stored_checkpoint(db, size)
    if have is not None:
        return have[1]
    root = root_at(db, size)
    note = signer.sign_checkpoint(Checkpoint(origin=signer.name, size=size, root=root))
    db.execute(
        "INSERT INTO tlog_checkpoints (size, root_sha256, note, created_at) VALUES (?, ?, ?, ?)",
        [size, root.hex(), note, now],
    )
    return note


@dataclass(frozen=True, slots=True)
class InclusionProof:
    verdict_id: str
    index: int
    size: int
    leaf: bytes
    path: tuple[bytes, ...]
    checkpoint: str | None  # the stored signed checkpoint of this size, if one was issued

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict_id": self.verdict_id,
            "log_index": self.index,
            "tree_size": self.size,
            "leaf_hash": b64(self.leaf),
            "inclusion_path": [b64(h) for h in self.path],
            "checkpoint": self.checkpoint,
        }


def inclusion(db: Database, verdict_id: str, size: int | None = None) -> InclusionProof:
    """The inclusion proof of a verdict in the tree of ``size`` leaves (default: the whole tree).

    KeyError if the verdict is not in the log; ValueError if the tree of ``size`` does not contain it."""
    index = index_of(db, verdict_id)
    if index is None:
        raise KeyError(verdict_id)
    current = tree_size(db)
    size = current if size is None else size
    if not index < size <= current:
        raise ValueError(f"size: the verdict is leaf {index}; a tree that holds it has {index + 1}..{current} leaves")
    leaves = leaf_hashes(db, size)
    checkpoint = stored_checkpoint(db, size)
    return InclusionProof(
        verdict_id=verdict_id,
        index=index,
        size=size,
        leaf=leaves[index],
        path=tuple(inclusion_proof(leaves, index)),
        checkpoint=None if checkpoint is None else checkpoint[1],
    )


def consistency(db: Database, old_size: int, new_size: int) -> dict[str, Any]:
    """The consistency proof between two sizes of the tree (JSON). ValueError unless 0 <= old <= new <= size."""
    current = tree_size(db)
    if not 0 <= old_size <= new_size <= current:
        raise ValueError(f"expected 0 <= from <= to <= {current} (the tree size), got from={old_size} to={new_size}")
    proof = consistency_proof(leaf_hashes(db, new_size), old_size)
    return {
        "from": old_size,
        "to": new_size,
        "old_root": b64(root_at(db, old_size)),
        "new_root": b64(root_at(db, new_size)),
        "consistency_path": [b64(h) for h in proof],
    }
