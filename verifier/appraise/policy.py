"""Appraisal policy: a TOML file, validated once at load, identified by id and sha256 of its bytes.

Every key is declared in ``KEYS`` (type, default, meaning); the README documents each one and
``tests/test_docs.py`` fails when one is not. Unknown keys, bad hex and wrong lengths are a
``ConfigError`` naming the key and the file — at load time, never per request.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from verifier.appraise.catalog import CHECK_IDS, CHECKS
from verifier.appraise.policy_values import coerce, show, too_deep
from verifier.appraise.registry import REGISTRY
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
)  # "Revoked" is never allowable (docs/dcap.md §4.2)
_NEEDS_ADVISORY_ALLOWLIST = frozenset({"SWHardeningNeeded", "ConfigurationAndSWHardeningNeeded"})
MAX_POLICY_BYTES = 1024 * 1024
# The version forms appraise.gpu compares by dotted component: decimal for drivers, hex for VBIOS (docs/gpu.md §3)
_VERSIONS = {
    "gpu.min_driver": (re.compile(r"[0-9]+(?:\.[0-9]+)*", re.ASCII), "dotted decimal", "570.172.08"),
    "gpu.min_vbios": (re.compile(r"[0-9A-Fa-f]+(?:\.[0-9A-Fa-f]+)*", re.ASCII), "dotted hex", "96.00.D0.00.03"),
}


@dataclass(frozen=True, slots=True)
class Key:
    kind: str  # "str" | "int" | "bool" | "str_list" | "hex_list:<bytes>" | "table:hex_list:<bytes>" | "severity"
    default: Any
    doc: str


KEYS: dict[str, Key] = {
    "policy.id": Key("str", "unnamed", "identifier recorded in every verdict"),
    "policy.description": Key("str", "", "free text"),
    "models": Key(
        "table:str_list", {}, 'model aliases: "requested name" = ["other names the gateway may sign or attest for it"]'
    ),
    "identity.require_pinned": Key(
        "bool",
        True,
        "a pass requires a pinned app identity AND a pinned boot chain for the model (false: an explicitly "
        "insecure policy that accepts any software on genuine hardware)",
    ),
    "attestation.allow_gateway_hop": Key(
        "bool",
        True,
        "a response signed by an attested NEAR gateway may pass when a model attestation for the requested "
        "model in the same report verifies with its GPUs (the gateway's measured code vouches for the hop)",
    ),
    "attestation.max_attestations": Key("int", 16, "most attestations a report may carry (more: malformed_evidence)"),
    "gpu.max_per_attestation": Key("int", 8, "most GPUs one attestation may carry (more: malformed_evidence)"),
    "attestation.max_attestation_age": Key(
        "int",
        0,
        "seconds within which a verdict may cite an earlier attestation of the same signer that this verifier fetched "
        "with its own nonce and verified; 0 = always fetch a fresh report",
    ),
    "tdx.allowed_tcb_statuses": Key(
        "str_list", ["UpToDate"], "Intel TCB statuses accepted by tdx.tcb; Revoked is never accepted"
    ),
    "tdx.advisory_allowlist": Key(
        "str_list",
        None,
        "advisory ids tolerated; required for SWHardeningNeeded / ConfigurationAndSWHardeningNeeded (every advisory "
        "must be listed)",
    ),
    "tdx.rejected_advisories": Key("str_list", [], "advisory ids that fail tdx.tcb whatever the status"),
    "tdx.min_tcb_eval_data_number": Key("int", 0, "minimum TCB evaluation data number of the TCB info (0 = any)"),
    "tdx.max_collateral_age": Key(
        "int",
        0,
        "maximum age in seconds of the TCB info / QE identity issue date at the verification time (0 = no limit)",
    ),
    "tdx.allow_debug": Key("bool", False, "accept debug TDs (never do this in production)"),
    "tdx.allowed_mrtd": Key("hex_list:48", [], "allow-list of MRTD values (empty = not checked)"),
    "tdx.allowed_rtmr0": Key("hex_list:48", [], "allow-list of RTMR0 values (empty = not checked)"),
    "tdx.allowed_rtmr1": Key("hex_list:48", [], "allow-list of RTMR1 values (empty = not checked)"),
    "tdx.allowed_rtmr2": Key("hex_list:48", [], "allow-list of RTMR2 values (empty = not checked)"),
    "tdx.allowed_mrseam": Key("hex_list:48", [], "allow-list of MRSEAM (TDX module) values (empty = not checked)"),
    "tdx.allowed_compose_hashes": Key("hex_list:32", [], "allow-list of dstack compose hashes (empty = not checked)"),
    "tdx.allowed_os_image_hashes": Key("hex_list:32", [], "allow-list of dstack OS image hashes (empty = not checked)"),
    "tdx.app_ids": Key("table:hex_list:20", {}, "per model: allow-list of dstack app ids (model name = key)"),
    "gpu.nras": Key(
        "str",
        "required",
        "'required': NRAS must attest every GPU (gpu.nras runs); 'local': local SPDM verification only",
    ),
    "gpu.expected_count": Key("int", 0, "number of GPUs the attestation must carry (0 = any, at least one)"),
    "gpu.allowed_hwmodels": Key(
        "str_list", [], "allowed GPU hardware models, matched by prefix (e.g. GH100); empty = any"
    ),
    "gpu.allowed_drivers": Key("str_list", [], "allowed driver versions (empty = any)"),
    "gpu.min_driver": Key("str", "", "minimum driver version, dotted numeric (empty = any)"),
    "gpu.allowed_vbios": Key("str_list", [], "allowed VBIOS versions (empty = any)"),
    "gpu.min_vbios": Key("str", "", "minimum VBIOS version, dotted hex (empty = any)"),
    "gpu.nras_leeway": Key("int", 60, "clock skew in seconds tolerated on NRAS token iat/nbf/exp"),
    "tls.request_fingerprint": Key(
        "str_list",
        ["include_tls_fingerprint=true"],
        "report query parameters asking for the TLS-fingerprint report_data layout, sent to https gateways only: "
        "'include_tls_fingerprint=true' (NEAR), 'version=2' (Phala vllm-proxy, private-ai-gateway legacy alias); "
        "empty = never ask",
    ),
    "tls.require_binding": Key(
        "bool",
        False,
        "a pass requires tls.binds_peer: the attested TLS key is the live peer's of the connection that served the "
        'completion (false: tls.binds_peer is advisory, reported only); same as checks."tls.binds_peer" = '
        '"required"',
    ),
}
TLS_REQUEST_PARAMS = ("include_tls_fingerprint=true", "version=2")
for _spec in CHECKS:
    KEYS[f"checks.{_spec.id}"] = Key(
        "severity", str(_spec.default_severity), f"severity of {_spec.id}: required | advisory | off"
    )


@dataclass(frozen=True, slots=True)
class TdxPolicy:
    allowed_tcb_statuses: frozenset[str]
    advisory_allowlist: frozenset[str] | None
    rejected_advisories: frozenset[str]
    min_tcb_eval_data_number: int | None
    max_collateral_age: int | None
    allow_debug: bool
    allowed: dict[
        str, frozenset[bytes]
    ]  # "mrtd", "rtmr0", "rtmr1", "rtmr2", "mrseam", "compose_hashes", "os_image_hashes"
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
class TlsPolicy:
    request_params: tuple[tuple[str, str], ...] = (("include_tls_fingerprint", "true"),)  # sent with the report
    require_binding: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    sha256: str
    source: str
    severities: dict[str, Severity]
    tdx: TdxPolicy
    gpu: GpuPolicy
    max_attestation_age: int
    aliases: dict[str, frozenset[str]] = field(default_factory=dict)  # lower-case name -> its alias group
    require_pinned: bool = True
    allow_gateway_hop: bool = True
    max_attestations: int = 16
    max_gpus_per_attestation: int = 8
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    tls: TlsPolicy = field(default_factory=TlsPolicy)

    def severity(self, check_id: str) -> Severity:
        return self.severities[check_id]

    def names_for(self, model: str) -> frozenset[str]:
        """The model and every name configured as the same model (lower case)."""
        name = model.lower()
        return self.aliases.get(name, frozenset()) | {name}


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
    if len(data) > MAX_POLICY_BYTES:
        raise ConfigError(f"{source}: {len(data)} bytes, a policy file is at most {MAX_POLICY_BYTES}")
    try:
        text = data.decode("utf-8")
        doc = tomllib.loads(text)
    except RecursionError:
        raise ConfigError(f"{source}: not valid TOML: {too_deep(text)} nests too deeply for the TOML parser") from None
    except ValueError as exc:  # TOMLDecodeError, UnicodeDecodeError, and tomllib's int() over 4300 digits
        raise ConfigError(f"{source}: not valid TOML: {str(exc)[:200]}") from None
    values = _flatten(doc, source)
    v: dict[str, Any] = {
        name: coerce(key.kind, name, values[name], source) if name in values else key.default
        for name, key in KEYS.items()
    }

    statuses = frozenset(v["tdx.allowed_tcb_statuses"])
    for status in statuses - TCB_STATUSES:
        raise ConfigError(
            f"{source}: tdx.allowed_tcb_statuses: {status!r} is not an allowable Intel TCB status (allowed: "
            f"{', '.join(sorted(TCB_STATUSES))})"
        )
    if not statuses:
        raise ConfigError(f"{source}: tdx.allowed_tcb_statuses must not be empty")
    allowlist = None if v["tdx.advisory_allowlist"] is None else frozenset(v["tdx.advisory_allowlist"])
    if statuses & _NEEDS_ADVISORY_ALLOWLIST and allowlist is None:
        raise ConfigError(
            f"{source}: tdx.allowed_tcb_statuses includes {sorted(statuses & _NEEDS_ADVISORY_ALLOWLIST)}, which needs "
            f"tdx.advisory_allowlist"
        )
    if v["gpu.nras"] not in ("required", "local"):
        raise ConfigError(f"{source}: gpu.nras: got {v['gpu.nras']!r}, expected 'required' or 'local'")
    for name in ("attestation.max_attestations", "gpu.max_per_attestation"):
        if v[name] < 1:
            raise ConfigError(f"{source}: {name}: got {v[name]}, expected a number >= 1")
    for name in (
        "attestation.max_attestation_age",
        "tdx.min_tcb_eval_data_number",
        "tdx.max_collateral_age",
        "gpu.expected_count",
        "gpu.nras_leeway",
    ):
        if v[name] < 0:
            raise ConfigError(f"{source}: {name}: got {v[name]}, expected a number >= 0")
    for name, (pattern, form, example) in _VERSIONS.items():
        if v[name] and not pattern.fullmatch(v[name]):
            raise ConfigError(f"{source}: {name}: got {show(v[name])}, expected a {form} version (e.g. {example})")

    severities = {check_id: Severity(v[f"checks.{check_id}"]) for check_id in CHECK_IDS}
    if v["gpu.nras"] != "required":
        severities["gpu.nras"] = Severity.OFF
    tls = _tls_policy(v, severities, "checks.tls.binds_peer" in values, source)
    _check_foundations(severities, source)
    if v["identity.require_pinned"]:
        weak = [c for c in ("tdx.app", "tdx.measurements") if severities[c] is not Severity.REQUIRED]
        if weak:
            raise ConfigError(
                f"{source}: identity.require_pinned is true but checks.{weak[0]} is "
                f"{severities[weak[0]]}: the pins are judged by tdx.app and tdx.measurements; keep them "
                "required, or set identity.require_pinned = false (an explicitly insecure policy)"
            )
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
        app_ids=_app_id_table(v["tdx.app_ids"], source),  # models compare case-insensitively
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
        aliases=_alias_groups(v["models"], source),
        require_pinned=v["identity.require_pinned"],
        allow_gateway_hop=v["attestation.allow_gateway_hop"],
        max_attestations=v["attestation.max_attestations"],
        max_gpus_per_attestation=v["gpu.max_per_attestation"],
        description=v["policy.description"],
        raw=doc,
        tls=tls,
    )


def _tls_policy(v: dict[str, Any], severities: dict[str, Severity], explicit: bool, source: str) -> TlsPolicy:
    """``tls.require_binding`` makes tls.binds_peer required (a severity set otherwise in the same file is a
    contradiction); a required tls.binds_peer needs the report to be asked for the TLS-fingerprint layout."""
    unknown = [p for p in v["tls.request_fingerprint"] if p not in TLS_REQUEST_PARAMS]
    if unknown:
        raise ConfigError(
            f"{source}: tls.request_fingerprint: {show(unknown[0])} is not one of {', '.join(TLS_REQUEST_PARAMS)}"
        )
    params = tuple((k, val) for k, _, val in (p.partition("=") for p in dict.fromkeys(v["tls.request_fingerprint"])))
    if v["tls.require_binding"]:
        if explicit and severities["tls.binds_peer"] is not Severity.REQUIRED:
            raise ConfigError(
                f"{source}: tls.require_binding is true but checks.tls.binds_peer is {severities['tls.binds_peer']}"
            )
        severities["tls.binds_peer"] = Severity.REQUIRED
    if severities["tls.binds_peer"] is Severity.REQUIRED and not params:
        raise ConfigError(
            f"{source}: tls.binds_peer is required but tls.request_fingerprint is empty: no report would be asked for "
            "the TLS-fingerprint layout"
        )
    return TlsPolicy(request_params=params, require_binding=severities["tls.binds_peer"] is Severity.REQUIRED)


def _check_foundations(severities: dict[str, Severity], source: str) -> None:
    """A binding read from evidence nobody verified proves nothing: a check may only decide the verdict when every
    check it rests on does too (else, e.g., a forged quote with the right report_data would pass). From the registry."""
    for spec in REGISTRY.values():
        if severities[spec.id] is not Severity.REQUIRED:
            continue
        for foundation in spec.foundations:
            if severities[foundation] is not Severity.REQUIRED:
                raise ConfigError(
                    f"{source}: checks.{spec.id} is required but checks.{foundation} is {severities[foundation]}: "
                    f"{spec.id} judges evidence that only {foundation} establishes; make {foundation} required or "
                    f"{spec.id} advisory/off"
                )


def _alias_groups(table: dict[str, list[str]], source: str) -> dict[str, frozenset[str]]:
    """Each configured name maps to its group (the key and its aliases), case-insensitively. One name belongs to one
    group only, and "*" is no model name (in refs it means every model): anything ambiguous is refused."""
    groups: dict[str, frozenset[str]] = {}
    for model, aliases in table.items():
        group = frozenset({model.lower(), *(x.lower() for x in aliases)})
        for name in group:
            if name == "*":
                raise ConfigError(f"{source}: models.{model}: '*' is not a model name")
            if name in groups:
                raise ConfigError(
                    f"{source}: models.{model}: {name!r} is already a name of another model "
                    "(one name, one model; names compare case-insensitively)"
                )
        groups.update(dict.fromkeys(group, group))
    return groups


def _app_id_table(table: dict[str, list[bytes]], source: str) -> dict[str, frozenset[bytes]]:
    out: dict[str, frozenset[bytes]] = {}
    for model, ids in table.items():
        if model.lower() in out or model == "*":
            raise ConfigError(
                f"{source}: tdx.app_ids.{model}: "
                + ("'*' is not a model name" if model == "*" else "listed twice (names compare case-insensitively)")
            )
        out[model.lower()] = frozenset(ids)
    return out


def _flatten(doc: dict[str, Any], source: str) -> dict[str, Any]:
    """Two levels: [section] key = value; `checks` keys contain dots and must be quoted."""
    out: dict[str, Any] = {}
    for section, body in doc.items():
        if section == "models":  # one table-valued key: model names contain dots and slashes
            out["models"] = body
            continue
        if not isinstance(body, dict):
            raise ConfigError(
                f"{source}: top-level key {section!r} must be a [section]; sections: "
                f"{sorted({k.split('.')[0] for k in KEYS})}"
            )
        for key, value in body.items():
            name = f"{section}.{key}"
            if name not in KEYS:
                raise ConfigError(f"{source}: unknown key {name!r}")
            out[name] = value
    return out
