"""Appraisal policy: a TOML file, validated once at load, identified by id and sha256 of its bytes.

Every key is declared in ``KEYS`` (type, default, meaning); the README documents each one and
``tests/test_docs.py`` fails when one is not. Unknown keys, bad hex and wrong lengths are a
``ConfigError`` naming the key and the file — at load time, never per request.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from verifier.appraise.catalog import CHECK_IDS, CHECKS
from verifier.core.errors import ConfigError
from verifier.core.model import Severity

TCB_STATUSES = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
    }
)  # "Revoked" is never allowable (dcap-qvl.md §4.2)
_NEEDS_ADVISORY_ALLOWLIST = frozenset({"SWHardeningNeeded", "ConfigurationAndSWHardeningNeeded"})


@dataclass(frozen=True, slots=True)
class Key:
    kind: str  # "str" | "int" | "bool" | "str_list" | "hex_list:<bytes>" | "table:hex_list:<bytes>" | "severity"
    default: Any
    doc: str


KEYS: dict[str, Key] = {
    "policy.id": Key("str", "unnamed", "identifier recorded in every verdict"),
    "policy.description": Key("str", "", "free text"),
    "attestation.max_attestation_age": Key(
        "int", 0, "seconds within which a verdict may cite an earlier attestation of the same signer that this verifier fetched with its own nonce and verified; 0 = always fetch a fresh report"
    ),
    "tdx.allowed_tcb_statuses": Key("str_list", ["UpToDate"], "Intel TCB statuses accepted by tdx.tcb; Revoked is never accepted"),
    "tdx.advisory_allowlist": Key(
        "str_list", None, "advisory ids tolerated; required for SWHardeningNeeded / ConfigurationAndSWHardeningNeeded (every advisory must be listed)"
    ),
    "tdx.rejected_advisories": Key("str_list", [], "advisory ids that fail tdx.tcb whatever the status"),
    "tdx.min_tcb_eval_data_number": Key("int", 0, "minimum TCB evaluation data number of the TCB info (0 = any)"),
    "tdx.max_collateral_age": Key("int", 0, "maximum age in seconds of the TCB info / QE identity issue date at the verification time (0 = no limit)"),
    "tdx.allow_debug": Key("bool", False, "accept debug TDs (never do this in production)"),
    "tdx.allowed_mrtd": Key("hex_list:48", [], "allow-list of MRTD values (empty = not checked)"),
    "tdx.allowed_rtmr0": Key("hex_list:48", [], "allow-list of RTMR0 values (empty = not checked)"),
    "tdx.allowed_rtmr1": Key("hex_list:48", [], "allow-list of RTMR1 values (empty = not checked)"),
    "tdx.allowed_rtmr2": Key("hex_list:48", [], "allow-list of RTMR2 values (empty = not checked)"),
    "tdx.allowed_mrseam": Key("hex_list:48", [], "allow-list of MRSEAM (TDX module) values (empty = not checked)"),
    "tdx.allowed_compose_hashes": Key("hex_list:32", [], "allow-list of dstack compose hashes (empty = not checked)"),
    "tdx.allowed_os_image_hashes": Key("hex_list:32", [], "allow-list of dstack OS image hashes (empty = not checked)"),
    "tdx.app_ids": Key("table:hex_list:20", {}, "per model: allow-list of dstack app ids (model name = key)"),
    "gpu.nras": Key("str", "required", "'required': NRAS must attest every GPU (gpu.nras runs); 'local': local SPDM verification only"),
    "gpu.expected_count": Key("int", 0, "number of GPUs the attestation must carry (0 = any, at least one)"),
    "gpu.allowed_hwmodels": Key("str_list", [], "allowed GPU hardware models, matched by prefix (e.g. GH100); empty = any"),
    "gpu.allowed_drivers": Key("str_list", [], "allowed driver versions (empty = any)"),
    "gpu.min_driver": Key("str", "", "minimum driver version, dotted numeric (empty = any)"),
    "gpu.allowed_vbios": Key("str_list", [], "allowed VBIOS versions (empty = any)"),
    "gpu.min_vbios": Key("str", "", "minimum VBIOS version, dotted hex (empty = any)"),
    "gpu.nras_leeway": Key("int", 60, "clock skew in seconds tolerated on NRAS token iat/nbf/exp"),
}
for _spec in CHECKS:
    KEYS[f"checks.{_spec.id}"] = Key("severity", str(_spec.default_severity), f"severity of {_spec.id}: required | advisory | off")


@dataclass(frozen=True, slots=True)
class TdxPolicy:
    allowed_tcb_statuses: frozenset[str]
    advisory_allowlist: frozenset[str] | None
    rejected_advisories: frozenset[str]
    min_tcb_eval_data_number: int | None
    max_collateral_age: int | None
    allow_debug: bool
    allowed: dict[str, frozenset[bytes]]  # "mrtd", "rtmr0", "rtmr1", "rtmr2", "mrseam", "compose_hashes", "os_image_hashes"
    app_ids: dict[str, frozenset[bytes]]


@dataclass(frozen=True, slots=True)
class GpuPolicy:
    nras_required: bool
    expected_count: int | None
    allowed_hwmodels: frozenset[str] | None
    allowed_drivers: frozenset[str] | None
    min_driver: str | None
    allowed_vbios: frozenset[str] | None
    min_vbios: str | None
    nras_leeway: int


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    sha256: str
    source: str
    severities: dict[str, Severity]
    tdx: TdxPolicy
    gpu: GpuPolicy
    max_attestation_age: int
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def severity(self, check_id: str) -> Severity:
        return self.severities[check_id]


def load_policy(path: str | Path) -> Policy:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read policy file {p}: {exc.strerror}") from None
    return parse_policy(data, source=str(p))


def default_policy() -> Policy:
    data = resources.files("verifier.policies").joinpath("default.toml").read_bytes()
    return parse_policy(data, source="default.toml")


def parse_policy(data: bytes, *, source: str) -> Policy:
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    values = _flatten(doc, source)
    v: dict[str, Any] = {name: _coerce(name, values[name], source) if name in values else key.default for name, key in KEYS.items()}

    statuses = frozenset(v["tdx.allowed_tcb_statuses"])
    for status in statuses - TCB_STATUSES:
        raise ConfigError(f"{source}: tdx.allowed_tcb_statuses: {status!r} is not an allowable Intel TCB status (allowed: {', '.join(sorted(TCB_STATUSES))})")
    if not statuses:
        raise ConfigError(f"{source}: tdx.allowed_tcb_statuses must not be empty")
    allowlist = None if v["tdx.advisory_allowlist"] is None else frozenset(v["tdx.advisory_allowlist"])
    if statuses & _NEEDS_ADVISORY_ALLOWLIST and allowlist is None:
        raise ConfigError(f"{source}: tdx.allowed_tcb_statuses includes {sorted(statuses & _NEEDS_ADVISORY_ALLOWLIST)}, which needs tdx.advisory_allowlist")
    # (issue 13) a minimum version that is not a dotted number fails here, at load, not at verification time
    for name, pattern in (("gpu.min_driver", r"\d+(\.\d+)*"), ("gpu.min_vbios", r"[0-9A-Fa-f]+(\.[0-9A-Fa-f]+)*")):
        if v[name] and not re.fullmatch(pattern, v[name].strip()):
            kind = "numeric version (e.g. 550.54.15)" if name == "gpu.min_driver" else "hex version (e.g. 96.00.74.00.1C)"
            raise ConfigError(f"{source}: {name}: got {v[name]!r}, expected a dotted {kind} or ''")
    if v["gpu.nras"] not in ("required", "local"):
        raise ConfigError(f"{source}: gpu.nras: got {v['gpu.nras']!r}, expected 'required' or 'local'")
    for name in ("attestation.max_attestation_age", "tdx.min_tcb_eval_data_number", "tdx.max_collateral_age", "gpu.expected_count", "gpu.nras_leeway"):
        if v[name] < 0:
            raise ConfigError(f"{source}: {name}: got {v[name]}, expected a number >= 0")

    severities = {check_id: Severity(v[f"checks.{check_id}"]) for check_id in CHECK_IDS}
    if v["gpu.nras"] != "required":
        severities["gpu.nras"] = Severity.OFF
    _check_foundations(severities, source)
    tdx = TdxPolicy(
        allowed_tcb_statuses=statuses,
        advisory_allowlist=allowlist,
        rejected_advisories=frozenset(v["tdx.rejected_advisories"]),
        min_tcb_eval_data_number=v["tdx.min_tcb_eval_data_number"] or None,
        max_collateral_age=v["tdx.max_collateral_age"] or None,
        allow_debug=v["tdx.allow_debug"],
        allowed={
            name: frozenset(v[f"tdx.allowed_{name}"])
            for name in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "mrseam", "compose_hashes", "os_image_hashes")
        },
        app_ids={model.lower(): frozenset(ids) for model, ids in v["tdx.app_ids"].items()},  # models compare case-insensitively
    )
    gpu = GpuPolicy(
        nras_required=v["gpu.nras"] == "required",
        expected_count=v["gpu.expected_count"] or None,
        allowed_hwmodels=frozenset(v["gpu.allowed_hwmodels"]) or None,
        allowed_drivers=frozenset(v["gpu.allowed_drivers"]) or None,
        min_driver=v["gpu.min_driver"] or None,
        allowed_vbios=frozenset(v["gpu.allowed_vbios"]) or None,
        min_vbios=v["gpu.min_vbios"] or None,
        nras_leeway=v["gpu.nras_leeway"],
    )
    return Policy(
        id=v["policy.id"],
        sha256=hashlib.sha256(data).hexdigest(),
        source=source,
        severities=severities,
        tdx=tdx,
        gpu=gpu,
        max_attestation_age=v["attestation.max_attestation_age"],
        description=v["policy.description"],
        raw=doc,
    )


# A binding read from evidence nobody verified proves nothing: a check may only decide the verdict when the
# check that verifies its evidence does too (else a forged quote with the right report_data would pass).
FOUNDATIONS: dict[str, str] = {
    "request.hash": "signature.valid",
    "response.hash": "signature.valid",
    **{cid: "tdx.quote" for cid in ("tdx.tcb", "tdx.binds_signer", "tdx.binds_nonce", "tdx.event_log", "tdx.app",
                                    "tdx.measurements", "tdx.debug")},
    "gpu.nonce": "gpu.evidence",  # the SPDM nonce is inside the transcript gpu.evidence verifies
}


def _check_foundations(severities: dict[str, Severity], source: str) -> None:
    for check_id, foundation in FOUNDATIONS.items():
        if severities[check_id] is Severity.REQUIRED and severities[foundation] is not Severity.REQUIRED:
            raise ConfigError(
                f"{source}: checks.{check_id} is required but checks.{foundation} is {severities[foundation]}: "
                f"{check_id} judges evidence that only {foundation} verifies; make {foundation} required or {check_id} advisory/off"
            )


def _flatten(doc: dict[str, Any], source: str) -> dict[str, Any]:
    """Two levels: [section] key = value; `checks` keys contain dots and must be quoted."""
    out: dict[str, Any] = {}
    for section, body in doc.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: top-level key {section!r} must be a [section]; sections: {sorted({k.split('.')[0] for k in KEYS})}")
        for key, value in body.items():
            name = f"{section}.{key}"
            if name not in KEYS:
                raise ConfigError(f"{source}: unknown key {name!r}")
            out[name] = value
    return out


def _hex_bytes(name: str, value: Any, size: int, source: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {name}: got {type(value).__name__}, expected a hex string of {size} bytes")
    text = value.lower().removeprefix("0x")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{source}: {name}: {value!r} is not hex") from None
    if len(raw) != size:
        raise ConfigError(f"{source}: {name}: got {len(raw)} bytes, expected {size}")
    return raw


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = KEYS[name].kind
    scalar: dict[str, Callable[[Any], bool]] = {
        "str": lambda x: isinstance(x, str),
        "int": lambda x: isinstance(x, int) and not isinstance(x, bool),
        "bool": lambda x: isinstance(x, bool),
    }
    if kind in scalar:
        if not scalar[kind](value):
            raise ConfigError(f"{source}: {name}: got {value!r}, expected {kind}")
        return value
    if kind == "severity":
        if value not in {s.value for s in Severity}:
            raise ConfigError(f"{source}: {name}: got {value!r}, expected required | advisory | off")
        return value
    if kind == "str_list":
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise ConfigError(f"{source}: {name}: expected a list of strings")
        return value
    if kind.startswith("hex_list:"):
        size = int(kind.split(":")[1])
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {name}: expected a list of hex strings")
        return [_hex_bytes(name, x, size, source) for x in value]
    if kind.startswith("table:hex_list:"):
        size = int(kind.split(":")[2])
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {name}: expected a table of model = [hex, ...]")
        return {
            model: _coerce_list(f"{name}.{model}", ids, size, source) for model, ids in value.items()
        }
    raise AssertionError(f"unknown key kind {kind}")


def _coerce_list(name: str, value: Any, size: int, source: str) -> list[bytes]:
    if not isinstance(value, list):
        raise ConfigError(f"{source}: {name}: expected a list of hex strings")
    return [_hex_bytes(name, x, size, source) for x in value]
