"""Trust anchors are configuration: which roots a verdict's evidence must chain to.

``production`` pins the real Intel SGX Root CA, the NVIDIA Device Identity CA and the NRAS
intermediate; ``simulator`` pins the bundled simulator's test PKI (see ``verifier.simulator``).
Every verdict records the name of its trust profile.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

PRODUCTION = "production"
SIMULATOR = "simulator"

NRAS_ISSUER = "https://nras.attestation.nvidia.com"


@dataclass(frozen=True, slots=True)
class TrustAnchors:
    name: str
    intel_root_ca_der: bytes  # root of the PCK chain and of the TCB-info / QE-identity signing chain
    nvidia_device_root_pem: bytes  # root of every GPU device-identity chain
    nras_intermediate_der: bytes  # x5c[1] of every NRAS JWKS key must be this certificate
    nras_issuer: str

    @property
    def is_simulator(self) -> bool:
        return self.name != PRODUCTION

    def fingerprints(self) -> dict[str, str]:
        return {
            "intel_root_ca_sha256": hashlib.sha256(self.intel_root_ca_der).hexdigest(),
            "nvidia_device_root_sha256": hashlib.sha256(self.nvidia_device_root_pem).hexdigest(),
            "nras_intermediate_sha256": hashlib.sha256(self.nras_intermediate_der).hexdigest(),
        }


def _anchor(name: str) -> bytes:
    return resources.files("verifier.anchors").joinpath(name).read_bytes()


def production_anchors() -> TrustAnchors:
    return TrustAnchors(
        name=PRODUCTION,
        intel_root_ca_der=_anchor("intel_sgx_root_ca.der"),
        nvidia_device_root_pem=_anchor("nvidia_device_identity_ca.pem"),
        nras_intermediate_der=_anchor("nras_intermediate_004.der"),
        nras_issuer=NRAS_ISSUER,
    )
