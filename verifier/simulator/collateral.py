"""Signed TDX collateral: TCB info (id TDX, v3) and QE identity (TD_QE, v2) → QuoteCollateralV3 JSON.

Mirrors ``fixtures/tdx/dcap-qvl-samples/tdx_quote_collateral.json`` (docs/dcap.md §1.1 for the JSON
form, §4.3 for the pieces). Each body is serialised once, compactly, and signed as those exact
bytes by the TCB Signing key (ECDSA P-256 / SHA-256, signature = raw r‖s in hex) — what dcap-qvl
checks (§1.3). Both issuer chains are "TCB Signing, Root" PEM; the PCK CRL issuer chain is
"Platform CA, Root"; CRLs travel as hex DER.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifier.simulator.pki import IntelPki, from_unix
from verifier.simulator.platform import Platform

ROOT_CRL_VALIDITY = 365 * 86400
_ADVISORIES_OLD = ["INTEL-SA-00106", "INTEL-SA-00115", "INTEL-SA-00135", "INTEL-SA-00203", "INTEL-SA-00220"]


def iso(t: int) -> str:
    """Intel's timestamp form: ``2025-06-19T10:16:03Z``."""
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tcb_info(
    p: Platform, *, issue: int, next_update: int, status: str = "UpToDate", advisory_ids: tuple[str, ...] = ()
) -> dict[str, Any]:
    """TDX TCB info v3: tdxModule, tdxModuleIdentities (TDX_01, TDX_03), two tcbLevels (current, 2018 OutOfDate)."""
    comp: list[dict[str, Any]] = [{"svn": s} for s in p.level_sgx_components]
    comp[0] |= {"category": "BIOS", "type": "Early Microcode Update"}
    comp[1] |= {"category": "OS/VMM", "type": "SGX Late Microcode Update"}
    comp[2] |= {"category": "OS/VMM", "type": "TXT SINIT"}
    comp[3] |= {"category": "BIOS"}
    comp[4] |= {"category": "BIOS"}
    comp[5] |= {"category": "BIOS"}
    comp[7] |= {"category": "OS/VMM", "type": "SEAMLDR ACM"}
    tdx: list[dict[str, Any]] = [{"svn": s} for s in p.level_tdx_components]
    tdx[0] |= {"category": "OS/VMM", "type": "TDX Module"}
    tdx[1] |= {"category": "OS/VMM", "type": "TDX Module"}
    tdx[2] |= {"category": "OS/VMM", "type": "TDX Late Microcode Update"}
    zeros48 = p.mr_signer_seam.hex().upper()
    module = {"mrsigner": zeros48, "attributes": p.seam_attributes.hex().upper(), "attributesMask": "FFFFFFFFFFFFFFFF"}

    def level(tcb: dict[str, Any], date: str, st: str, adv: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"tcb": tcb, "tcbDate": date, "tcbStatus": st}
        if adv:
            out["advisoryIDs"] = adv
        return out

    def module_identity(ident: str, isvsvn: int) -> dict[str, Any]:
        return {"id": ident, **module, "tcbLevels": [level({"isvsvn": isvsvn}, p.tcb_date, "UpToDate", [])]}

    current = {"sgxtcbcomponents": comp, "pcesvn": p.level_pce_svn, "tdxtcbcomponents": tdx}
    old = {"sgxtcbcomponents": comp, "pcesvn": 5, "tdxtcbcomponents": tdx}
    identities = [module_identity("TDX_03", 3), module_identity(p.tdx_module_id, p.level_tdx_module_isvsvn)]
    if p.tdx_module_id == "TDX_03":
        identities = identities[:1]
    return {
        "id": "TDX",
        "version": 3,
        "issueDate": iso(issue),
        "nextUpdate": iso(next_update),
        "fmspc": p.fmspc.hex().upper(),
        "pceId": p.pce_id.hex().upper(),
        "tcbType": 0,
        "tcbEvaluationDataNumber": p.tcb_evaluation_data_number,
        "tdxModule": module,
        "tdxModuleIdentities": identities,
        "tcbLevels": [
            level(current, p.tcb_date, status, list(advisory_ids)),
            level(old, "2018-01-04T00:00:00Z", "OutOfDate", _ADVISORIES_OLD),
        ],
    }


def qe_identity(p: Platform, *, issue: int, next_update: int) -> dict[str, Any]:
    """TD_QE identity v2; the attributes mask ignores only the DEBUG-adjacent bit 0x04, like Intel's."""
    return {
        "id": "TD_QE",
        "version": 2,
        "issueDate": iso(issue),
        "nextUpdate": iso(next_update),
        "tcbEvaluationDataNumber": p.tcb_evaluation_data_number,
        "miscselect": f"{p.qe_miscselect:08X}",
        "miscselectMask": "FFFFFFFF",
        "attributes": "11000000000000000000000000000000",
        "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
        "mrsigner": p.qe_mrsigner.hex().upper(),
        "isvprodid": p.qe_isvprodid,
        "tcbLevels": [{"tcb": {"isvsvn": p.level_qe_isvsvn}, "tcbDate": p.tcb_date, "tcbStatus": "UpToDate"}],
    }


def sign_json(key: ec.EllipticCurvePrivateKey, body: dict[str, Any]) -> tuple[str, str]:
    """(exact JSON text, hex r‖s ECDSA-P256-SHA256 signature over those bytes)."""
    text = json.dumps(body, separators=(",", ":"))
    der = key.sign(text.encode(), ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return text, (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()


def collateral_json(
    pki: IntelPki,
    p: Platform,
    *,
    issue: int,
    next_update: int,
    status: str = "UpToDate",
    advisory_ids: tuple[str, ...] = (),
    revoke_pck: bool = False,
) -> str:
    """QuoteCollateralV3 JSON text (``dcap_qvl.QuoteCollateralV3.from_json``).

    TCB info, QE identity and PCK CRL share ``issue``..``next_update`` (Intel: 30 days); the root CA
    CRL runs a year from ``issue`` as Intel's does, so a stale bundle fails on "TCBInfo expired".
    """
    tcb_text, tcb_sig = sign_json(
        pki.tcb_signing_key, tcb_info(p, issue=issue, next_update=next_update, status=status, advisory_ids=advisory_ids)
    )
    qe_text, qe_sig = sign_json(pki.tcb_signing_key, qe_identity(p, issue=issue, next_update=next_update))
    this_upd, next_upd = from_unix(issue), from_unix(next_update)
    root_next = from_unix(max(next_update, issue + ROOT_CRL_VALIDITY))
    out = {
        "pck_crl_issuer_chain": pki.pck_crl_issuer_chain_pem,
        "root_ca_crl": pki.root_ca_crl(this_upd, root_next).hex(),
        "pck_crl": pki.pck_crl(this_upd, next_upd, revoke_pck=revoke_pck).hex(),
        "tcb_info_issuer_chain": pki.tcb_issuer_chain_pem,
        "tcb_info": tcb_text,
        "tcb_info_signature": tcb_sig,
        "qe_identity_issuer_chain": pki.tcb_issuer_chain_pem,
        "qe_identity": qe_text,
        "qe_identity_signature": qe_sig,
    }
    return json.dumps(out)
