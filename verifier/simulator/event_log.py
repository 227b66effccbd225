"""A dstack-style CVM identity: event log (RTMR0-3), app_compose, compose hash, mr_config_id, ``info``.

Mirrors ``info.tcb_info`` of the Phala reports in ``fixtures/redpill/attestation/`` and
redpill-protocol.md §6: entries ``{imr, event_type, digest, event, event_payload}``; RTMR0-2 hold
firmware/boot events (TCG EFI types, payload-free digests seeded per OS image); RTMR3 holds the
dstack runtime events (type 0x08000001) system-preparing, app-id, compose-hash, instance-id,
boot-mr-done, mr-kms, os-image-hash, key-provider, storage-fs, system-ready with V1 digests
SHA384(le32(0x08000001) ‖ ":" ‖ name ‖ ":" ‖ payload). RTMR[i] = fold SHA384(mr ‖ digest) from
48 zero bytes; compose_hash = SHA256(app_compose); mr_config_id = 0x01 ‖ compose_hash ‖ 15 zeros.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

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


def runtime_digest(name: str, payload: bytes) -> bytes:
    return hashlib.sha384(RUNTIME_EVENT_TYPE.to_bytes(4, "little") + b":" + name.encode() + b":" + payload).digest()


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
        "allowed_envs": [], "docker_compose_file": compose, "features": ["kms", "tproxy-net"],
        "gateway_enabled": True, "kms_enabled": True, "local_key_provider_enabled": False, "manifest_version": 2,
        "name": name, "no_instance_id": False, "public_logs": True, "public_sysinfo": True, "public_tcbinfo": True,
        "runner": "docker-compose", "secure_time": False, "storage_fs": "zfs", "tproxy_enabled": True,
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
        return json.dumps({
            "os_image_hash": self.os_image_hash.hex(), "cpu_count": 24, "memory_size": 206158430208,
            "qemu_version": "9.2.1", "pci_hole64_size": 1125899906842624, "hugepages": False, "num_gpus": 1,
            "num_nvswitches": 0, "hotplug_off": True, "image": f"dstack-nvidia-0.5.8-{self.os_image_hash.hex()[:8]}",
            "host_share_mode": "9p", "spec_version": 1,
        }, separators=(",", ":"))

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
        """The report's top-level ``event_log`` string; getQuote leaves RTMR3 digests empty (§6.1)."""
        events = self.event_log
        if strip_runtime_digests:
            events = [e | {"digest": ""} if e["imr"] == 3 else e for e in events]
        return json.dumps(events, separators=(",", ":"))


def build_identity(seed: bytes, *, app_name: str = "sim-app", app_compose: str | None = None) -> CvmIdentity:
    app_compose = default_app_compose(app_name) if app_compose is None else app_compose
    os_image_hash = keys.derive(seed, "dstack/os-image-hash", 32)
    app_id = keys.derive(seed, "dstack/app-id", 20)
    instance_id = keys.derive(seed, "dstack/instance-id", 20)
    mr_kms = keys.derive(seed, "dstack/mr-kms", 32)
    kms_spki = keys.p256(seed, "dstack/kms").public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    key_provider_info = json.dumps({"name": "kms", "id": kms_spki.hex()}, separators=(",", ":"))
    compose_hash = hashlib.sha256(app_compose.encode()).digest()

    events: list[dict[str, Any]] = []
    for i, (imr, etype, payload) in enumerate(_BOOT_EVENTS):
        if etype in _PAYLOAD_DIGEST_TYPES:
            digest = hashlib.sha384(payload).digest()
        else:
            digest = hashlib.sha384(b"sim-boot:" + os_image_hash + i.to_bytes(2, "big") + payload).digest()
        events.append({"imr": imr, "event_type": etype, "digest": digest.hex(), "event": "", "event_payload": payload.hex()})
    runtime = [
        ("system-preparing", b""), ("app-id", app_id), ("compose-hash", compose_hash), ("instance-id", instance_id),
        ("boot-mr-done", b""), ("mr-kms", mr_kms), ("os-image-hash", os_image_hash),
        ("key-provider", key_provider_info.encode()), ("storage-fs", b"zfs"), ("system-ready", b""),
    ]
    for name, payload in runtime:
        events.append({"imr": 3, "event_type": RUNTIME_EVENT_TYPE, "digest": runtime_digest(name, payload).hex(),
                       "event": name, "event_payload": payload.hex()})
    return CvmIdentity(
        app_id=app_id, instance_id=instance_id, app_name=app_name, app_compose=app_compose,
        os_image_hash=os_image_hash, mr_kms=mr_kms, key_provider_info=key_provider_info,
        mr_td=hashlib.sha384(b"sim-mrtd:" + os_image_hash).digest(), event_log=events, rtmrs=replay(events),
    )
