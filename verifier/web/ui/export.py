"""The dashboard's exports: a list as CSV or JSON, streamed page by page (each page read on the recorder's reader
threads by the caller's ``fetch``), so an export of any size holds one page in memory."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

Row = dict[str, Any]
Fetch = Callable[[str | None], Awaitable[tuple[list[Row], str | None]]]  # cursor → (rows, next cursor or None)


async def stream(request: web.Request, fmt: str, name: str, columns: Sequence[str], fetch: Fetch) -> web.StreamResponse:
    """``{"items": [...]}`` or a CSV with a header line, of every row ``fetch`` pages through. The first page is read
    before the answer starts, so an error there (a ledger edited outside the verifier) is an error status, not a 200
    cut short."""
    rows, cursor = await fetch(None)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8" if fmt == "csv" else "application/json",
            "Content-Disposition": f'attachment; filename="{name}.{fmt}"',
        }
    )
    await response.prepare(request)
    first = True
    if fmt == "json":
        await response.write(b'{"items": [')
    while True:
        await response.write(encode(rows, fmt, columns, header=first))
        first = False
        if cursor is None:
            break
        rows, cursor = await fetch(cursor)
    if fmt == "json":
        await response.write(b"]}\n")
    await response.write_eof()
    return response


def encode(rows: list[Row], fmt: str, columns: Sequence[str], *, header: bool) -> bytes:
    rows = [{k: row.get(k) for k in columns} for row in rows]
    if fmt == "json":
        text = ", ".join(json.dumps(row, sort_keys=True) for row in rows)
        return ((", " if not header and rows else "") + text).encode()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\r\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: cell(v) for k, v in row.items()})
    return out.getvalue().encode()


def cell(value: Any) -> Any:
    """A CSV cell: a list joined, an object as ``key: value, …``; text a spreadsheet would run as a formula is
    quoted as text (CSV injection)."""
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
