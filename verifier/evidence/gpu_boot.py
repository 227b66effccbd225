"""dstack's GPU boot attestation: the RTMR3 ``gpu-attestation`` payload, the ``gpu-policy-hash`` and their checks.

Newer dstack guests (``Dstack-TEE/dstack:dstack/dstack-util/src/system_setup.rs``, ``measure_gpu`` / module ``gpu``;
``docs/security/security-model.md``, "Dual Attestation") measure, right after ``compose-hash`` (and any
``init-script-hash``), ``gpu-policy-hash`` = SHA-256 of the RFC 8785 (JCS) form of the app compose's
``requirements.gpu_policy`` (``{}`` when absent; ``dstack-types/src/lib.rs``, ``gpu_policy_hash``). When GPUs are
attached and attestation is on, the guest runs NVIDIA's ``nvattest`` on them, checks CC mode and DevTools through
NVML, applies the policy, sets the GPUs ready, and only then measures ``gpu-attestation``: UTF-8 JSON
``{"version": 2, "provider": "nvidia", "devices": n, "cc_mode": "on", "devtools": bool, "evidence_sha256": hex}``,
where ``evidence_sha256`` is SHA-256 of the complete nvattest output. It is a boot-time statement, not a lifetime one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

import rfc8785

from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate

GPU_ATTESTATION_VERSION = 2  # the only payload version dstack has shipped in its guest code
_KEYS = frozenset({"version", "provider", "devices", "cc_mode", "devtools", "evidence_sha256"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}", re.ASCII)
_U32_MAX = 0xFFFFFFFF
DEFAULT_POLICY_HASH = hashlib.sha256(b"{}").digest()  # what dstack measures when the compose sets no GPU policy
_RELAXING = ("allow_devtools", "allow_debug", "allow_insecure_boot")


@dataclass(frozen=True, slots=True)
class GpuBootAttestation:
    """The parsed ``gpu-attestation`` boot event: what dstack's guest checked before it released the app keys."""

    version: int
    provider: str
    devices: int
    cc_mode: str
    devtools: bool
    evidence_sha256: bytes  # SHA-256 of the nvattest JSON output the guest appraised


@dataclass(frozen=True, slots=True)
class GpuPolicy:
    """``requirements.gpu_policy`` (``dstack-types/src/lib.rs``, ``GpuPolicy``; defaults = ``{}``).

    The guest always checks CC mode, DevTools off, measurement success, secure boot and debug off; the ``allow_*``
    keys waive the last three checks and ``attest_gpu: false`` skips attestation. The gpu-attestation payload does not
    say which were waived (it carries no secboot/dbgstat): only this measured policy does. ``rego`` only adds checks.
    """

    attest_gpu: bool = True
    allow_devtools: bool = False
    allow_debug: bool = False
    allow_insecure_boot: bool = False
    rego: str | None = None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise EvidenceError("gpu-attestation: a key occurs twice")
    return dict(pairs)


def parse_gpu_attestation(payload: bytes) -> GpuBootAttestation:
    """The ``gpu-attestation`` payload, strictly: exactly dstack's keys and types, else EvidenceError."""
    try:
        doc = json.loads(payload.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise EvidenceError("gpu-attestation: payload is not UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise EvidenceError(f"gpu-attestation: expected a JSON object, got {type(doc).__name__}")
    if set(doc) != _KEYS:
        raise EvidenceError(f"gpu-attestation: keys {sorted(doc)}, expected {sorted(_KEYS)}")
    version, provider, devices = doc["version"], doc["provider"], doc["devices"]
    if type(version) is not int or version != GPU_ATTESTATION_VERSION:
        raise EvidenceError(f"gpu-attestation: unsupported version {str(version)[:20]!r}")
    if provider != "nvidia":
        raise EvidenceError(f"gpu-attestation: unknown provider {str(provider)[:20]!r}")
    if type(devices) is not int or not 0 <= devices <= _U32_MAX:
        raise EvidenceError(f"gpu-attestation: devices must be an unsigned integer, got {str(devices)[:20]!r}")
    if not isinstance(doc["cc_mode"], str):
        raise EvidenceError("gpu-attestation: cc_mode must be a string")
    if type(doc["devtools"]) is not bool:
        raise EvidenceError("gpu-attestation: devtools must be true or false")
    evidence = doc["evidence_sha256"]
    if not isinstance(evidence, str) or not _SHA256_HEX.fullmatch(evidence):
        raise EvidenceError("gpu-attestation: evidence_sha256 must be 64 lowercase hex characters")
    return GpuBootAttestation(
        version=version,
        provider=provider,
        devices=devices,
        cc_mode=doc["cc_mode"],
        devtools=doc["devtools"],
        evidence_sha256=bytes.fromhex(evidence),
    )


def _policy_value(app_compose: str) -> Any:
    """The JSON value at ``/requirements/gpu_policy`` of the app compose document, ``{}`` when absent."""
    try:
        doc = json.loads(app_compose)
    except (ValueError, RecursionError):
        raise EvidenceError("app_compose: not valid JSON, so it has no GPU policy to hash") from None
    requirements = doc.get("requirements") if isinstance(doc, dict) else None
    return requirements["gpu_policy"] if isinstance(requirements, dict) and "gpu_policy" in requirements else {}


def gpu_policy_hash(app_compose: str) -> bytes:
    """SHA-256(JCS(app_compose.requirements.gpu_policy)), ``{}`` when absent, as dstack measures it.

    dstack reads the value at JSON pointer ``/requirements/gpu_policy`` of the app compose document (the exact
    text whose SHA-256 is the compose hash). EvidenceError if the document is not JSON or the value has no JCS form.
    """
    try:
        canonical = rfc8785.dumps(_policy_value(app_compose))
    except (rfc8785.CanonicalizationError, UnicodeError, RecursionError) as e:
        raise EvidenceError(f"app_compose: requirements.gpu_policy has no JCS form ({str(e)[:60]})") from None
    return hashlib.sha256(canonical).digest()


def parse_gpu_policy(app_compose: str) -> GpuPolicy:
    """The app compose's GPU policy, as strictly as dstack reads it (unknown keys refused): else EvidenceError."""
    value = _policy_value(app_compose)
    if not isinstance(value, dict) or not set(value) <= {"attest_gpu", "rego", *_RELAXING}:
        raise EvidenceError("app_compose: requirements.gpu_policy is not a dstack GPU policy object")
    flags = {k: value.get(k, k == "attest_gpu") for k in ("attest_gpu", *_RELAXING)}
    if not all(type(v) is bool for v in flags.values()):
        raise EvidenceError("app_compose: requirements.gpu_policy flags must be true or false")
    rego = value.get("rego")
    if rego is not None and not isinstance(rego, str):
        raise EvidenceError("app_compose: requirements.gpu_policy.rego must be a string")
    return GpuPolicy(rego=rego, **flags)


def check_gpu_policy_hash(measured: bytes, app_compose: str) -> None:
    """The RTMR3 ``gpu-policy-hash`` equals the hash of the app compose's GPU policy. CheckFailed otherwise."""
    expected = gpu_policy_hash(app_compose)
    if not hmac.compare_digest(expected, measured):
        raise CheckFailed(
            "RTMR3 gpu-policy-hash differs from SHA-256(JCS(app_compose requirements.gpu_policy))",
            reason="gpu_policy_hash_mismatch",
            details={"expected": expected.hex(), "got": measured.hex()},
        )


def check_gpu_boot(gpu: GpuBootAttestation | None, *, expected_devices: int | None) -> GpuBootAttestation:
    """Appraise the boot-time GPU attestation: present, ``devices`` = ``expected_devices`` (> 0 when not given),
    ``cc_mode`` "on", DevTools off. Returns it; CheckFailed with one reason per rule otherwise."""
    if gpu is None:
        raise CheckFailed(
            "the event log has no gpu-attestation before system-ready: no GPU passed dstack's boot-time attestation",
            reason="gpu_boot_attestation_missing",
            details={"expected": expected_devices},
        )
    if gpu.devices == 0 or (expected_devices is not None and gpu.devices != expected_devices):
        raise CheckFailed(
            f"gpu-attestation covers {gpu.devices} GPUs, expected {expected_devices or 'at least 1'}",
            reason="gpu_boot_devices_mismatch",
            details={"expected": expected_devices, "got": gpu.devices},
        )
    if gpu.cc_mode != "on":
        raise CheckFailed(
            f"gpu-attestation cc_mode is {gpu.cc_mode!r}, not 'on'",
            reason="gpu_boot_cc_mode_off",
            details={"expected": "on", "got": gpu.cc_mode},
        )
    if gpu.devtools:
        raise CheckFailed(
            "gpu-attestation says NVIDIA DevTools mode was on: GPU memory is not confidential",
            reason="gpu_boot_devtools_on",
            details={"expected": False, "got": True},
        )
    return gpu


def check_gpu_boot_policy(measured: bytes, app_compose: str | None) -> GpuPolicy:
    """The GPU policy the boot measured (``gpu-policy-hash``) waives none of dstack's GPU checks.

    With app_compose: its policy must hash to ``measured`` and set no ``allow_*`` key nor ``attest_gpu: false``
    (CheckFailed ``gpu_boot_policy_relaxed``). Without it, only the default policy's hash is known:
    any other hash is Indeterminate (``gpu_boot_policy_unknown``).
    """
    if app_compose is not None:
        check_gpu_policy_hash(measured, app_compose)
        policy = parse_gpu_policy(app_compose)
    elif hmac.compare_digest(measured, DEFAULT_POLICY_HASH):
        policy = GpuPolicy()
    else:
        raise Indeterminate(
            "the boot measured a non-default GPU policy and no app_compose shows which checks it waives",
            reason="gpu_boot_policy_unknown",
            details={"got": measured.hex(), "expected": DEFAULT_POLICY_HASH.hex()},
        )
    relaxed = [k for k in _RELAXING if getattr(policy, k)] + ([] if policy.attest_gpu else ["attest_gpu=false"])
    if relaxed:
        raise CheckFailed(
            f"the measured GPU policy waives dstack's GPU checks: {', '.join(relaxed)}",
            reason="gpu_boot_policy_relaxed",
            details={"got": relaxed, "expected": []},
        )
    return policy
