"""Evidence bundles assembled from the real recorded fixtures in ../fixtures.

Used by the tests, and runnable to write the bundles to a folder for the CLI:
    python tests/fixture_bundles.py OUT_DIR
then e.g. `verifier verify-bundle OUT_DIR/phala-flat --at 1781056157 --json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from verifier.evidence.bundle import Bundle, BundleMeta

FIX = Path(__file__).resolve().parent.parent / "fixtures"
SIG = FIX / "redpill" / "signatures"
ATT = FIX / "redpill" / "attestation"
NV = FIX / "nvidia"
COLL = FIX / "tdx" / "collateral"

PHALA_FLAT_AT = 1781056157  # 2026-06-10T01:49:17Z, capture time (fixtures/tdx/PROVENANCE.md)
NEAR_AT = 1782698817  # 2026-06-29, capture time
CHUTES_AT = 1781056157

PHALA_FLAT_NONCE = "9a796732359e9324a45576a730e5a9c47bff518b8ee8bcb882d00b5b1ff6f39a"
NEAR_NONCE = "e79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609"
CHUTES_CLIENT_NONCE = "732f6f1c1b4445d4ab4ad892728343f7fcb0f595ce79f91ecfdeaae657bb7c7e"
NEAR_MODEL = "Qwen/Qwen3.5-122B-A10B"
NEAR_GATEWAY_KEY = "cb6fc58f6bd685919fa42fb54d3fcfe03222e324bdda91f0bac6d5c73dc4f1c6"
NEAR_MODEL_KEY = "d0aa20bcf567cc0c7c914608967dbd4c7a17e10b600802d45923434ce323f823"


def _meta(**kw: object) -> BundleMeta:
    data = {"nonce_origin": "supplied", **kw}
    return BundleMeta.from_json(data)


def signature_case(name: str) -> Bundle:
    d = SIG / name
    expected = json.loads((d / "expected.json").read_text())
    return Bundle(
        meta=_meta(model=expected.get("model_prefix")),
        request=(d / "request_body.json").read_bytes() if (d / "request_body.json").exists() else None,
        response=(d / "response_body.sse").read_bytes() if (d / "response_body.sse").exists() else None,
        signature=(d / "signature_response.json").read_bytes(),
    )


def signature_cases() -> list[str]:
    return sorted(p.name for p in SIG.iterdir() if p.is_dir())


def phala_flat() -> Bundle:
    d = ATT / "phala-flat-ecdsa-nanogpt-gemma-20260610"
    return Bundle(
        meta=_meta(
            nonce=PHALA_FLAT_NONCE,
            signing_address="0xa6df16ebBc510D97A32b99B4DFD33793acC90e2b",
            signing_algo="ecdsa",
            model="TEE/gemma-3-27b-it",  # the model the capture asked for (teep_manifest.json)
            captured_at=PHALA_FLAT_AT,
            gateway="https://nano-gpt.com/api/v1/tee",
        ),
        report=(d / "attestation_report.json").read_bytes(),
        collateral={"tdx-90C06F000000.json": (COLL / "intel-pcs-tdx-90c06f-20260610.json").read_bytes()},
        nras={
            "response.json": (d / "nras_v3_response.json").read_bytes(),
            "jwks.json": (NV / "redpill-chutes-8gpu-nras-fail-20260610" / "nras_jwks.json").read_bytes(),
        },
    )


def near_two_layer(*, signer: str = NEAR_MODEL_KEY, with_gateway_signature: bool = False) -> Bundle:
    d = ATT / "nearcloud-two-layer-ed25519-tls-20260629"
    signature = (
        (SIG / "near-gateway-ed25519-signature-only-20260906" / "signature_response.json").read_bytes()
        if with_gateway_signature
        else None
    )
    return Bundle(
        meta=_meta(
            nonce=NEAR_NONCE,
            signing_address=None if with_gateway_signature else signer,
            signing_algo="ed25519",
            model=NEAR_MODEL,
            captured_at=NEAR_AT,
            gateway="https://cloud-api.near.ai",
        ),
        signature=signature,
        report=(d / "attestation_report.json").read_bytes(),
        collateral={
            "tdx-90C06F000000.json": (COLL / "intel-pcs-tdx-90c06f-20260629.json").read_bytes(),
            "tdx-B0C06F000000.json": (COLL / "intel-pcs-tdx-b0c06f-20260629.json").read_bytes(),
        },
        nras={
            "response.json": (d / "nras_v3_response.json").read_bytes(),
            "jwks.json": (d / "nras_jwks.json").read_bytes(),
        },
    )


def substituted_nonce(model: str) -> Bundle:
    d = ATT / "phala-flat-ecdsa-substituted-nonce-nanogpt-20260325"
    report = json.loads((d / f"{model}_attestation_report.json").read_bytes())
    return Bundle(
        meta=_meta(
            nonce=(d / f"{model}_client_nonce.txt").read_text().strip(),
            signing_address=report["signing_address"],
            signing_algo="ecdsa",
            captured_at=PHALA_FLAT_AT,
        ),
        report=(d / f"{model}_attestation_report.json").read_bytes(),
        collateral={"tdx-90C06F000000.json": (COLL / "intel-pcs-tdx-90c06f-20260610.json").read_bytes()},
    )


def chutes() -> Bundle:
    d = NV / "redpill-chutes-8gpu-nras-fail-20260610"
    return Bundle(
        meta=_meta(
            nonce=CHUTES_CLIENT_NONCE,
            model="phala/deepseek-v3.2",
            captured_at=CHUTES_AT,
            gateway="https://api.redpill.ai",
        ),
        report=(d / "attestation_report.json").read_bytes(),
        collateral={"tdx-90C06F000000.json": (COLL / "intel-pcs-tdx-90c06f-20260610.json").read_bytes()},
        nras={
            "response.json": (d / "nras_v3_response.json").read_bytes(),
            "jwks.json": (d / "nras_jwks.json").read_bytes(),
        },
    )


def phala_1gpu_20260325() -> Bundle:
    d = NV / "phala-format-1gpu-20260325"
    report = json.loads((d / "attestation_report.json").read_bytes())
    return Bundle(
        meta=_meta(
            nonce=(d / "client_nonce.txt").read_text().strip(),
            signing_address=report["signing_address"],
            signing_algo="ecdsa",
            captured_at=PHALA_FLAT_AT,
        ),
        report=(d / "attestation_report.json").read_bytes(),
        collateral={"tdx-90C06F000000.json": (COLL / "intel-pcs-tdx-90c06f-20260610.json").read_bytes()},
    )


ALL = {
    "phala-flat": phala_flat,
    "near-two-layer-model": near_two_layer,
    "near-two-layer-gateway": lambda: near_two_layer(with_gateway_signature=True),
    "substituted-nonce-gpt-oss-120b": lambda: substituted_nonce("gpt-oss-120b"),
    "substituted-nonce-qwen3.5-27b": lambda: substituted_nonce("qwen3.5-27b"),
    "chutes": chutes,
    "phala-1gpu-20260325": phala_1gpu_20260325,
    **{f"signature-{name}": (lambda n=name: signature_case(n)) for name in signature_cases()},
}


def write_all(out: Path) -> None:
    for name, make in ALL.items():
        target = out / name
        for rel, body in make().files().items():
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        print(target)


if __name__ == "__main__":
    write_all(Path(sys.argv[1]))
