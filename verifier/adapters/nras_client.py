"""NVIDIA NRAS over HTTP: POST the evidence (v3) and fetch the JWKS (docs/gpu.md §1).

Every fault (timeout, connection error, non-2xx — a redirect is never followed —, body that is not JSON, JSON of
the wrong shape) becomes ``UpstreamError(reason="nras_unavailable")``; nothing else escapes. A 2xx answer that is not
a detached EAT ``[["JWT", token], {"GPU-n": token, ...}]`` is an NRAS malfunction, not bad evidence: the tokens in a
well-shaped answer are what ``verify.nras_token`` judges. The response body is returned
verbatim so it can be kept as evidence and re-verified offline.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from verifier.adapters.transport import BodyTooLarge, Observer, read_capped
from verifier.core.errors import UpstreamError
from verifier.evidence.json_object import shape_problem

DEFAULT_BASE_URL = "https://nras.attestation.nvidia.com"
_MAX_BODY = 4 * 1024 * 1024


class NrasClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 15,
        api_key: str | None = None,
        observe: Observer | None = None,
    ) -> None:
        self._session = session
        self._observe = observe
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._api_key = api_key
        self._jwks: dict[str, Any] | None = None
        self._jwks_lock = asyncio.Lock()

    async def attest(self, nras_request: dict[str, Any]) -> bytes:
        """POST {base}/v3/attest/gpu; the raw body of a 2xx JSON answer (also for a failed appraisal)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        url = f"{self._base}/v3/attest/gpu"
        body = await self._call("POST", url, headers, json.dumps(nras_request).encode())
        problem = _detached_eat_problem(json.loads(body))
        if problem is not None:
            raise UpstreamError(
                f"NRAS POST {url}: the answer is not a detached EAT: {problem}",
                reason="nras_unavailable",
                details={"url": url},
            )
        return body

    async def jwks(self, kid: str | None = None) -> dict[str, Any]:
        """The JWKS, cached; fetched again (at most once per call) when ``kid`` is not in the cached set."""
        async with self._jwks_lock:
            if self._jwks is None or (kid is not None and kid not in _kids(self._jwks)):
                url = f"{self._base}/.well-known/jwks.json"
                body = json.loads(await self._call("GET", url, {"Accept": "application/json"}, None))
                keys = body.get("keys") if isinstance(body, dict) else None
                if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys) or shape_problem(body):
                    raise UpstreamError(
                        f'NRAS JWKS at {url} is not {{"keys": [{{...}}, ...]}}',
                        reason="nras_unavailable",
                        details={"url": url},
                    )
                self._jwks = body
            return self._jwks

    async def _call(self, method: str, url: str, headers: dict[str, str], data: bytes | None) -> bytes:
        started, outcome = time.monotonic(), "ok"
        try:
            return await self._exchange(method, url, headers, data)
        except UpstreamError as exc:
            outcome = exc.reason
            raise
        finally:
            if self._observe is not None:
                self._observe("nras_jwks" if method == "GET" else "nras_attest", time.monotonic() - started, outcome)

    async def _exchange(self, method: str, url: str, headers: dict[str, str], data: bytes | None) -> bytes:
        def fail(why: str, status: int | None = None) -> UpstreamError:
            return UpstreamError(
                f"NRAS {method} {url}: {why}", reason="nras_unavailable", details={"url": url, "status": status}
            )

        try:
            async with self._session.request(
                method, url, headers=headers, data=data, timeout=self._timeout, allow_redirects=False
            ) as resp:
                status = resp.status
                location = resp.headers.get("Location")
                try:
                    body = await read_capped(resp, _MAX_BODY)
                except BodyTooLarge:
                    raise fail(f"answer larger than {_MAX_BODY} bytes", status) from None
        except TimeoutError:
            raise fail(f"no answer within {self._timeout.total}s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:  # ValueError: invalid URL
            raise fail(f"connection failed: {type(exc).__name__}: {exc}") from None
        if status == 429:
            raise fail("HTTP 429 (rate limited)", status)
        if 300 <= status < 400:
            raise fail(
                f"HTTP {status} redirecting to {(location or 'no Location')[:200]}; redirects are not followed", status
            )
        if not 200 <= status < 300:
            raise fail(f"HTTP {status}", status)
        try:
            json.loads(body)
        except (ValueError, RecursionError):
            raise fail(f"HTTP {status} with a body that is not JSON", status) from None
        return body


def _detached_eat_problem(doc: Any) -> str | None:
    """What is wrong with the shape of a /v3/attest/gpu answer, or None (docs/gpu.md §1)."""
    if not (isinstance(doc, list) and len(doc) == 2):
        return f"a JSON {type(doc).__name__}, expected a 2-element array"
    head, detached = doc
    if not (isinstance(head, list) and len(head) == 2 and head[0] == "JWT" and isinstance(head[1], str)):
        return 'the first element is not ["JWT", <token>]'
    if not isinstance(detached, dict) or not all(isinstance(t, str) for t in detached.values()):
        return "the second element is not an object of GPU names to tokens"
    return shape_problem(doc)


def _kids(jwks: dict[str, Any]) -> set[str]:
    return {k["kid"] for k in jwks.get("keys", []) if isinstance(k, dict) and isinstance(k.get("kid"), str)}
