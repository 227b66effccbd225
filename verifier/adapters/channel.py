"""One exchange's upstream channel: the completion, then its signature and report, on one kept-alive connection.

A gateway behind a load balancer has one TLS key per replica; the report that attests a TLS key must come from the
replica whose connection served the completion, or the comparison says nothing (nearai-cloud-verifier fetches the
report and reads the live certificate on one connection for this reason, ``py/tls_verifier.py``). A ``Channel`` is
a session whose connector holds at most ONE connection, lent to one exchange at a time: every call of the exchange
waits for that connection and reuses it while the gateway keeps it alive. When the gateway closes it
(``Connection: close``, an idle timeout), the next call opens a new one — possibly to another replica — and
``tls.json`` records that it was another connection.

``Channels`` lends them out and takes them back, so a kept-alive connection serves exchange after exchange (no TLS
handshake per completion); each loan starts a fresh ``PeerLog``, the observations of that exchange only.

Like the relay session: no decompression (the captured bytes are the bytes sent), no cookies, the connect and read
timeouts of the proxy; TLS verified by ``ssl_context`` (or the system store).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp

from verifier.adapters.tls_peer import ObservedResponse, PeerLog
from verifier.adapters.tls_trust import connector_ssl

T = TypeVar("T")
IDLE_CHANNELS = 64  # kept-alive channels kept for the next exchanges; more are closed when returned


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
    """One exchange's loan of a one-connection session, with that exchange's peer log."""

    def __init__(self, session: aiohttp.ClientSession, owner: Channels) -> None:
        self.session = session
        self.peers = PeerLog()
        self._owner: Channels | None = owner

    async def release(self) -> None:
        """Give the connection back for the next exchange (once; later calls do nothing)."""
        owner, self._owner = self._owner, None
        if owner is not None:
            await owner.give_back(self.session)

    async def releasing_after(self, work: Awaitable[T]) -> T:
        """``work``'s result, then the channel released: how a background verification owns it."""
        try:
            return await work
        finally:
            await self.release()


class Channels:
    def __init__(self, *, ssl_context: ssl.SSLContext | None, read_timeout: float, idle: int = IDLE_CHANNELS):
        self._ssl, self._read_timeout, self._max_idle = ssl_context, read_timeout, idle
        self._idle: list[aiohttp.ClientSession] = []
        self._closed = False

    def lend(self) -> Channel:
        """A channel for one exchange: the most recently returned one (its connection likely still open), or new."""
        while self._idle:
            session = self._idle.pop()
            if not session.closed:
                return Channel(session, self)
        return Channel(relay_session(self._ssl, read_timeout=self._read_timeout, limit=1), self)

    async def give_back(self, session: aiohttp.ClientSession) -> None:
        if self._closed or session.closed or len(self._idle) >= self._max_idle:
            await session.close()
        else:
            self._idle.append(session)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for session in idle:
            await session.close()
