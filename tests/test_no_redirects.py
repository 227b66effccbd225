"""Intel PCS/PCCS and NVIDIA NRAS clients never follow a redirect either (a 3xx is unavailable, naming where)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from verifier.adapters.nras_client import NrasClient
from verifier.adapters.pcs import PcsClient
from verifier.core.errors import UpstreamError


async def redirecting_server(aiohttp_server: Any) -> tuple[str, list[str]]:
    hits: list[str] = []

    async def target(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"keys": []})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere" + request.path)

    app = web.Application()
    app.router.add_route("*", "/elsewhere/{tail:.*}", target)
    app.router.add_route("*", "/{tail:.*}", redirect)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), hits


async def test_nras_does_not_follow_redirects(aiohttp_server: Any) -> None:
    url, hits = await redirecting_server(aiohttp_server)
    async with aiohttp.ClientSession() as session:
        nras = NrasClient(session, url)
        for call in (nras.jwks(), nras.attest({"evidence_list": []})):
            with pytest.raises(UpstreamError) as err:
                await call
            assert err.value.reason == "nras_unavailable" and "/elsewhere/" in err.value.message
    assert hits == []


async def test_pcs_does_not_follow_redirects(aiohttp_server: Any) -> None:
    url, hits = await redirecting_server(aiohttp_server)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(UpstreamError) as err:
            await PcsClient(session, url, pccs=True).fetch(fmspc="90C06F000000", ca="platform")
    assert err.value.reason == "collateral_unavailable" and "redirects are not followed" in err.value.message
    assert hits == []


def test_no_client_turns_tls_verification_off() -> None:
    from pathlib import Path

    sources = {
        p: p.read_text()
        for p in (Path(__file__).resolve().parent.parent / "verifier").rglob("*.py")
        if "simulator" not in p.parts
    }
    for needle in ("ssl=False", "verify_ssl", "CERT_NONE", "check_hostname = False", "allow_redirects=True"):
        assert [str(p) for p, text in sources.items() if needle in text] == [], needle
    for adapter in ("gateway.py", "nras_client.py", "pcs.py"):
        text = next(t for p, t in sources.items() if p.name == adapter)
        assert "allow_redirects=False" in text, adapter
