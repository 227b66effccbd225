"""The gateway client (aiohttp adapter) and the one table that classifies upstream answers.

| upstream answer                                  | outcome                                    |
|--------------------------------------------------|--------------------------------------------|
| connection error, TLS error, reset               | indeterminate ``upstream_unavailable``     |
| timeout                                          | indeterminate ``upstream_timeout``         |
| 429                                              | indeterminate ``upstream_rate_limited``    |
| 5xx                                              | indeterminate ``upstream_unavailable``     |
| 404 on the signature                             | indeterminate ``signature_unavailable``    |
| other 4xx                                        | indeterminate ``upstream_rejected``        |
| 2xx whose body is not a JSON object              | indeterminate ``upstream_garbled``         |
| 2xx JSON object                                  | evidence: the checks judge it (fail/pass)  |

Nothing in this table can become ``pass``. Signatures are retried with backoff inside a deadline
(they live ~20-30 min and may sit on one node behind a load balancer: redpill-protocol §2.4).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp

from verifier.adapters.transport import BodyTooLarge, read_capped
from verifier.core.errors import Indeterminate, UpstreamError

MAX_EVIDENCE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Retry:
    deadline: float = 20.0  # seconds for all signature attempts together
    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 4.0


def classify(status: int, body: bytes, *, what: str, url: str) -> None:
    """Raise the table's outcome for a non-evidence answer; return for a 2xx JSON object."""
    if status == 429:
        raise UpstreamError(f"{what}: {url} answered 429 (rate limited)", reason="upstream_rate_limited", details={"status": status})
    if status >= 500:
        raise UpstreamError(f"{what}: {url} answered {status}", reason="upstream_unavailable", details={"status": status})
    if status == 404 and what == "signature":
        raise Indeterminate(f"signature: {url} answered 404 (chat id not found or expired)", reason="signature_unavailable", details={"status": status})
    if not 200 <= status < 300:
        raise UpstreamError(f"{what}: {url} answered {status}: {body[:200].decode('utf-8', 'replace')}", reason="upstream_rejected",
                            details={"status": status})
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamError(f"{what}: {url} answered {status} with a body that is not a JSON object ({len(body)} bytes)",
                            reason="upstream_garbled", details={"status": status})


class GatewayClient:
    """Fetches signatures and attestation reports; ``api_key`` is used for the calls, never kept elsewhere."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, api_key: str | None = None, timeout: float = 30.0,
                 retry: Retry | None = None) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": api_key} if api_key else {}
        if api_key and not api_key.lower().startswith(("bearer ", "basic ")):
            self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry or Retry()

    async def _get(self, what: str, path: str, params: dict[str, str]) -> bytes:
        url = f"{self._base}{path}"
        try:
            async with self._session.get(url, params=params, headers=self._headers, timeout=self._timeout) as resp:
                try:
                    body = await read_capped(resp, MAX_EVIDENCE_BYTES)
                except BodyTooLarge:
                    raise UpstreamError(f"{what}: {url} body larger than {MAX_EVIDENCE_BYTES} bytes", reason="upstream_garbled",
                                        details={"status": resp.status}) from None
                classify(resp.status, body, what=what, url=url)
                return body
        except TimeoutError:
            raise UpstreamError(f"{what}: {url} did not answer within {self._timeout.total} s", reason="upstream_timeout") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{what}: {url}: {type(exc).__name__}: {exc}", reason="upstream_unavailable") from None

    async def signature(self, chat_id: str, *, model: str, signing_algo: str) -> bytes:
        """GET /v1/signature/{id}, retried on 404 / 5xx / 429 / transport faults until the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry.deadline
        delay = self._retry.first_delay
        while True:
            try:
                return await self._get("signature", f"/v1/signature/{quote(chat_id, safe='')}", {"model": model, "signing_algo": signing_algo})
            except Indeterminate as exc:
                retryable = exc.reason in ("signature_unavailable", "upstream_unavailable", "upstream_rate_limited", "upstream_timeout")
                if not retryable or loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * self._retry.factor, self._retry.max_delay)

    async def report(self, *, model: str, nonce: bytes, signing_address: str | None, signing_algo: str) -> bytes:
        params = {"model": model, "nonce": nonce.hex(), "signing_algo": signing_algo}
        if signing_address:
            params["signing_address"] = signing_address
        return await self._get("report", "/v1/attestation/report", params)

