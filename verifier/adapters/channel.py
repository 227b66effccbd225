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
from types import TracebackType

import aiohttp

from verifier.adapters.tls_peer import ObservedResponse, PeerLog
from verifier.adapters.tls_trust import connector_ssl


class Channel:
    def __init__(self, *, ssl_context: ssl.SSLContext | None, read_timeout: float, connect_timeout: float = 30.0):
        self.peers = PeerLog()
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, ssl=connector_ssl(ssl_context)),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout),
            skip_auto_headers=("User-Agent",),
            response_class=ObservedResponse,
        )

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
