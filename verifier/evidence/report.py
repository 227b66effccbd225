"""The attestation report (``GET /v1/attestation/report``) in each producer's format (docs/protocol.md §3).

Formats, how each is recognised, and where its attestations are (their paths and roles):

- ``chutes``: ``attestation_type == "chutes"``; ``$.all_attestations[i]`` (role ``instance``).
- ``aci_legacy``: ``api_version`` or ``attestation.workload_keyset``; ``$`` + ``$.all_attestations[i]`` (``flat``).
- ``near_two_layer``: ``gateway_attestation`` / ``model_attestations``; ``$.gateway_attestation`` (``gateway``),
  ``$.model_attestations[i]`` (``model``).
- ``near_direct``: a top-level ``model_name`` with a quote; ``$`` + ``$.all_attestations[i]``.
- ``phala_flat``: a top-level ``intel_quote``; ``$`` + ``$.all_attestations[i]``.

Copies of one quote (a flat report repeats itself in ``all_attestations``) are kept once. Only
structure is checked here: which attestation binds what is decided from the quote bytes later.
Convenience fields such as ``report_data`` or ``request_nonce`` are never read for binding (§4).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection
from dataclasses import dataclass, fields
from typing import Any

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.json_object import check_shape, load_json, load_object
from verifier.evidence.signature import normalize_signer


class ReportFormat(enum.StrEnum):
    PHALA_FLAT = "phala_flat"
    NEAR_DIRECT = "near_direct"
    NEAR_TWO_LAYER = "near_two_layer"
    ACI_LEGACY = "aci_legacy"
    CHUTES = "chutes"


@dataclass(frozen=True, slots=True)
class Attestation:
    path: str  # where in the report, e.g. "$.model_attestations[0]"
    role: str  # "flat" | "gateway" | "model" | "instance"
    intel_quote: str  # hex (or base64 for Chutes), decoded by evidence.quote
    signing_address: str | None = None
    signing_algo: str | None = None
    model_name: str | None = None
    event_log: Any = None  # JSON text or list (both occur)
    app_compose: str | None = None  # preimage of compose_hash (info.tcb_info.app_compose)
    compose_hash: str | None = None  # info.compose_hash (a claim, checked against the quote)
    tls_cert_fingerprint: str | None = None  # selects the sha256(addr || fp) report_data layout (§4)
    nvidia_payload: Any = None  # JSON text (NRAS v3 request body) or object
    gpu_evidence: Any = None  # Chutes: list of {certificate, evidence, arch}
    instance_nonce: str | None = None  # Chutes per-instance nonce (informational until checked)
    e2e_pubkey: str | None = None  # Chutes ML-KEM key (base64), bound by report_data
    vm_config: Any = None  # dstack vm_config (JSON text or object): a claim, tied to the quote only via os_image_hash

    @property
    def algo(self) -> str:
        """``signing_algo``, or when absent the one the address's form implies (0x + 20 bytes: ecdsa; 32 bytes:
        ed25519)."""
        if self.signing_algo:
            return self.signing_algo
        address = (self.signing_address or "").strip()
        return "ed25519" if len(address) == 64 and not address.lower().startswith("0x") else "ecdsa"

    def signer(self) -> str | None:
        """This attestation's signer in canonical form, or None when absent or malformed."""
        if not self.signing_address:
            return None
        try:
            return normalize_signer(self.algo, self.signing_address)
        except EvidenceError:
            return None


@dataclass(frozen=True, slots=True)
class Report:
    format: ReportFormat
    attestations: tuple[Attestation, ...]
    signing_address: str | None = None  # the report's own top-level signer (flat / ACI legacy)
    signing_algo: str | None = None
    gpu_evidence_remote: bool = False  # ACI legacy: GPU evidence is the upstream node's, not this TD's (§3.3)


_MAX_ATTESTATIONS = 64


def parse_report(raw: bytes | str | dict[str, Any]) -> Report:
    if isinstance(raw, dict):
        check_shape(raw, "report")
        doc = raw
    else:
        doc = load_object(raw, "report")
    if doc.get("attestation_type") == "chutes":
        return _chutes(doc)
    if isinstance(doc.get("attestation_type"), str):
        raise EvidenceError(
            f"report: attestation_type {doc['attestation_type']!r:.40} is not supported (no signer to link)"
        )
    if "gateway_attestation" in doc or "model_attestations" in doc:
        return _two_layer(doc)
    aci = "api_version" in doc or isinstance(_get(doc, "attestation", "workload_keyset"), dict)
    if "intel_quote" not in doc and "quote" not in doc and not aci:
        raise EvidenceError(
            "report: no intel_quote, gateway_attestation, model_attestations or attestation_type: unknown format"
        )
    fmt = (
        ReportFormat.ACI_LEGACY if aci else ReportFormat.NEAR_DIRECT if "model_name" in doc else ReportFormat.PHALA_FLAT
    )
    entries = [_entry(doc, "$", "flat", aci=aci)]
    entries += [
        _entry(_obj(e, f"$.all_attestations[{i}]"), f"$.all_attestations[{i}]", "flat", aci=aci)
        for i, e in enumerate(_list(doc, "all_attestations"))
    ]
    return Report(
        format=fmt,
        attestations=_dedupe(entries),
        signing_address=_str(doc, "signing_address", "$"),
        signing_algo=_str(doc, "signing_algo", "$"),
        gpu_evidence_remote=aci,
    )


def _two_layer(doc: dict[str, Any]) -> Report:
    entries = []
    if doc.get("gateway_attestation") is not None:
        entries.append(
            _entry(_obj(doc["gateway_attestation"], "$.gateway_attestation"), "$.gateway_attestation", "gateway")
        )
    for i, e in enumerate(_list(doc, "model_attestations")):
        entries.append(_entry(_obj(e, f"$.model_attestations[{i}]"), f"$.model_attestations[{i}]", "model"))
    if not entries:
        raise EvidenceError("report: two-layer report without any attestation")
    return Report(format=ReportFormat.NEAR_TWO_LAYER, attestations=_dedupe(entries))


def _chutes(doc: dict[str, Any]) -> Report:
    entries = []
    for i, e in enumerate(_list(doc, "all_attestations")):
        path = f"$.all_attestations[{i}]"
        e = _obj(e, path)
        entries.append(
            Attestation(
                path=path,
                role="instance",
                intel_quote=_quote(e, path),
                instance_nonce=_ascii(e, "nonce", path),
                e2e_pubkey=_ascii(e, "e2e_pubkey", path),
                gpu_evidence=e.get("gpu_evidence"),
            )
        )
    if not entries:
        raise EvidenceError("report: Chutes report without instances ($.all_attestations is empty)")
    return Report(format=ReportFormat.CHUTES, attestations=_dedupe(entries))


def _entry(e: dict[str, Any], path: str, role: str, *, aci: bool = False) -> Attestation:
    info: dict[str, Any] = e["info"] if isinstance(e.get("info"), dict) else {}
    tcb_info = _maybe_json(info.get("tcb_info"), f"{path}.info.tcb_info")
    evidence = _get(e, "attestation", "evidence") if aci else None
    evidence = evidence if isinstance(evidence, dict) else {}
    event_log = e.get("event_log")
    if event_log in (None, ""):
        event_log = evidence.get("event_log") or (tcb_info.get("event_log") if isinstance(tcb_info, dict) else None)
    app_compose = tcb_info.get("app_compose") if isinstance(tcb_info, dict) else None
    if app_compose is None:
        app_compose = evidence.get("app_compose")
    payload = e.get("nvidia_payload")
    return Attestation(
        path=path,
        role=role,
        intel_quote=_quote(e, path),
        signing_address=_str(e, "signing_address", path),
        signing_algo=_lower(_str(e, "signing_algo", path)),
        model_name=_str(e, "model_name", path),
        event_log=event_log,
        app_compose=app_compose if isinstance(app_compose, str) else None,
        compose_hash=_str(info, "compose_hash", f"{path}.info"),
        tls_cert_fingerprint=_str(e, "tls_cert_fingerprint", path),
        nvidia_payload=payload if payload not in (None, "") else None,
        vm_config=info.get("vm_config") if info.get("vm_config") is not None else evidence.get("vm_config"),
    )


def _dedupe(entries: list[Attestation]) -> tuple[Attestation, ...]:
    if len(entries) > _MAX_ATTESTATIONS:
        raise EvidenceError(f"report: {len(entries)} attestations, expected at most {_MAX_ATTESTATIONS}")
    # only exact copies collapse (a flat report repeats itself in all_attestations): a copy with the same quote
    # but other GPU evidence or event log is evidence too, and is checked on its own
    seen: dict[str, Attestation] = {}
    for a in entries:
        content = {f.name: getattr(a, f.name) for f in fields(a) if f.name != "path"}
        content["intel_quote"] = a.intel_quote.strip().lower().removeprefix("0x")
        seen.setdefault(json.dumps(content, sort_keys=True, default=repr), a)
    return tuple(seen.values())


def select_attestations(
    report: Report,
    *,
    signing_address: str,
    signing_algo: str,
    models: Collection[str] | None,
    signature_kind: str | None = None,
) -> tuple[Attestation, ...]:
    """Every attestation for this signer and algo (and model, where the entry names one: one of ``models``, lower case).

    Several distinct quotes claiming the signer are all returned: each must bind it. A NEAR signature that
    says what signed it (``signature_kind``) must match that role: ``gateway`` the gateway attestation,
    ``provider_tee`` a model attestation (§3.6 step 4).
    """
    signer = normalize_signer(signing_algo, signing_address)
    algo = signing_algo.lower()
    roles = {"gateway": {"gateway"}, "provider_tee": {"model", "flat"}}.get(signature_kind or "")
    for_signer = [
        a for a in report.attestations if a.signer() == signer and a.algo == algo and (roles is None or a.role in roles)
    ]
    matched = [a for a in for_signer if models is None or a.model_name is None or a.model_name.lower() in models]
    if matched:
        return tuple(matched)
    if for_signer:
        names = sorted({a.model_name or "" for a in for_signer})
        raise CheckFailed(
            f"the attestation(s) for {signer} are for model {', '.join(names)}, not {sorted(models or ())}",
            reason="model_mismatch",
            details={"expected": sorted(models or ()), "got": names},
        )
    known = sorted({f"{a.signer()} ({a.algo}) at {a.path}" for a in report.attestations if a.signer()})
    raise CheckFailed(
        f"no attestation in the {report.format} report is for {signer} ({algo}); it attests: "
        f"{'; '.join(known) or 'no signer'}",
        reason="signer_not_attested",
        details={"expected": signer, "got": known},
    )


# ---------------------------------------------------------------- field access (untrusted JSON)


def _get(doc: dict[str, Any], *keys: str) -> Any:
    value: Any = doc
    for k in keys:
        value = value.get(k) if isinstance(value, dict) else None
    return value


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EvidenceError(f"report: {path}: got {type(value).__name__}, expected an object")
    return value


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise EvidenceError(f"report: $.{key}: got {type(value).__name__}, expected a list")
    return value


def _str(doc: dict[str, Any], key: str, path: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EvidenceError(f"report: {path}.{key}: got {type(value).__name__}, expected a string")
    return value


def _ascii(doc: dict[str, Any], key: str, path: str) -> str | None:
    """A Chutes binding input: hashed as ASCII exactly as written (§4 Chutes row), so printable ASCII or absent."""
    value = _str(doc, key, path)
    if value is not None and not (value.isascii() and value.isprintable()):
        raise EvidenceError(f"report: {path}.{key}: {value[:40]!r} is not printable ASCII")
    return value


def _lower(value: str | None) -> str | None:
    return value.lower() if value is not None else None


def _quote(e: dict[str, Any], path: str) -> str:
    value = e.get("intel_quote") or e.get("quote")
    if not isinstance(value, str) or not value:
        raise EvidenceError(f"report: {path}.intel_quote: missing or not a string")
    return value


def _maybe_json(value: Any, path: str) -> Any:
    """``info.tcb_info`` is an object in current reports and a JSON string in older ones (§3.1)."""
    if isinstance(value, str):
        return load_json(value, f"report: {path} (a JSON string)")
    return value
