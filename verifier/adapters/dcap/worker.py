"""The dcap-qvl worker: the only module of the project that imports ``dcap_qvl``.

Run as ``python -m verifier.adapters.dcap.worker`` by ``verifier.adapters.dcap.pool.DcapPool``. One JSON object per
line in on stdin, one per line out on stdout (docs/dcap.md §2):

* on start:  ``{"hello": true, "dcap_qvl": "<version>"}``
* request:   ``{"id": int, "quote": hex, "collateral": QuoteCollateralV3 JSON text, "now": int, "root_ca": hex DER}``
* answer:    ``{"id", "ok": true, "status", "advisory_ids", "tcb_eval_data_number", "tcb_date", "claims"}``
  or ``{"id", "ok": false, "error": <dcap-qvl's full text>}``; a line that is not a valid request gets
  ``"error": "bad request: ..."`` and anything else unexpected ``"error": "worker error: ..."``.

Process isolation keeps a Rust panic or segfault out of the service (§0.4).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import OrderedDict
from typing import IO, Any

import dcap_qvl

_CACHE_SIZE = 32  # parsed collateral per worker: one entry per (FMSPC, fetch) in practice


class _BadRequest(Exception):
    pass


class _Collateral:
    """A parsed QuoteCollateralV3 plus the TCB-info evaluation number (fallback for the claims)."""

    def __init__(self, text: str) -> None:
        self.obj = dcap_qvl.QuoteCollateralV3.from_json(text)  # ValueError on a bad shape (§1.1)
        try:
            number = json.loads(self.obj.tcb_info).get("tcbEvaluationDataNumber")
        except (ValueError, AttributeError):
            number = None
        self.eval_number = number if isinstance(number, int) and not isinstance(number, bool) else None


class _Cache:
    """LRU of parsed collateral keyed by sha256 of its JSON text (parsing costs ~0.1 ms, §2)."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[bytes, _Collateral] = OrderedDict()

    def get(self, text: str) -> _Collateral:
        key = hashlib.sha256(text.encode()).digest()
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = _Collateral(text)
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return item


def _field(req: dict[str, Any], name: str, kind: type) -> Any:
    value = req.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _BadRequest(f"{name!r} must be {kind.__name__}")
    return value


def _hex(req: dict[str, Any], name: str) -> bytes:
    try:
        return bytes.fromhex(_field(req, name, str))
    except ValueError:
        raise _BadRequest(f"{name!r} is not hex") from None


def _claims(quote: bytes, coll: _Collateral, root_ca: bytes, now: int) -> dict[str, Any]:
    """QuoteClaims JSON (§1.2); only for the record, so a failure here yields {}."""
    try:
        policy = dcap_qvl.QuotePolicy.claims_only(now)
        claims = json.loads(dcap_qvl.QuoteVerifier(root_ca).verify_with_policy(quote, coll.obj, now, policy).to_json())
    except Exception:
        return {}
    return claims if isinstance(claims, dict) else {}


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def verify(req: dict[str, Any], cache: _Cache) -> dict[str, Any]:
    quote, root_ca = _hex(req, "quote"), _hex(req, "root_ca")
    text, now = _field(req, "collateral", str), _field(req, "now", int)
    if not 0 <= now < 2**64:
        raise _BadRequest("'now' is out of range")  # dcap-qvl takes a u64 (§1.1)
    try:
        coll = cache.get(text)
        report = dcap_qvl.verify_with_root_ca(quote, coll.obj, root_ca, now)  # the decision
    except ValueError as exc:
        return {"ok": False, "error": str(exc)}
    claims = _claims(quote, coll, root_ca, now)
    number = _dig(claims, "tcb", "eval_data_number")
    tcb_date = _dig(claims, "platform", "tcb_level", "tcbDate")
    return {
        "ok": True,
        "status": report.status,
        "advisory_ids": list(report.advisory_ids),
        "tcb_eval_data_number": number if isinstance(number, int) else coll.eval_number,
        "tcb_date": tcb_date if isinstance(tcb_date, str) else None,
        "claims": claims,
    }


def handle(line: bytes, cache: _Cache) -> dict[str, Any]:
    """One request line -> one answer object; never raises."""
    req_id: Any = None
    try:
        req = json.loads(line)
        if not isinstance(req, dict):
            raise _BadRequest("not a JSON object")
        req_id = _field(req, "id", int)
        return {"id": req_id, **verify(req, cache)}
    except (_BadRequest, ValueError) as exc:  # ValueError here: JSON / UTF-8 decoding of the line
        return {"id": req_id, "ok": False, "error": f"bad request: {exc}"}
    except BaseException as exc:  # a pyo3 PanicException derives from BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return {"id": req_id, "ok": False, "error": f"worker error: {type(exc).__name__}: {exc}"}


def _send(out: IO[bytes], obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
    out.flush()


def main() -> None:
    # Answers go to a private copy of fd 1; fd 1 itself now points at stderr so that nothing
    # else printing to stdout can corrupt the line protocol.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    cache = _Cache()
    _send(out, {"hello": True, "dcap_qvl": dcap_qvl.__version__})
    for line in sys.stdin.buffer:
        if line.strip():
            _send(out, handle(line, cache))
    out.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: the extension has crashed at exit before (§0.4)


if __name__ == "__main__":
    main()
