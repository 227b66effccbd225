"""A PCCS-shaped endpoint set that serves QuoteCollateralV3 JSON back in Intel's wire format.

It mirrors what the verifier's PCS client fetches (docs/dcap.md §1.5, PCCS flavour): the PCK CRL as
DER with its issuer chain header, TCB info and QE identity bodies `{"tcbInfo"|"enclaveIdentity":
<exact signed bytes>, "signature": hex}` with their issuer-chain headers, and the root CA CRL as
hex text. Used by the simulator (its own test collateral) and by tests (real recorded collateral).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

from aiohttp import web

CollateralLookup = Callable[[str], "str | None"]  # FMSPC (upper hex) -> QuoteCollateralV3 JSON text


def _pieces(lookup: CollateralLookup, fmspc: str) -> dict[str, str]:
    text = lookup(fmspc.upper())
    if text is None:
        raise web.HTTPNotFound(text=f"no collateral for FMSPC {fmspc}")
    data: dict[str, str] = json.loads(text)
    return data


def _chain(value: str) -> str:
    return quote(value, safe="")


def _signed_body(key: str, signed_json: str, signature_hex: str) -> str:
    # the signature covers the exact bytes of the value: splice them in, never re-serialize
    return '{"' + key + '":' + signed_json + ',"signature":"' + signature_hex + '"}'


def add_pcs_routes(app: web.Application, lookup: CollateralLookup, *, default_fmspc: Callable[[], str]) -> None:
    """Register /sgx|tdx/certification/v4/... routes on `app` (PCCS flavour)."""

    async def pck_crl(request: web.Request) -> web.Response:
        c = _pieces(lookup, default_fmspc())
        return web.Response(
            body=bytes.fromhex(c["pck_crl"]),
            content_type="application/pkix-crl",
            headers={"SGX-PCK-CRL-Issuer-Chain": _chain(c["pck_crl_issuer_chain"])},
        )

    async def tcb(request: web.Request) -> web.Response:
        c = _pieces(lookup, request.query.get("fmspc", ""))
        return web.Response(
            text=_signed_body("tcbInfo", c["tcb_info"], c["tcb_info_signature"]),
            content_type="application/json",
            headers={"TCB-Info-Issuer-Chain": _chain(c["tcb_info_issuer_chain"])},
        )

    async def qe_identity(request: web.Request) -> web.Response:
        c = _pieces(lookup, default_fmspc())
        return web.Response(
            text=_signed_body("enclaveIdentity", c["qe_identity"], c["qe_identity_signature"]),
            content_type="application/json",
            headers={"SGX-Enclave-Identity-Issuer-Chain": _chain(c["qe_identity_issuer_chain"])},
        )

    async def root_ca_crl(request: web.Request) -> web.Response:
        return web.Response(text=_pieces(lookup, default_fmspc())["root_ca_crl"], content_type="text/plain")

    app.router.add_get("/sgx/certification/v4/pckcrl", pck_crl)
    app.router.add_get("/tdx/certification/v4/tcb", tcb)
    app.router.add_get("/tdx/certification/v4/qe/identity", qe_identity)
    app.router.add_get("/sgx/certification/v4/rootcacrl", root_ca_crl)
