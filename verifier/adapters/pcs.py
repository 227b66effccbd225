"""Our own HTTP client for Intel PCS v4 or a PCCS (docs/dcap.md §1.5): fetches the four collateral pieces
and assembles them into QuoteCollateralV3 JSON. dcap-qvl's own fetcher is not used (it segfaulted at
interpreter exit, docs/dcap.md §0.4, and cannot be cached or pinned in time)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import unquote

import aiohttp
from cryptography import x509

from verifier.adapters.transport import BodyTooLarge, Observer, read_capped
from verifier.core.errors import EvidenceError, UpstreamError
from verifier.evidence.collateral import Collateral, is_hex

INTEL_ROOT_CA_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
MAX_BODY_BYTES = 4 * 1024 * 1024  # real bodies: PCK CRL ~3.4 kB, TCB info ~4.3 kB


class PcsClient:
    """Our own HTTP client for Intel PCS v4 / a PCCS (docs/dcap.md §1.5); assembles QuoteCollateralV3 JSON.

    Every fault (timeout, connection, non-2xx, oversized or unparsable body, missing header) is an
    ``UpstreamError(reason="collateral_unavailable")`` naming the URL.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        pccs: bool = False,
        timeout: float = 30.0,
        root_ca_crl_url: str | None = None,
        max_body: int = MAX_BODY_BYTES,
        observe: Observer | None = None,
    ) -> None:
        self._observe = observe
        base = base_url.rstrip("/")
        for suffix in ("/sgx/certification/v4", "/tdx/certification/v4"):  # §1.5: trimmed like dcap-qvl does
            base = base.removesuffix(suffix)
        self.base, self.pccs, self.max_body = base, pccs, max_body
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.root_ca_crl_url = root_ca_crl_url or INTEL_ROOT_CA_CRL_URL

    async def fetch(self, *, fmspc: str, ca: str, early: bool = False) -> Collateral:
        """GET PCK CRL, TCB info, QE identity, root CA CRL (in that order) and assemble them; source "pcs".

        ``early``: TCB info and QE identity of Intel's early TCB update (``update=early``, Intel PCS API v4), the
        TCB recovery Intel has published but not yet enforced (batch re-verification jobs' early warning)."""
        if len(fmspc) != 12 or not is_hex(fmspc) or ca not in ("platform", "processor"):
            raise EvidenceError(
                f"collateral request for FMSPC {fmspc!r}, CA {ca!r}: expected 12 hex chars and platform|processor"
            )
        v4 = f"{self.base}/sgx/certification/v4"
        pck_crl, pck_chain = await self._get(f"{v4}/pckcrl?ca={ca}&encoding=der", "SGX-PCK-CRL-Issuer-Chain")
        update = "&update=early" if early else ""
        tcb_body, tcb_chain = await self._get(
            f"{self.base}/tdx/certification/v4/tcb?fmspc={fmspc}{update}",
            "TCB-Info-Issuer-Chain",
            "SGX-TCB-Info-Issuer-Chain",
        )
        qe_body, qe_chain = await self._get(
            f"{self.base}/tdx/certification/v4/qe/identity{'?update=early' if early else ''}",
            "SGX-Enclave-Identity-Issuer-Chain",
        )
        root_url = f"{v4}/rootcacrl" if self.pccs else self.root_ca_crl_url  # PCCS: hex; Intel: the root's CRL DP, DER
        root_crl, _ = await self._get(root_url)
        tcb_info, tcb_sig = _signed(tcb_body, "tcbInfo", f"{self.base}/tdx/certification/v4/tcb")
        qe_identity, qe_sig = _signed(qe_body, "enclaveIdentity", f"{self.base}/tdx/certification/v4/qe/identity")
        doc = {
            "pck_crl_issuer_chain": pck_chain,
            "root_ca_crl": _crl(root_crl, root_url).hex(),
            "pck_crl": _crl(pck_crl, f"{v4}/pckcrl").hex(),
            "tcb_info_issuer_chain": tcb_chain,
            "tcb_info": tcb_info,
            "tcb_info_signature": tcb_sig,
            "qe_identity_issuer_chain": qe_chain,
            "qe_identity": qe_identity,
            "qe_identity_signature": qe_sig,
        }
        try:
            got = Collateral.parse(json.dumps(doc), source="pcs")
        except EvidenceError as exc:
            raise _unavailable(self.base, f"served unusable collateral: {exc.message}") from exc
        if got.fmspc != fmspc.upper():
            raise _unavailable(self.base, f"served TCB info for FMSPC {got.fmspc}, expected {fmspc.upper()}")
        return got

    async def _get(self, url: str, *chain_headers: str) -> tuple[bytes, str]:
        """(body, decoded issuer-chain PEM or "") of a 2xx response; a redirect is never followed."""
        started, outcome = time.monotonic(), "ok"
        try:
            return await self._get_once(url, *chain_headers)
        except UpstreamError as exc:
            outcome = exc.reason
            raise
        finally:
            if self._observe is not None:
                self._observe("pcs", time.monotonic() - started, outcome)

    async def _get_once(self, url: str, *chain_headers: str) -> tuple[bytes, str]:
        try:
            async with self.session.get(url, timeout=self.timeout, allow_redirects=False) as resp:
                status, headers = resp.status, resp.headers
                if 300 <= status < 400:
                    target = (headers.get("Location") or "no Location")[:200]
                    raise _unavailable(
                        url, f"HTTP {status} redirecting to {target}; redirects are not followed", status=status
                    )
                if not 200 <= status < 300:
                    extra = {"retry_after": headers.get("Retry-After")} if status == 429 else {}
                    raise _unavailable(url, f"HTTP {status}, expected 200", status=status, **extra)
                try:
                    body = await read_capped(resp, self.max_body)
                except BodyTooLarge:
                    raise _unavailable(url, f"body exceeds {self.max_body} bytes", status=status) from None
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise _unavailable(url, f"{type(exc).__name__}: {exc}") from exc
        if not chain_headers:
            return body, ""
        raw = next((headers[h] for h in chain_headers if h in headers), None)
        chain = unquote(raw) if raw else ""
        if "-----BEGIN CERTIFICATE-----" not in chain:
            raise _unavailable(url, f"no PEM issuer chain in header {' / '.join(chain_headers)}", status=status)
        return body, chain


def _unavailable(url: str, what: str, *, status: int | None = None, **details: Any) -> UpstreamError:
    return UpstreamError(
        f"collateral fetch {url}: {what}",
        reason="collateral_unavailable",
        details={"url": url, "status": status, **details},
    )


def _signed(body: bytes, key: str, url: str) -> tuple[str, str]:
    """(exact text of body[key], signature hex) of ``{"<key>": {...}, "signature": "hex"}``.

    The signature covers the exact bytes of the value (docs/dcap.md §1.3), so the value is sliced out
    of the raw text, never re-serialized.
    """
    try:
        text = body.decode("utf-8")
        spans = _top_level_spans(text)
        (value_text, value), (_, sig) = spans[key], spans["signature"]
    except (UnicodeDecodeError, ValueError, KeyError) as exc:
        raise _unavailable(
            url, f"body is not {{{key!r}: {{…}}, 'signature': hex}}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(value, dict) or not isinstance(sig, str) or not sig or not is_hex(sig):
        raise _unavailable(url, f"body: {key} is {type(value).__name__}, signature {sig!r}; expected an object and hex")
    return value_text, sig.lower()


def _top_level_spans(text: str) -> dict[str, tuple[str, Any]]:
    """key -> (exact source text of the value, decoded value) for a JSON object; ValueError if it is not one."""
    dec, ws = json.JSONDecoder(), " \t\r\n"
    spans: dict[str, tuple[str, Any]] = {}

    def skip(i: int) -> int:
        while i < len(text) and text[i] in ws:
            i += 1
        return i

    i = skip(0)
    if text[i : i + 1] != "{":
        raise ValueError("not a JSON object")
    i = skip(i + 1)
    while text[i : i + 1] != "}":
        key, i = dec.raw_decode(text, i)
        i = skip(i)
        if not isinstance(key, str) or key in spans or text[i : i + 1] != ":":
            raise ValueError(f"bad or duplicate key {key!r} at offset {i}")
        start = skip(i + 1)
        value, i = dec.raw_decode(text, start)
        spans[key] = (text[start:i], value)
        i = skip(i)
        if text[i : i + 1] == ",":
            i = skip(i + 1)
        elif text[i : i + 1] != "}":
            raise ValueError(f"expected ',' or '}}' at offset {i}")
    if skip(i + 1) != len(text):
        raise ValueError(f"trailing data at offset {i + 1}")
    return spans


def _crl(body: bytes, url: str) -> bytes:
    """DER of a CRL served as DER or as hex text (PCCS /rootcacrl, §4.4)."""
    der = body
    if body[:1] != b"\x30":
        try:
            der = bytes.fromhex(body.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError) as exc:
            raise _unavailable(url, f"body is neither a DER CRL nor hex: {exc}") from exc
    try:
        x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise _unavailable(url, f"body is not an X.509 CRL: {exc}") from exc
    return der
