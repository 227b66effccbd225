"""A dstack-style CVM identity: event log (RTMR0-3), app_compose, compose hash, mr_config_id, ``info``.

Mirrors ``info.tcb_info`` of the Phala reports in ``fixtures/redpill/attestation/``: entries
``{imr, event_type, digest, event, event_payload}``; RTMR0-2 hold firmware/boot events (TCG EFI types,
payload-free digests seeded per OS image); RTMR3 holds dstack's runtime events (type 0x08000001) in the order
``Dstack-TEE/dstack:dstack/dstack-util/src/system_setup.rs`` emits them: system-preparing, app-id, compose-hash,
[gpu-policy-hash, gpu-attestation], instance-id, boot-mr-done, mr-kms, os-image-hash, key-provider, storage-fs,
system-ready, then whatever the app emits. Digests: V1 SHA384(le32(0x08000001) || ":" || name || ":" || payload)
or V2 SHA384(JCS({"name","payload","type"})). RTMR[i] = fold SHA384(mr || digest) from 48 zero bytes;
compose_hash = SHA256(app_compose); mr_config_id = 0x01 || compose_hash || 15 zeros.

``CvmOptions`` turns on dstack's GPU boot events and builds the event-log attacks in ``ATTACKS``. Every attack is
the attacker's *consistent* log: the RTMRs (and so the quote) are replayed from the tampered log, so only the
event-log rules can catch it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import serialization

from verifier.simulator import keys

RUNTIME_EVENT_TYPE = 0x08000001

# (imr, event_type, payload) of the firmware/boot events, in the order a dstack TD logs them.
_BOOT_EVENTS: tuple[tuple[int, int, bytes], ...] = (
    (0, 0x8000000B, b"\tTdxTable\0"),  # EV_EFI_HANDOFF_TABLES2
    (0, 0x8000000A, b"(Fv(XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX))"),  # EV_EFI_PLATFORM_FIRMWARE_BLOB2
    (0, 0x80000001, b"SecureBoot"),  # EV_EFI_VARIABLE_DRIVER_CONFIG
    (0, 0x80000001, b"PK"),
    (0, 0x80000001, b"KEK"),
    (0, 0x80000001, b"db"),
    (0, 0x80000001, b"dbx"),
    (0, 0x00000004, b"\0\0\0\0"),  # EV_SEPARATOR
    (0, 0x0000000A, b"ACPI DATA"),  # EV_PLATFORM_CONFIG_FLAGS
    (0, 0x0000000A, b"ACPI DATA"),
    (0, 0x0000000A, b"ACPI DATA"),
    (1, 0x80000003, b"kernel"),  # EV_EFI_BOOT_SERVICES_APPLICATION
    (0, 0x80000002, b"BootOrder"),  # EV_EFI_VARIABLE_BOOT
    (0, 0x80000002, b"Boot0000"),
    (1, 0x80000007, b"Calling EFI Application from Boot Option"),  # EV_EFI_ACTION
    (1, 0x00000004, b"\0\0\0\0"),
    (2, 0x00000006, b"LOADED_IMAGE::LoadOptions\0"),  # EV_EVENT_TAG (kernel command line)
    (2, 0x00000006, b"Linux initrd\0"),
    (1, 0x80000007, b"Exit Boot Services Invocation"),
    (1, 0x80000007, b"Exit Boot Services Returned with Success"),
)
# Separators and EFI actions are hashes of their payload on real TDs (the sha384 of 4 zero bytes
# appears verbatim in real logs); the rest measure firmware/images we do not have, so we seed them.
_PAYLOAD_DIGEST_TYPES = {0x00000004, 0x80000007}


_RELABEL_TYPE = 0x0000000D  # EV_IPL: a firmware event type, whose digest a verifier would take as supplied

ATTACKS: dict[str, str] = {
    "relabel_app_id": "dstack's app-id entry carries EV_IPL instead of the runtime type (digest kept, replay matches); "
    "the app emits a forged app-id after boot",
    "relabel_os_image_hash": "dstack's os-image-hash entry carries EV_IPL; the app emits a forged os-image-hash",
    "relabel_key_provider": "dstack's key-provider entry carries EV_IPL; the app emits a forged key-provider",
    "relabel_system_ready": "dstack's system-ready entry carries EV_IPL; the app emits a forged app-id after it",
    "duplicate_app_id": "a second (forged) app-id event before system-ready",
    "missing_system_ready": "the log has no system-ready; the app emits a forged app-id",
    "gpu_events_out_of_order": "gpu-attestation is measured before gpu-policy-hash",
    "gpu_policy_hash_duplicated": "gpu-policy-hash is measured twice",
    "gpu_attestation_duplicated": "gpu-attestation is measured twice",
    "gpu_policy_hash_wrong": "gpu-policy-hash is the hash of another GPU policy than the app compose's",
    "gpu_cc_mode_off": 'gpu-attestation says cc_mode "off"',
    "gpu_devtools_on": "gpu-attestation says DevTools mode was on",
    "gpu_devices_wrong": "gpu-attestation counts one GPU more than are attached",
}
_RELABELS = {
    "relabel_app_id": "app-id",
    "relabel_os_image_hash": "os-image-hash",
    "relabel_key_provider": "key-provider",
    "relabel_system_ready": "system-ready",
}


@dataclass(frozen=True)
class CvmOptions:
    """How the simulated CVM boots. Defaults: a dstack v0.5.x guest without GPU boot events, V1 digests."""

    gpu_devices: int | None = None  # emit gpu-policy-hash + gpu-attestation for this many GPUs (None: neither)
    attacks: frozenset[str] = frozenset()  # names from ATTACKS; a gpu_* attack implies gpu_devices=1 when None
    app_events: tuple[tuple[str, bytes], ...] = ()  # runtime events the app emits after system-ready
    event_log_version: int = 1  # dstack's runtime digest format (app compose ``event_log_version``)

    def __post_init__(self) -> None:
        unknown = set(self.attacks) - set(ATTACKS)
        if unknown:
            raise ValueError(f"unknown event-log attacks {sorted(unknown)}; known: {sorted(ATTACKS)}")
        if self.event_log_version not in (1, 2):
            raise ValueError("event_log_version is 1 or 2")

    @property
    def gpu(self) -> int | None:
        if self.gpu_devices is None and any(a.startswith("gpu_") for a in self.attacks):
            return 1
        return self.gpu_devices


def runtime_digest(name: str, payload: bytes, version: int = 1) -> bytes:
    if version == 2:
        jcs = rfc8785.dumps({"name": name, "payload": payload.hex(), "type": RUNTIME_EVENT_TYPE})
        return hashlib.sha384(jcs).digest()
    return hashlib.sha384(RUNTIME_EVENT_TYPE.to_bytes(4, "little") + b":" + name.encode() + b":" + payload).digest()


def gpu_policy_hash(app_compose: str) -> bytes:
    """SHA-256(JCS(requirements.gpu_policy)), {} when absent (dstack-types ``gpu_policy_hash``)."""
    doc = json.loads(app_compose)
    policy = doc.get("requirements", {}).get("gpu_policy", {}) if isinstance(doc, dict) else {}
    return hashlib.sha256(rfc8785.dumps(policy)).digest()


def nvattest_output(seed: bytes, devices: int) -> bytes:
    """A stand-in for the nvattest JSON the guest appraised (only its SHA-256 is measured)."""
    claims = [
        {
            "x-nvidia-device-type": "gpu",
            "measres": "success",
            "secboot": True,
            "dbgstat": "disabled",
            "ueid": keys.derive(seed, f"nvattest/gpu{i}", 16).hex(),
        }
        for i in range(devices)
    ]
    return json.dumps({"result_code": 0, "claims": claims}, separators=(",", ":")).encode()


def gpu_attestation_payload(devices: int, evidence: bytes, *, cc_mode: str = "on", devtools: bool = False) -> bytes:
    """The ``gpu-attestation`` payload, keys in dstack's struct order, compact (serde_json::to_vec)."""
    return json.dumps(
        {
            "version": 2,
            "provider": "nvidia",
            "devices": devices,
            "cc_mode": cc_mode,
            "devtools": devtools,
            "evidence_sha256": hashlib.sha256(evidence).hexdigest(),
        },
        separators=(",", ":"),
    ).encode()


def replay(events: list[dict[str, Any]]) -> tuple[bytes, bytes, bytes, bytes]:
    mrs = [bytes(48)] * 4
    for e in events:
        mrs[e["imr"]] = hashlib.sha384(mrs[e["imr"]] + bytes.fromhex(e["digest"])).digest()
    return mrs[0], mrs[1], mrs[2], mrs[3]


def mr_config_id(compose_hash: bytes) -> bytes:
    return b"\x01" + compose_hash + bytes(15)


def default_app_compose(name: str) -> str:
    """A minimal dstack app-compose manifest (keys sorted, compact, as Phala's Python emits it)."""
    compose = (
        "services:\n  vllm-proxy:\n    image: dstacktee/vllm-proxy:v0.2.19\n"
        "    environment:\n      - SIGNING_METHOD=ecdsa\n    volumes:\n"
        "      - /var/run/dstack.sock:/var/run/dstack.sock\n"
    )
    doc = {
        "allowed_envs": [],
        "docker_compose_file": compose,
        "features": ["kms", "tproxy-net"],
        "gateway_enabled": True,
        "kms_enabled": True,
        "local_key_provider_enabled": False,
        "manifest_version": 2,
        "name": name,
        "no_instance_id": False,
        "public_logs": True,
        "public_sysinfo": True,
        "public_tcbinfo": True,
        "runner": "docker-compose",
        "secure_time": False,
        "storage_fs": "zfs",
        "tproxy_enabled": True,
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class CvmIdentity:
    """Everything a dstack CVM reports about itself; ``rtmrs``/``mr_td``/``mr_config_id`` go into the quote."""

    app_id: bytes
    instance_id: bytes
    app_name: str
    app_compose: str
    os_image_hash: bytes
    mr_kms: bytes
    key_provider_info: str
    mr_td: bytes
    event_log: list[dict[str, Any]]
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    options: CvmOptions = CvmOptions()
    gpu_attestation_output: bytes | None = None  # the nvattest JSON whose SHA-256 gpu-attestation carries

    @property
    def compose_hash(self) -> bytes:
        return hashlib.sha256(self.app_compose.encode()).digest()

    @property
    def mr_config_id(self) -> bytes:
        return mr_config_id(self.compose_hash)

    @property
    def device_id(self) -> bytes:
        return hashlib.sha256(b"").digest()  # dstack's value when no device id is set

    @property
    def mr_aggregated(self) -> bytes:
        """Simulator stand-in: SHA256(MRTD ‖ RTMR0-3 ‖ mr_config_id); dstack's exact formula is not reproduced."""
        return hashlib.sha256(self.mr_td + b"".join(self.rtmrs) + self.mr_config_id).digest()

    def vm_config(self) -> str:
        return json.dumps(
            {
                "os_image_hash": self.os_image_hash.hex(),
                "cpu_count": 24,
                "memory_size": 206158430208,
                "qemu_version": "9.2.1",
                "pci_hole64_size": 1125899906842624,
                "hugepages": False,
                "num_gpus": 1,
                "num_nvswitches": 0,
                "hotplug_off": True,
                "image": f"dstack-nvidia-0.5.8-{self.os_image_hash.hex()[:8]}",
                "host_share_mode": "9p",
                "spec_version": 1,
            },
            separators=(",", ":"),
        )

    def info(self) -> dict[str, Any]:
        """The report's ``info`` object (``DstackClient().info()``), with ``tcb_info`` as a dict."""
        return {
            "app_id": self.app_id.hex(),
            "instance_id": self.instance_id.hex(),
            "app_name": self.app_name,
            "device_id": self.device_id.hex(),
            "mr_aggregated": self.mr_aggregated.hex(),
            "os_image_hash": self.os_image_hash.hex(),
            "key_provider_info": self.key_provider_info,
            "compose_hash": self.compose_hash.hex(),
            "vm_config": self.vm_config(),
            "tcb_info": {
                "mrtd": self.mr_td.hex(),
                **{f"rtmr{i}": m.hex() for i, m in enumerate(self.rtmrs)},
                "app_compose": self.app_compose,
                "event_log": self.event_log,
                "mr_aggregated": self.mr_aggregated.hex(),
                "os_image_hash": self.os_image_hash.hex(),
                "compose_hash": self.compose_hash.hex(),
                "device_id": self.device_id.hex(),
            },
        }

    def event_log_json(self, *, strip_runtime_digests: bool = False) -> str:
        """The report's top-level ``event_log`` string; getQuote leaves RTMR3 digests empty."""
        events = self.event_log
        if strip_runtime_digests:
            events = [e | {"digest": ""} if e["event_type"] == RUNTIME_EVENT_TYPE else e for e in events]
        return json.dumps(events, separators=(",", ":"))


def _runtime_events(
    seed: bytes, app_compose: str, opts: CvmOptions, ident: dict[str, bytes], evidence: bytes | None
) -> list[tuple[int, str, bytes]]:
    """(event_type, name, payload) of RTMR3, in dstack's order, with ``opts.attacks`` applied."""
    attacks = opts.attacks
    forged = {
        "app-id": keys.derive(seed, "forged/app-id", 20),
        "os-image-hash": keys.derive(seed, "forged/os", 32),
        "key-provider": b'{"name":"none","id":""}',
    }
    gpu: list[tuple[str, bytes]] = []
    if opts.gpu is not None and evidence is not None:
        policy = gpu_policy_hash(app_compose)
        if "gpu_policy_hash_wrong" in attacks:
            policy = hashlib.sha256(rfc8785.dumps({"attest_gpu": False})).digest()
        devices = opts.gpu + 1 if "gpu_devices_wrong" in attacks else opts.gpu
        att = gpu_attestation_payload(
            devices,
            evidence,
            cc_mode="off" if "gpu_cc_mode_off" in attacks else "on",
            devtools="gpu_devtools_on" in attacks,
        )
        gpu = [("gpu-policy-hash", policy), ("gpu-attestation", att)]
        if "gpu_events_out_of_order" in attacks:
            gpu.reverse()
        if "gpu_policy_hash_duplicated" in attacks:
            gpu.insert(1, ("gpu-policy-hash", policy))
        if "gpu_attestation_duplicated" in attacks:
            gpu.append(("gpu-attestation", att))
    boot = [
        ("system-preparing", b""),
        ("app-id", ident["app-id"]),
        ("compose-hash", ident["compose-hash"]),
        *gpu,
        ("instance-id", ident["instance-id"]),
        ("boot-mr-done", b""),
        ("mr-kms", ident["mr-kms"]),
        ("os-image-hash", ident["os-image-hash"]),
        ("key-provider", ident["key-provider"]),
        ("storage-fs", b"zfs"),
    ]
    if "duplicate_app_id" in attacks:
        boot.append(("app-id", forged["app-id"]))
    if "missing_system_ready" not in attacks:
        boot.append(("system-ready", b""))
    after = [(name, forged[name]) for a, name in _RELABELS.items() if a in attacks and name in forged]
    if attacks & {"relabel_system_ready", "missing_system_ready"} and ("app-id", forged["app-id"]) not in after:
        after.append(("app-id", forged["app-id"]))
    relabelled = {_RELABELS[a] for a in attacks if a in _RELABELS}
    rtmr3 = [(_RELABEL_TYPE if name in relabelled else RUNTIME_EVENT_TYPE, name, payload) for name, payload in boot]
    return rtmr3 + [(RUNTIME_EVENT_TYPE, name, payload) for name, payload in (*after, *opts.app_events)]


def build_identity(
    seed: bytes,
    *,
    app_name: str = "sim-app",
    app_compose: str | None = None,
    options: CvmOptions | None = None,
    app_label: str = "",
) -> CvmIdentity:
    opts = options or CvmOptions()
    app_compose = default_app_compose(app_name) if app_compose is None else app_compose
    os_image_hash = keys.derive(seed, "dstack/os-image-hash", 32)
    app_id = keys.derive(seed, "dstack/app-id" + (f"/{app_label}" if app_label else ""), 20)  # another app: another id
    instance_id = keys.derive(seed, "dstack/instance-id", 20)
    mr_kms = keys.derive(seed, "dstack/mr-kms", 32)
    kms_spki = (
        keys.p256(seed, "dstack/kms")
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key_provider_info = json.dumps({"name": "kms", "id": kms_spki.hex()}, separators=(",", ":"))
    compose_hash = hashlib.sha256(app_compose.encode()).digest()
    evidence = None if opts.gpu is None else nvattest_output(seed, opts.gpu)

    events: list[dict[str, Any]] = []
    for i, (imr, etype, payload) in enumerate(_BOOT_EVENTS):
        if etype in _PAYLOAD_DIGEST_TYPES:
            digest = hashlib.sha384(payload).digest()
        else:
            digest = hashlib.sha384(b"sim-boot:" + os_image_hash + i.to_bytes(2, "big") + payload).digest()
        events.append(
            {"imr": imr, "event_type": etype, "digest": digest.hex(), "event": "", "event_payload": payload.hex()}
        )
    ident = {
        "app-id": app_id,
        "compose-hash": compose_hash,
        "instance-id": instance_id,
        "mr-kms": mr_kms,
        "os-image-hash": os_image_hash,
        "key-provider": key_provider_info.encode(),
    }
    version = opts.event_log_version
    for etype, name, payload in _runtime_events(seed, app_compose, opts, ident, evidence):
        # a relabelled entry keeps the runtime digest dstack extended: the replay still matches the quote
        entry = {
            "imr": 3,
            "event_type": etype,
            "digest": runtime_digest(name, payload, version).hex(),
            "event": name,
            "event_payload": payload.hex(),
        }
        events.append(entry | {"version": 2} if version == 2 else entry)
    return CvmIdentity(
        app_id=app_id,
        instance_id=instance_id,
        app_name=app_name,
        app_compose=app_compose,
        os_image_hash=os_image_hash,
        mr_kms=mr_kms,
        key_provider_info=key_provider_info,
        mr_td=hashlib.sha384(b"sim-mrtd:" + os_image_hash).digest(),
        event_log=events,
        rtmrs=replay(events),
        options=opts,
        gpu_attestation_output=evidence,
    )
