"""The dashboard on a big ledger: p95 per page (list, each single-facet filter, overview) against a full scan.

Run: ``.venv/bin/python benchmarks/bench_dashboard.py [--verdicts 1000000] [--dir DIR] [--requests 20]``.

1. ``verifier demo --serve``'s recording (``serving_demo``): real simulator verdicts (passes and failures) with
   their real evidence blobs, saved through ``Ledger.save``.
2. Synthetic verdicts up to ``--verdicts``: copies of those real rows (the whole verdict JSON with a new id, its
   checks, its evidence manifest pointing at the *same* evidence rows, so dedup is exercised) with ids in time
   order over 30 days, 5 models, 3 gateways, 50 signers. They are bulk-inserted with SQL (not ``Ledger.save``),
   so their hash-chain column is not a valid chain: a benchmark ledger, not a real one.
3. The service (authentication off, loopback) answers each page ``--requests`` times over HTTP; the same run
   measures a full table scan (``SELECT count(*), sum(length(verdict_json)) FROM verdicts``).

Prints a Markdown table, and the ledger's bytes per verdict (amortized: file size / verdicts).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from verifier.adapters.ledger.rows import encode_id
from verifier.demo import serving_demo, simulator_settings
from verifier.web import create_app

MODELS = [f"bench/model-{i}" for i in range(5)]
GATEWAYS = [f"https://gw{i}.bench.example" for i in range(3)]
SIGNERS = [f"0x{i:040x}" for i in range(1, 51)]


def _templates(db: sqlite3.Connection) -> list[tuple[dict[str, Any], list[tuple[Any, ...]], list[tuple[str, str]]]]:
    db.row_factory = sqlite3.Row
    out = []
    for row in db.execute("SELECT * FROM verdicts ORDER BY id"):
        verdict = dict(row)
        checks = [tuple(r)[1:] for r in db.execute("SELECT * FROM checks WHERE verdict_id = ?", [verdict["id"]])]
        files = [
            (r[0], r[1])
            for r in db.execute("SELECT name, sha256 FROM verdict_evidence WHERE verdict_id = ?", [verdict["id"]])
        ]
        out.append((verdict, checks, files))
    db.row_factory = None
    return out


def fill(path: Path, total: int, *, seed: int = 7) -> int:
    """Bulk-insert synthetic verdicts (copies of the real ones) until the ledger holds ``total``."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    templates = _templates(db)
    have = db.execute("SELECT count(*) FROM verdicts").fetchone()[0]
    rng = random.Random(seed)  # noqa: S311 - synthetic benchmark data, not secrets
    start = time.time() - 30 * 86400
    step = 30 * 86400 / max(total, 1)
    columns = list(templates[0][0])
    insert = f"INSERT INTO verdicts ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
    batch = 5000
    for first in range(have, total, batch):
        db.execute("BEGIN")
        verdicts, checks, files = [], [], []
        for i in range(first, min(first + batch, total)):
            template, tchecks, tfiles = rng.choices(
                templates, weights=[8 if t[0]["status"] == "pass" else 1 for t in templates]
            )[0]
            created = start + i * step
            new_id = encode_id((int(created * 1000) << 80) | rng.getrandbits(80))
            row = dict(template)
            row.update(
                id=new_id,
                created_at=created,
                verified_at=int(created),
                model=rng.choice(MODELS),
                gateway=rng.choice(GATEWAYS),
                signer=rng.choice(SIGNERS),
                supersedes=None,
                verdict_json=template["verdict_json"].replace(template["id"], new_id),
            )
            verdicts.append([row[c] for c in columns])
            checks += [(new_id, *c) for c in tchecks]
            files += [(new_id, name, sha) for name, sha in tfiles]
        db.executemany(insert, verdicts)
        db.executemany("INSERT INTO checks VALUES (?, ?, ?, ?, ?, ?)", checks)
        db.executemany("INSERT INTO verdict_evidence VALUES (?, ?, ?)", files)
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("ANALYZE")
    db.close()
    return total


def full_scan(path: Path) -> float:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    t0 = time.perf_counter()
    db.execute("SELECT count(*), sum(length(verdict_json)) FROM verdicts").fetchone()
    elapsed = time.perf_counter() - t0
    db.close()
    return elapsed


async def pages(path: Path, requests: int) -> list[tuple[str, float, float]]:
    app = create_app(simulator_settings(path, "http://127.0.0.1:9", auth=False, dcap_workers=1))
    urls = {
        "list": "/ui/verifications",
        "overview": "/ui/",
        "signers": "/ui/signers",
        "status=fail": "/ui/verifications?status=fail",
        f"model={MODELS[1]}": f"/ui/verifications?model={MODELS[1]}",
        f"gateway={GATEWAYS[2]}": f"/ui/verifications?gateway={GATEWAYS[2]}",
        f"signer={SIGNERS[7]}": f"/ui/verifications?signer={SIGNERS[7]}",
        "trust_profile=simulator": "/ui/verifications?trust_profile=simulator",
        "reason=nonce_mismatch": "/ui/verifications?reason=nonce_mismatch",
        "check=tdx.binds_nonce": "/ui/verifications?check=tdx.binds_nonce",
        "since (last 24 h)": "/ui/verifications?since="
        + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400)),
    }
    out = []
    async with TestClient(TestServer(app)) as client:
        for name, url in urls.items():
            assert (await client.get(url)).status == 200, url
            times = []
            for _ in range(requests):
                t0 = time.perf_counter()
                resp = await client.get(url)
                await resp.read()
                times.append(time.perf_counter() - t0)
            times.sort()
            out.append((name, statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]))
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--verdicts", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None, help="Reuse (or build) the ledger DIR/verifier.db.")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "verifier.db"
    if not path.exists():
        async with serving_demo(db_dir=path.parent, passes=2):
            pass
    t0 = time.perf_counter()
    fill(path, args.verdicts)
    build = time.perf_counter() - t0
    size = path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(path.name + "-*"))
    scan = full_scan(path)
    rows = await pages(path, args.requests)
    print(
        f"{args.verdicts:,} verdicts in {path} (filled in {build:.0f} s); "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}"
    )
    print(
        f"ledger {size / 1e9:.2f} GB = {size / args.verdicts / 1024:.1f} KiB per verdict (amortized); "
        f"full table scan {scan * 1e3:.0f} ms\n"
    )
    print("| page | median ms | p95 ms | p95 / full scan |")
    print("|---|---:|---:|---:|")
    for name, median, p95 in rows:
        print(f"| {name} | {median * 1e3:.1f} | {p95 * 1e3:.1f} | {p95 / scan:.3f} |")


if __name__ == "__main__":
    asyncio.run(main())
