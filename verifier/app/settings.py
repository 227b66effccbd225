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


RETAIN_BODIES = ("full", "hashes")
MAX_URL_LENGTH = 2048


def normalize_gateway(url: object) -> str:
    """Scheme + host + port + path without a trailing slash or /v1; the allow-list compares these exactly."""
    if not isinstance(url, str):
        raise ConfigError(f"gateway URL: expected a string, got {type(url).__name__}")
    shown = repr(url[:100])
    if len(url) > MAX_URL_LENGTH or not url.isprintable() or not url.isascii():
        raise ConfigError(f"gateway URL {shown}: expected at most {MAX_URL_LENGTH} printable ASCII characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # ValueError for a port out of 0..65535 or not a number
    except ValueError as exc:
        raise ConfigError(f"gateway URL {shown}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"gateway URL {shown}: expected http(s)://host[:port]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"gateway URL {shown}: no credentials, query or fragment allowed")
    path = parts.path.rstrip("/").removesuffix("/v1")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host + (f":{port}" if port else "")
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
    root_ca_crl_url: str | None = (
        None  # Intel PCS: the root certificate's CRL distribution point (default in the fetcher)
    )
    nras_url: str = NRAS_URL
    offline: bool = False  # never fetch collateral or NRAS answers (cached / bundled evidence only)
    dcap_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    dcap_timeout: float = 10.0
    upstream_timeout: float = 30.0
    signature_deadline: float = 20.0
    max_body_bytes: int = 8 * 1024 * 1024
    db_busy_timeout: float = 5.0  # seconds a write waits for another process's lock before `ledger_busy` (503)
    retain_bodies: str = "full"  # "hashes": the ledger keeps the sha256 of the request/response, not their bytes
    auth: bool = True  # False only with --insecure-no-auth on a loopback address: every caller is admin
    rate_per_minute: float = 600.0  # per API key (token bucket); 0 = no limit
    rate_burst: int = 60
    upstream_per_minute: float = (
        60.0  # gateway calls per gateway and minute (a verification needs up to 2); 0 = no limit
    )
    max_inflight_bytes: int = (
        256 * 1024 * 1024
    )  # request bodies + upstream answers held at once; beyond: wait, then 503
    admission_wait: float = 10.0  # seconds a verification waits for room under max_inflight_bytes before a 503
    # Signed results (EAR) and the transparency log: Ed25519 key files (PEM; made on first serve); None: in memory only
    log_key_path: str | None = None
    ear_key_path: str | None = None
    log_origin: str = "attestation-verifier/verdict-log"  # the checkpoints' origin line and the log key's name
    # upstream TLS: a PEM file of the CA certificates to trust INSTEAD of the system store (e.g. the simulator's);
    # None: the system store. Verification is never switched off.
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.retain_bodies not in RETAIN_BODIES:
            raise ConfigError(f"retain_bodies: got {self.retain_bodies!r}, expected one of {', '.join(RETAIN_BODIES)}")
        for name in (
            "rate_per_minute",
            "upstream_per_minute",
            "db_busy_timeout",
            "admission_wait",
            "upstream_timeout",
            "signature_deadline",
            "dcap_timeout",
        ):
            if not getattr(self, name) >= 0:  # NaN fails too
                raise ConfigError(f"{name}: got {getattr(self, name)}, expected a number >= 0")
        for name in ("rate_burst", "max_inflight_bytes", "dcap_workers", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: got {getattr(self, name)}, expected at least 1")
        object.__setattr__(self, "allow_gateways", tuple(normalize_gateway(g) for g in self.allow_gateways))
        object.__setattr__(self, "default_gateway", normalize_gateway(self.default_gateway))

    def gateway_allowed(self, url: str) -> str:
        """The normalized URL if it is in the allow-list; ConfigError naming the allowed ones otherwise."""
        normalized = normalize_gateway(url)
        if normalized not in self.allow_gateways:
            raise ConfigError(f"gateway {normalized!r} is not allowed; allowed: {', '.join(self.allow_gateways)}")
        return normalized
