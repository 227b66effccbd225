"""Intel TDX collateral: the QuoteCollateralV3 JSON handed to dcap-qvl, where it comes from, and its facts.

Three sources, in the order the evaluation tries them: the bundle (``collateral_from_bundle``), the
local cache (``verifier.adapters.collateral_cache``), Intel PCS / a PCCS (``verifier.adapters.pcs``, docs/dcap.md
§1.5). None of them is trusted: dcap-qvl
verifies signatures, chains, CRLs and validity on every use. The parsed facts here (issue dates,
evaluation data number, sha256) only serve caching, policy (max age) and the verdict's record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from verifier.core.errors import EvidenceError
from verifier.evidence.json_object import check_shape

Source = Literal["bundle", "cache", "pcs"]
FIELDS = (
    "pck_crl_issuer_chain",
    "root_ca_crl",
    "pck_crl",
    "tcb_info_issuer_chain",
    "tcb_info",
    "tcb_info_signature",
    "qe_identity_issuer_chain",
    "qe_identity",
    "qe_identity_signature",
)  # docs/dcap.md §1.1
_HEX_FIELDS = ("root_ca_crl", "pck_crl", "tcb_info_signature", "qe_identity_signature")


@dataclass(frozen=True, slots=True)
class Collateral:
    """One QuoteCollateralV3 document (``json_text`` exactly as handed to dcap-qvl) and facts read from it."""

    json_text: str
    fmspc: str  # upper-case hex, from tcbInfo.fmspc
    source: Source
    sha256: str  # of json_text (UTF-8)
    tcb_id: str  # tcbInfo.id: "TDX" | "SGX"
    tcb_type: int
    tcb_eval_data_number: int
    tcb_info_issue_date: int  # unix seconds
    tcb_info_next_update: int
    qe_identity_issue_date: int
    qe_identity_next_update: int

    @classmethod
    def parse(cls, json_text: str, *, source: Source) -> Collateral:
        """EvidenceError naming the field when the text is not QuoteCollateralV3 JSON with dated TCB info / QE
        identity."""
        try:
            doc = json.loads(json_text)
        except (ValueError, RecursionError) as exc:
            raise EvidenceError(f"collateral is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise EvidenceError(f"collateral: expected a JSON object, got {type(doc).__name__}")
        check_shape(doc, "collateral")
        for name in FIELDS:
            if not isinstance(doc.get(name), str):
                got = "missing" if name not in doc else type(doc[name]).__name__
                raise EvidenceError(f"collateral: field {name!r} is {got}, expected a string")
        for name in _HEX_FIELDS:
            try:
                bytes.fromhex(doc[name])
            except ValueError as exc:
                raise EvidenceError(f"collateral: field {name!r} is not hex: {exc}") from exc
        tcb, qe = _inner(doc, "tcb_info"), _inner(doc, "qe_identity")
        fmspc = tcb.get("fmspc")
        if not isinstance(fmspc, str) or len(fmspc) != 12 or not is_hex(fmspc):
            raise EvidenceError(f"collateral: tcb_info.fmspc is {fmspc!r}, expected 12 hex characters")
        return cls(
            json_text=json_text,
            fmspc=fmspc.upper(),
            source=source,
            sha256=hashlib.sha256(json_text.encode()).hexdigest(),
            tcb_id=_field(tcb, "tcb_info", "id", str),
            tcb_type=_field(tcb, "tcb_info", "tcbType", int),
            tcb_eval_data_number=_field(tcb, "tcb_info", "tcbEvaluationDataNumber", int),
            tcb_info_issue_date=_date(tcb, "tcb_info", "issueDate"),
            tcb_info_next_update=_date(tcb, "tcb_info", "nextUpdate"),
            qe_identity_issue_date=_date(qe, "qe_identity", "issueDate"),
            qe_identity_next_update=_date(qe, "qe_identity", "nextUpdate"),
        )

    @property
    def issued_at(self) -> int:
        return max(self.tcb_info_issue_date, self.qe_identity_issue_date)

    @property
    def next_update(self) -> int:
        return min(self.tcb_info_next_update, self.qe_identity_next_update)

    def valid_at(self, now: int) -> bool:
        """TCB info and QE identity both issued by ``now`` and not yet due for update (CRLs are dcap-qvl's to judge)."""
        return self.issued_at <= now < self.next_update

    def to_record(self) -> dict[str, Any]:
        """For the verdict: identity of the collateral used; dates are unix seconds (int)."""
        return {
            "fmspc": self.fmspc,
            "source": self.source,
            "sha256": self.sha256,
            "tcb_id": self.tcb_id,
            "tcb_type": self.tcb_type,
            "tcb_eval_data_number": self.tcb_eval_data_number,
            "tcb_info_issue_date": self.tcb_info_issue_date,
            "tcb_info_next_update": self.tcb_info_next_update,
            "qe_identity_issue_date": self.qe_identity_issue_date,
            "qe_identity_next_update": self.qe_identity_next_update,
        }


def is_hex(s: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in s)


def _inner(doc: dict[str, Any], name: str) -> dict[str, Any]:
    try:
        inner = json.loads(doc[name])
    except (ValueError, RecursionError) as exc:
        raise EvidenceError(f"collateral: {name} is not JSON: {exc}") from exc
    if not isinstance(inner, dict):
        raise EvidenceError(f"collateral: {name} is a JSON {type(inner).__name__}, expected an object")
    check_shape(inner, f"collateral: {name}")
    return inner


def _field(obj: dict[str, Any], where: str, key: str, kind: type) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise EvidenceError(f"collateral: {where}.{key} is {value!r}, expected {kind.__name__}")
    return value


def _date(obj: dict[str, Any], where: str, key: str) -> int:
    text = _field(obj, where, key, str)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise EvidenceError(f"collateral: {where}.{key} {text!r} is not an ISO 8601 date: {exc}") from exc
    if parsed.tzinfo is None:
        raise EvidenceError(f"collateral: {where}.{key} {text!r} has no time zone, expected UTC (…Z)")
    return int(parsed.timestamp())


def parse_bundle_file(data: bytes) -> Collateral:
    """One bundle collateral file; EvidenceError (or UnicodeDecodeError) when it is not QuoteCollateralV3 JSON."""
    return Collateral.parse(data.decode("utf-8"), source="bundle")


def collateral_from_bundle(
    files: dict[str, bytes], *, fmspc: str, parse: Callable[[bytes], Collateral] = parse_bundle_file
) -> Collateral | None:
    """The bundle's collateral for ``fmspc`` (most recently issued if several), None if there is none.

    Files that do not parse are skipped; if no file matches and some did not parse, EvidenceError
    names them (the collateral for this platform may be the broken one). ``parse``: how a file's bytes become a
    ``Collateral`` (``parse_bundle_file``, or one that remembers results by the bytes' digest).
    """
    want = fmspc.upper()
    found: list[Collateral] = []
    broken: list[str] = []
    for name in sorted(files):
        if not name.endswith(".json"):
            continue
        try:
            c = parse(files[name])
        except (UnicodeDecodeError, EvidenceError) as exc:
            broken.append(f"{name}: {exc}")
            continue
        if c.fmspc == want:
            found.append(c)
    if found:
        return max(found, key=lambda c: c.issued_at)
    if broken:
        raise EvidenceError(f"no collateral for FMSPC {want} in the bundle; unparsable: {'; '.join(broken)}")
    return None
