"""``verifier ledger check``, the transparency log part: recompute the Merkle tree from the verdicts and compare.

Leaf ``i`` must be the RFC 9162 leaf hash of the i-th verdict (id order) as stored; every row's frontier and root
must be the recomputed ones; every stored checkpoint must name a size the log reached, the recomputed root at that
size, and (given the log's key) carry a valid signature. Editing, deleting, inserting or reordering a verdict
changes a leaf, so it is reported even when the log's own rows were rewritten to match: the latest signed
checkpoint then no longer matches the recomputed tree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlite_utils import Database

from verifier.core.checkpoint import CheckpointError, NoteVerifier, open_note, parse_checkpoint
from verifier.core.merkle import frontier_append, frontier_root, leaf_hash, root_hash, verdict_entry


@dataclass(slots=True)
class TlogReport:
    size: int = 0
    checkpoint_size: int | None = None
    problems: list[str] = field(default_factory=list)


def _unsigned_text(note: str) -> str:
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("not a signed note")
    return note[: split + 1]


def check_tlog(db: Database, log_key: NoteVerifier | None) -> TlogReport:
    report = TlogReport()
    tables = set(db.table_names())
    if not {"tlog", "tlog_checkpoints"} <= tables:
        report.problems.append(
            "transparency log: no tlog tables (a ledger older than migration 0005, opened read-only)"
        )
        return report
    rows = {
        idx: (vid, leaf, frontier, root)
        for idx, vid, leaf, frontier, root in db.execute(
            "SELECT idx, verdict_id, leaf_sha256, frontier, root_sha256 FROM tlog"
        )
    }
    roots = [root_hash([])]
    frontier: list[bytes] = []
    for i, (vid, verdict_json) in enumerate(db.execute("SELECT id, verdict_json FROM verdicts ORDER BY id").fetchall()):
        try:
            leaf = leaf_hash(verdict_entry(json.loads(verdict_json)))
        except ValueError:
            leaf = leaf_hash(verdict_json.encode())  # reported with the verdict (not JSON); keeps the tree going
        frontier = frontier_append(frontier, i, leaf)
        roots.append(frontier_root(frontier))
        row = rows.pop(i, None)
        if row is None:
            report.problems.append(f"transparency log: leaf {i} (verdict {vid}) is missing")
        elif row[0] != vid:
            report.problems.append(
                f"transparency log: leaf {i} is verdict {row[0]}, expected {vid} (reordered or removed)"
            )
        elif row[1] != leaf.hex():
            report.problems.append(f"transparency log: leaf {i} does not hash verdict {vid} as stored (it was edited)")
        elif row[2] != b"".join(frontier).hex() or row[3] != roots[-1].hex():
            report.problems.append(f"transparency log: leaf {i}: its stored frontier or root is not the recomputed one")
    report.size = len(roots) - 1
    for idx in sorted(rows):
        report.problems.append(f"transparency log: leaf {idx} (verdict {rows[idx][0]}) has no verdict at that position")
    _check_checkpoints(db, roots, log_key, report)
    return report


def _check_checkpoints(db: Database, roots: list[bytes], log_key: NoteVerifier | None, report: TlogReport) -> None:
    for size, root_hex, note in db.execute("SELECT size, root_sha256, note FROM tlog_checkpoints ORDER BY size"):
        try:
            text = open_note(note, log_key) if log_key is not None else _unsigned_text(note)
            checkpoint = parse_checkpoint(text)
        except CheckpointError as exc:
            report.problems.append(f"checkpoint of size {size}: {exc}")
            continue
        report.checkpoint_size = size
        if checkpoint.size != size or checkpoint.root.hex() != root_hex:
            report.problems.append(f"checkpoint of size {size}: its note says size {checkpoint.size}, another root")
        elif size >= len(roots):
            report.problems.append(
                f"checkpoint of size {size}: the log has only {len(roots) - 1} verdicts "
                "(verdicts it covered were removed)"
            )
        elif roots[size] != checkpoint.root:
            report.problems.append(
                f"checkpoint of size {size}: its signed root is not the recomputed root "
                "(a verdict it covers was edited, removed or reordered)"
            )
