"""Service settings: one frozen object, built from CLI flags (or tests), passed to ``create_app``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from verifier.core.errors import ConfigError
from verifier.core.trust import PRODUCTION

INTEL_PCS_URL = "https://api.trustedservices.intel.com"
NRAS_URL = "https://nras.attestation.nvidia.com"
DEFAULT_GATEWAY = "https://api.redpill.ai"


def normalize_gateway(url: str) -> str:
    """Scheme + host + port + path without a trailing slash or /v1; the allow-list compares these exactly."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"gateway URL {url!r}: expected http(s)://host[:port]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"gateway URL {url!r}: no credentials, query or fragment allowed")
    path = parts.path.rstrip("/").removesuffix("/v1")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{netloc}{path}"


@dataclass(frozen=True, slots=True)
class Settings:
    db_path: str = "verifier.db"
    policy_path: str | None = None  # None: the bundled policies/default.toml
    refs_path: str | None = None  # None: no reference values (production), the shipped simulator refs (simulator)
    allow_gateways: tuple[str, ...] = (DEFAULT_GATEWAY,)
    default_gateway: str = DEFAULT_GATEWAY
    trust_profile: str = PRODUCTION
    pcs_url: str = INTEL_PCS_URL
    pccs: bool = False  # the collateral URL is a PCCS (root CA CRL served as hex at /sgx/certification/v4/rootcacrl)
    root_ca_crl_url: str | None = None  # Intel PCS: the root certificate's CRL distribution point (default in the fetcher)
    nras_url: str = NRAS_URL
    offline: bool = False  # never fetch collateral or NRAS answers (cached / bundled evidence only)
    dcap_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    dcap_timeout: float = 10.0
    upstream_timeout: float = 30.0
    signature_deadline: float = 20.0
    max_body_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow_gateways", tuple(normalize_gateway(g) for g in self.allow_gateways))
        object.__setattr__(self, "default_gateway", normalize_gateway(self.default_gateway))

    def gateway_allowed(self, url: str) -> str:
        """The normalized URL if it is in the allow-list; ConfigError naming the allowed ones otherwise."""
        normalized = normalize_gateway(url)
        if normalized not in self.allow_gateways:
            raise ConfigError(f"gateway {normalized!r} is not allowed; allowed: {', '.join(self.allow_gateways)}")
        return normalized
