"""The ledger opens in Datasette as it is, with the shipped metadata: descriptions, default facets, sort."""

from __future__ import annotations

import json
from pathlib import Path

from datasette.app import Datasette

from verifier.adapters.ledger import Ledger
from verifier.adapters.ledger.schema import APPEND_ONLY_TABLES

METADATA = Path(__file__).parent.parent / "docs" / "datasette-metadata.json"


def _ledger(path: Path) -> None:
    with Ledger.open(path) as ledger:
        for status, model in (("pass", "m-1"), ("pass", "m-2"), ("fail", "m-1")):
            ledger.save(
                {
                    "id": None,
                    "status": status,
                    "subject": {"model": model, "gateway": "https://gw.example"},
                    "trust_profile": "simulator",
                    "checks": [
                        {
                            "id": "tdx.quote",
                            "status": status,
                            "severity": "required",
                            "reason": None if status == "pass" else "debug_td",
                            "message": "m",
                        }
                    ],
                },
                {"report.json": b'{"x": 1}'},
            )


def test_the_metadata_describes_every_ledger_table_and_column() -> None:
    tables = json.loads(METADATA.read_text())["databases"]["verifier"]["tables"]
    assert set(APPEND_ONLY_TABLES) <= set(tables)
    assert all(tables[t].get("description") for t in tables)


async def test_datasette_reads_the_verdicts_table_with_its_default_facets(tmp_path: Path) -> None:
    db = tmp_path / "verifier.db"
    _ledger(db)
    ds = Datasette([str(db)], metadata=json.loads(METADATA.read_text()))
    await ds.invoke_startup()
    resp = await ds.client.get("/verifier/verdicts.json?_shape=objects&_extra=facet_results")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [r["status"] for r in body["rows"]] == ["fail", "pass", "pass"]  # sort_desc id: newest first
    facets = body["facet_results"]
    facets = facets.get("results", facets)
    status = {f["value"]: f["count"] for f in facets["status"]["results"]}
    assert status == {"pass": 2, "fail": 1}
    checks = await ds.client.get("/verifier/checks.json?_shape=objects&reason=debug_td")
    assert [r["check_id"] for r in checks.json()["rows"]] == ["tdx.quote"]
    page = await ds.client.get("/verifier/verdicts")
    assert "Append-only" in page.text or "append-only" in page.text
