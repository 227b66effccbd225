"""One exchange's upstream channel: the completion, then its signature and report, on one kept-alive connection.

A gateway behind a load balancer has one TLS key per replica; the report that attests a TLS key must come from the
replica whose connection served the completion, or the comparison says nothing (nearai-cloud-verifier fetches the
report and reads the live certificate on one connection for this reason, ``py/tls_verifier.py``). A ``Channel`` is
a session whose connector holds at most ONE connection: every call of the exchange waits for it and reuses it while
the gateway keeps it alive. When the gateway closes it (``Connection: close``, an idle timeout), the next call opens
a new one — possibly to another replica — and ``tls.json`` records that it was another connection.

Like the relay session it replaces for completions: no decompression (the captured bytes are the bytes sent), no
cookies, the connect and read timeouts of the proxy; TLS verified by ``ssl_context`` (or the system store).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable
from types import TracebackType
from typing import TypeVar

import aiohttp

from verifier.adapters.tls_peer import ObservedResponse, PeerLog
from verifier.adapters.tls_trust import connector_ssl

T = TypeVar("T")


def relay_session(
    ssl_context: ssl.SSLContext | None, *, read_timeout: float, limit: int = 100
) -> aiohttp.ClientSession:
    """A session relaying bytes as sent: no decompression, no cookies, the proxy's timeouts, our TLS trust; each
    response notes the connection it arrived on (``ObservedResponse``)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=connector_ssl(ssl_context)),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout),
        skip_auto_headers=("User-Agent",),
        response_class=ObservedResponse,
    )


class Channel:
    def __init__(self, *, ssl_context: ssl.SSLContext | None, read_timeout: float):
        self.peers = PeerLog()
        self.session = relay_session(ssl_context, read_timeout=read_timeout, limit=1)

    async def close(self) -> None:
        await self.session.close()

    async def closing_after(self, work: Awaitable[T]) -> T:
        """``work``'s result, then the channel closed: how a background verification owns it."""
        try:
            return await work
        finally:
            await self.close()

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
