"""The identity a dstack CVM measured into RTMR3 while it booted: app-id, compose-hash, instance-id, key provider, ...

dstack's guest (``Dstack-TEE/dstack:dstack/dstack-util/src/system_setup.rs``, ``measure_app_info`` / ``setup_fs``)
emits, before any app code runs: ``system-preparing``, ``app-id``, ``compose-hash``, zero or more
``init-script-hash``, ``gpu-policy-hash`` and ``gpu-attestation`` (newer guests), ``instance-id``, ``boot-mr-done``,
``mr-kms`` and ``os-image-hash`` (KMS key provider; up to v0.5.11 and from v0.5.1 respectively), ``key-provider``,
``storage-fs`` (from v0.5.5), then ``system-ready``. The app starts after ``system-ready`` and may extend RTMR3 with
events of its own, under any name. dstack's own verifier reads identity events only before ``system-ready``
(``dstack-attest/src/attestation.rs``, ``find_event``).

Rules (each failure has its own reason code):
- every imr-3 entry is a dstack runtime event (``event_log_rtmr3_not_runtime``), so every digest is recomputed;
- the log has a ``system-ready`` (``event_log_no_system_ready``): without it, no event can be told from the app's;
- dstack's identity events occur at most once before it (``event_log_duplicate_boot_event``), and app-id,
  compose-hash, instance-id and key-provider, which every dstack version with system-ready emits, are present
  (``event_log_missing_boot_event``);
- ``gpu-policy-hash`` and ``gpu-attestation`` occur at most once (``gpu_boot_event_duplicate``), the first directly
  after ``compose-hash`` and its ``init-script-hash`` events, the second directly after the first
  (``gpu_boot_event_out_of_order``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.gpu_boot import GpuBootAttestation, parse_gpu_attestation
from verifier.evidence.tdx_event_log import RUNTIME_IMR, Event, not_runtime

SYSTEM_READY = "system-ready"
REQUIRED_EVENTS = ("app-id", "compose-hash", "instance-id", "key-provider")
ONCE_EVENTS = (*REQUIRED_EVENTS, "system-preparing", "boot-mr-done", "mr-kms", "os-image-hash", "storage-fs")
GPU_POLICY_HASH = "gpu-policy-hash"
GPU_ATTESTATION = "gpu-attestation"
_INIT_SCRIPT_HASH = "init-script-hash"


@dataclass(frozen=True, slots=True)
class BootEvent:
    name: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class KeyProvider:
    """The ``key-provider`` payload: ``{"name": "kms" | "local-sgx" | "tpm" | "none", "id": hex or ""}``."""

    name: str
    id: str


@dataclass(frozen=True, slots=True)
class DstackIdentity:
    app_id: bytes
    compose_hash: bytes  # 32 bytes
    instance_id: bytes  # empty when the app compose sets no_instance_id
    key_provider: KeyProvider
    os_image_hash: bytes | None  # measured by the KMS key-provider path of dstack >= 0.5.1 only
    gpu_policy_hash: bytes | None  # 32 bytes; newer dstack guests only
    gpu_boot: GpuBootAttestation | None  # only when GPUs passed the guest's boot-time attestation
    boot_events: tuple[BootEvent, ...]  # every RTMR3 event before system-ready, in order

    def payloads(self, name: str) -> tuple[bytes, ...]:
        """The payloads of every boot event called ``name``, in order (e.g. ``init-script-hash``, ``mr-kms``)."""
        return tuple(e.payload for e in self.boot_events if e.name == name)


def boot_events(events: Sequence[Event]) -> tuple[BootEvent, ...]:
    """RTMR3's events before the first ``system-ready``, once every imr-3 entry is known to be a runtime event."""
    boot: list[BootEvent] | None = None
    found: list[BootEvent] = []
    for i, ev in enumerate(events):
        if ev.imr != RUNTIME_IMR:
            continue
        if not ev.is_runtime:
            raise not_runtime(ev, i)
        if boot is None and ev.event == SYSTEM_READY:
            boot = list(found)
        found.append(BootEvent(ev.event, ev.payload))
    if boot is None:
        raise CheckFailed(
            "the RTMR3 log has no system-ready event: dstack's boot events cannot be told from the app's",
            reason="event_log_no_system_ready",
            details={"expected": SYSTEM_READY, "got": [e.name for e in found][:32]},
        )
    return tuple(boot)


def _check_counts(names: list[str]) -> None:
    for name in (*ONCE_EVENTS, GPU_POLICY_HASH, GPU_ATTESTATION):
        n = names.count(name)
        if n > 1:
            gpu = name in (GPU_POLICY_HASH, GPU_ATTESTATION)
            raise CheckFailed(
                f"RTMR3 event {name!r} occurs {n} times before system-ready (dstack emits it once)",
                reason="gpu_boot_event_duplicate" if gpu else "event_log_duplicate_boot_event",
                details={"event": name, "expected": 1, "got": n},
            )
    missing = [name for name in REQUIRED_EVENTS if name not in names]
    if missing:
        raise CheckFailed(
            f"RTMR3 has no {', '.join(missing)} event before system-ready",
            reason="event_log_missing_boot_event",
            details={"expected": list(REQUIRED_EVENTS), "got": [n for n in names if n in REQUIRED_EVENTS]},
        )


def _out_of_order(name: str, after: str, names: list[str]) -> CheckFailed:
    return CheckFailed(
        f"RTMR3 event {name!r} does not directly follow {after} (dstack's boot order)",
        reason="gpu_boot_event_out_of_order",
        details={"event": name, "expected": after, "got": names},
    )


def _check_gpu_order(names: list[str]) -> None:
    if GPU_POLICY_HASH in names:
        j = names.index(GPU_POLICY_HASH) - 1
        while j >= 0 and names[j] == _INIT_SCRIPT_HASH:
            j -= 1
        if j < 0 or names[j] != "compose-hash":
            raise _out_of_order(GPU_POLICY_HASH, "compose-hash (and its init-script-hash events)", names)
    if GPU_ATTESTATION in names:
        k = names.index(GPU_ATTESTATION)
        if k == 0 or names[k - 1] != GPU_POLICY_HASH:
            raise _out_of_order(GPU_ATTESTATION, GPU_POLICY_HASH, names)


def _key_provider(payload: bytes) -> KeyProvider:
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        raise EvidenceError("key-provider: payload is not UTF-8 JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"name", "id"}:
        raise EvidenceError("key-provider: expected a JSON object with exactly name and id")
    name, ident = doc["name"], doc["id"]
    if not isinstance(name, str) or not isinstance(ident, str):
        raise EvidenceError("key-provider: name and id must be strings")
    return KeyProvider(name=name, id=ident)


def _sized(name: str, payload: bytes, size: int) -> bytes:
    if len(payload) != size:
        raise EvidenceError(f"RTMR3 {name} payload is {len(payload)} bytes (expected {size})")
    return payload


def dstack_identity(events: Sequence[Event]) -> DstackIdentity:
    """dstack's boot identity from the event log, under the rules above; CheckFailed or EvidenceError otherwise.

    The caller still has to bind the log to the quote (``check_replay``): these rules say which events count,
    the replay says the events are the measured ones.
    """
    boot = boot_events(events)
    names = [e.name for e in boot]
    _check_counts(names)
    _check_gpu_order(names)
    first = {e.name: e.payload for e in reversed(boot)}  # each name's first occurrence
    gpu, policy = first.get(GPU_ATTESTATION), first.get(GPU_POLICY_HASH)
    return DstackIdentity(
        app_id=first["app-id"],
        compose_hash=_sized("compose-hash", first["compose-hash"], 32),
        instance_id=first["instance-id"],
        key_provider=_key_provider(first["key-provider"]),
        os_image_hash=first.get("os-image-hash"),
        gpu_policy_hash=None if policy is None else _sized(GPU_POLICY_HASH, policy, 32),
        gpu_boot=None if gpu is None else parse_gpu_attestation(gpu),
        boot_events=boot,
    )
