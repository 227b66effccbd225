"""The gateway client (aiohttp adapter) and the one table that classifies upstream answers.

| upstream answer                                  | outcome                                    |
|--------------------------------------------------|--------------------------------------------|
| connection error, TLS error, reset               | indeterminate ``upstream_unavailable``     |
| timeout                                          | indeterminate ``upstream_timeout``         |
| 429                                              | indeterminate ``upstream_rate_limited``    |
| 5xx                                              | indeterminate ``upstream_unavailable``     |
| 404 on the signature                             | indeterminate ``signature_unavailable``    |
| other 4xx                                        | indeterminate ``upstream_rejected``        |
| 3xx (never followed: it names the location)      | indeterminate ``upstream_rejected``        |
| 2xx whose body is not a JSON object              | indeterminate ``upstream_garbled``         |
| 2xx JSON object                                  | evidence: the checks judge it (fail/pass)  |

Nothing in this table can become ``pass``. Signatures are retried with backoff inside a deadline
(they live ~20-30 min and may sit on one node behind a load balancer), each retry only while the call
budget allows one more. Redirects are never followed (a redirect to another host would make us fetch, and
keep as evidence, whatever an unlisted host says; the API key would travel along). Upstream text quoted
in a message never carries the caller's key, whatever its length.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import aiohttp

from verifier.adapters.tls_peer import PeerLog
from verifier.adapters.transport import BodyTooLarge, Observer, read_capped, redactor
from verifier.core.errors import ConfigError, Indeterminate, UpstreamError
from verifier.evidence.tls_observation import PeerObservation

MAX_EVIDENCE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Retry:
    deadline: float = 20.0  # seconds for all signature attempts together
    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 4.0


class CallBudget(Protocol):
    def take(self) -> bool:
        """True if one more upstream call may be made now."""
        ...


def classify(
    status: int, body: bytes, *, what: str, url: str, location: str | None = None, redact: Callable[[str], str] = str
) -> None:
    """Raise the table's outcome for a non-evidence answer; return for a 2xx JSON object."""
    if 300 <= status < 400:
        target = redact(location or "")[:200] or "no Location"
        raise UpstreamError(
            f"{what}: {url} answered {status} redirecting to {target}; redirects are not followed",
            reason="upstream_rejected",
            details={"status": status, "location": target},
        )
    if status == 429:
        raise UpstreamError(
            f"{what}: {url} answered 429 (rate limited)", reason="upstream_rate_limited", details={"status": status}
        )
    if status >= 500:
        raise UpstreamError(
            f"{what}: {url} answered {status}", reason="upstream_unavailable", details={"status": status}
        )
    if status == 404 and what == "signature":
        raise Indeterminate(
            f"signature: {url} answered 404 (chat id not found or expired)",
            reason="signature_unavailable",
            details={"status": status},
        )
    if not 200 <= status < 300:
        text = redact(body.decode("utf-8", "replace"))[:200]
        raise UpstreamError(
            f"{what}: {url} answered {status}: {text}", reason="upstream_rejected", details={"status": status}
        )
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamError(
            f"{what}: {url} answered {status} with a body that is not a JSON object ({len(body)} bytes)",
            reason="upstream_garbled",
            details={"status": status},
        )


class GatewayClient:
    """Fetches signatures and attestation reports; ``api_key`` is used for the calls, never kept elsewhere.

    ``calls`` limits how many upstream calls this client makes (the service's per-gateway budget);
    ``reserve(n)`` is awaited before an answer of up to ``n`` bytes is read (the service's admission control);
    ``observe(endpoint, seconds, outcome)`` records each call's latency; ``peers`` records the TLS peer of the
    connection each used answer arrived on (``tls.json``; shared with the proxy's ``Channel`` so that its labels say
    whether the completion, the signature and the report travelled on one connection). ``decompress=False``: the
    session does not decode bodies (the proxy's channel), so only identity-encoded answers are asked for and read;
    ``on_finished`` runs when the pipeline says it makes no more calls (``finished``).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: Retry | None = None,
        calls: CallBudget | None = None,
        reserve: Callable[[int], Awaitable[None]] | None = None,
        observe: Observer | None = None,
        peers: PeerLog | None = None,
        decompress: bool = True,
        on_finished: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if api_key is not None and not all(32 <= ord(c) <= 126 for c in api_key):
            raise ConfigError("the gateway API key must be printable ASCII")
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": api_key} if api_key else {}
        if api_key and not api_key.lower().startswith(("bearer ", "basic ")):
            self._headers = {"Authorization": f"Bearer {api_key}"}
        self._redact = redactor((api_key,) if api_key else ())
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry or Retry()
        self._calls, self._reserve, self._observe = calls, reserve, observe
        self._peers = peers if peers is not None else PeerLog()
        self._decompress, self._on_finished = decompress, on_finished
        if not decompress:
            self._headers = {**self._headers, "Accept-Encoding": "identity"}

    async def _get(self, what: str, path: str, params: dict[str, str]) -> bytes:
        url = f"{self._base}{path}"
        started = time.monotonic()
        outcome = "ok"
        try:
            return await self._fetch(what, url, params)
        except Indeterminate as exc:
            outcome = exc.reason
            raise
        finally:
            if self._observe is not None:
                self._observe(what, time.monotonic() - started, outcome)

    async def _fetch(self, what: str, url: str, params: dict[str, str]) -> bytes:
        try:
            async with self._session.get(
                url, params=params, headers=self._headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                seen = self._peers.observe(resp, what)  # while the connection is still ours
                size = resp.content_length
                if resp.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
                    if not self._decompress:
                        raise UpstreamError(
                            f"{what}: {url} answered with Content-Encoding "
                            f"{self._redact(resp.headers['Content-Encoding'])[:40]!r} although identity was asked for",
                            reason="upstream_garbled",
                        )
                    size = None  # the length of the compressed body: the decoded one may be larger
                if size is not None and size > MAX_EVIDENCE_BYTES:
                    raise BodyTooLarge(MAX_EVIDENCE_BYTES)
                if self._reserve is not None:
                    await self._reserve(MAX_EVIDENCE_BYTES if size is None else size)
                body = await read_capped(resp, MAX_EVIDENCE_BYTES if size is None else size)
                classify(
                    resp.status, body, what=what, url=url, location=resp.headers.get("Location"), redact=self._redact
                )
                self._peers.record(seen)
                return body
        except BodyTooLarge:
            raise UpstreamError(
                f"{what}: {url} body larger than {MAX_EVIDENCE_BYTES} bytes", reason="upstream_garbled"
            ) from None
        except TimeoutError:
            raise UpstreamError(
                f"{what}: {url} did not answer within {self._timeout.total} s", reason="upstream_timeout"
            ) from None
        except aiohttp.ClientError as exc:
            text = self._redact(f"{type(exc).__name__}: {exc}")[:300]
            raise UpstreamError(f"{what}: {url}: {text}", reason="upstream_unavailable") from None

    async def signature(self, chat_id: str, *, model: str, signing_algo: str) -> bytes:
        """GET /v1/signature/{id}, retried on 404 / 5xx / 429 / transport faults until the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry.deadline
        self._spend_call("signature")
        delay = self._retry.first_delay
        while True:
            try:
                return await self._get(
                    "signature",
                    f"/v1/signature/{quote(chat_id, safe='')}",
                    {"model": model, "signing_algo": signing_algo},
                )
            except Indeterminate as exc:
                retryable = exc.reason in (
                    "signature_unavailable",
                    "upstream_unavailable",
                    "upstream_rate_limited",
                    "upstream_timeout",
                )
                if not retryable or loop.time() + delay > deadline or not self._take_call():
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * self._retry.factor, self._retry.max_delay)

    async def report(
        self,
        *,
        model: str,
        nonce: bytes,
        signing_address: str | None,
        signing_algo: str,
        tls_params: Mapping[str, str] | None = None,
    ) -> bytes:
        """GET /v1/attestation/report; ``tls_params`` ask for the TLS-fingerprint report_data layout (policy
        ``tls.request_fingerprint``: ``include_tls_fingerprint=true``, ``version=2``), sent only over https."""
        self._spend_call("report")
        params = {"model": model, "nonce": nonce.hex(), "signing_algo": signing_algo}
        if signing_address:
            params["signing_address"] = signing_address
        if tls_params and self._base.startswith("https://"):
            params.update({k: v for k, v in tls_params.items() if k not in params})
        return await self._get("report", "/v1/attestation/report", params)

    async def finished(self) -> None:
        """The exchange makes no more calls: ``on_finished`` (the proxy's channel goes back for the next exchange)."""
        if self._on_finished is not None:
            await self._on_finished()

    def peers(self) -> tuple[PeerObservation, ...]:
        """The TLS peers of the connections this client's used answers (and the channel's completion) arrived on."""
        return self._peers.observations()

    def _take_call(self) -> bool:
        return self._calls is None or self._calls.take()

    def _spend_call(self, what: str) -> None:
        if not self._take_call():
            raise UpstreamError(
                f"{what}: the upstream call budget for {self._base} is spent; not calling",
                reason="upstream_rate_limited",
                details={"budget": "exhausted"},
            )
