"""Proxy overhead: the same requests straight to a cheap loopback upstream and through ``verifier proxy``.

Run: ``.venv/bin/python benchmarks/bench_proxy.py [--requests N]``. Three processes on loopback: a replay upstream
(this file with ``--serve-upstream``: the simulated gateway whose completions and signatures are recorded once and
replayed, so a request costs no signing; reports stay live and nonce-bound), ``verifier proxy --mode async`` with a
600 s reuse window (so one report serves the run; ``--verify-workers N`` verifier processes, default 1, 0 = verify
in the proxy's own process), and this client. ``--tls``: the upstream serves loopback TLS with the simulator's test CA
(the proxy and this client trust it by ``--ca-file`` / an SSL context), and its reports are in the TLS-fingerprint
layout, so every verdict also judges ``tls.binds_peer``. For 1, 10 and 100 concurrent clients it sends
the same requests direct and through the proxy in the same run and prints the added latency (p50/p99, JSON
completions), the added time to first byte (p50/p99, streams), the verdicts/s the proxy sustained, and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

PROMPTS = 64  # distinct recorded completions per kind (JSON, stream)
MODEL = "sim/echo-1"


# ------------------------------------------------------------------ the replay upstream (its own process)


def request_bytes(i: int, stream: bool) -> bytes:
    return json.dumps(
        {
            "model": MODEL,
            "stream": stream,
            "messages": [{"role": "user", "content": f"benchmark prompt {i} " + "word " * 40}],
        }
    ).encode()


async def serve_upstream(tls: bool) -> None:
    from verifier.evidence.exchange import chat_id_from_response
    from verifier.simulator import SimulatorWorld
    from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig

    gateway = SimulatedGateway(SimulatorWorld(), SimulatorConfig(tls=tls))
    live = gateway.app()
    completions: dict[str, tuple[bytes, str]] = {}  # sha256(request) -> (response, content type)
    signatures: dict[str, bytes] = {}

    @web.middleware
    async def replay(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and request.path == "/v1/chat/completions":
            raw = await request.read()
            recorded = completions.get(hashlib.sha256(raw).hexdigest())
            if recorded is not None:
                return web.Response(body=recorded[0], content_type=recorded[1], headers={"x-model-used": MODEL})
        if request.method == "GET" and request.path.startswith("/v1/signature/"):
            cached = signatures.get(request.path)
            if cached is not None and request.query.get("signing_algo") == "ecdsa":
                return web.Response(body=cached, content_type="application/json")
        return await handler(request)

    live.middlewares.append(replay)
    runner = web.AppRunner(live, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024, ssl_context=gateway.ssl_context() if tls else None)
    await site.start()
    port = runner.addresses[0][1]
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    trust: Any = True
    if gateway.tls is not None:
        ca = gateway.tls.write_ca(Path(tempfile.mkdtemp(prefix="bench-proxy-ca-")) / "ca.pem")
        print(f"ca {ca}", flush=True)
        trust = gateway.tls.client_context()
    connector = aiohttp.TCPConnector(ssl=trust)
    async with aiohttp.ClientSession(connector=connector) as client:  # record: one live completion, one signature
        for stream in (False, True):
            for i in range(PROMPTS):
                raw = request_bytes(i, stream)
                async with client.post(f"{url}/v1/chat/completions", data=raw) as resp:
                    body, ctype = await resp.read(), resp.content_type
                chat_id = chat_id_from_response(body)
                async with client.get(
                    f"{url}/v1/signature/{chat_id}", params={"model": MODEL, "signing_algo": "ecdsa"}
                ) as resp:
                    signatures[f"/v1/signature/{chat_id}"] = await resp.read()
                completions[hashlib.sha256(raw).hexdigest()] = (body, ctype)
    print(f"upstream {url}", flush=True)
    await asyncio.Event().wait()


# ------------------------------------------------------------------ the client


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def phase(
    session: aiohttp.ClientSession,
    base: str,
    headers: dict[str, str],
    clients: int,
    requests: int,
    stream: bool,
    tickets: list[str],
    errors: Counter[str],
) -> list[float]:
    """``requests`` requests over ``clients`` concurrent clients; JSON: full latency, stream: time to first byte."""
    times: list[float] = []
    counter = iter(range(requests))

    async def client() -> None:
        for n in counter:
            raw = request_bytes(n % PROMPTS, stream)
            started = time.perf_counter()
            try:
                async with session.post(f"{base}/v1/chat/completions", data=raw, headers=headers) as resp:
                    if stream:
                        await resp.content.readany()
                        times.append(time.perf_counter() - started)
                        await resp.read()
                    else:
                        await resp.read()
                        times.append(time.perf_counter() - started)
                    if resp.status != 200:
                        errors[f"http {resp.status}"] += 1
                    if "X-Verification-Id" in resp.headers:
                        tickets.append(resp.headers["X-Verification-Id"])
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return times


async def drain(session: aiohttp.ClientSession, base: str, tickets: list[str], statuses: Counter[str]) -> None:
    gate = asyncio.Semaphore(20)

    async def one(ticket: str) -> None:
        async with gate, session.get(f"{base}/v1/verifications/{ticket}", params={"wait": "600"}) as resp:
            statuses[
                (await resp.json()).get("status", f"http {resp.status}")
                if resp.status == 200
                else f"http {resp.status}"
            ] += 1

    await asyncio.gather(*(one(t) for t in tickets))


def start(args: list[str], pattern: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start a process logging to ``log`` (never a pipe nobody reads: a full pipe would stall it); its address."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return proc, found.group(1)
        if proc.poll() is not None:
            raise SystemExit(f"{args[1:3]} ended before listening: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{args[1:3]} did not listen within 120 s")


async def client_main(levels: list[int], requests: int, workers: int, nice: int, backlog: int, tls: bool) -> None:
    here = Path(__file__).resolve()
    tmp = tempfile.mkdtemp(prefix="bench-proxy-")
    upstream, up_url = start(
        [sys.executable, str(here), "--serve-upstream", *(["--tls"] if tls else [])],
        r"upstream (https?://\S+)",
        Path(tmp) / "upstream.log",
    )
    ca_args: list[str] = []
    trust: Any = True
    if tls:
        ca_file = re.search(r"ca (\S+)", (Path(tmp) / "upstream.log").read_text()).group(1)  # type: ignore[union-attr]
        ca_args = ["--ca-file", ca_file]
        trust = ssl.create_default_context(cafile=ca_file)
    policy = Path(tmp) / "reuse.toml"
    policy.write_text('[policy]\nid = "bench-reuse-600"\n[attestation]\nmax_attestation_age = 600\n')
    verifier = str(Path(sys.executable).with_name("verifier"))
    proxy, proxy_url = start(
        [
            verifier,
            "proxy",
            "--mode",
            "async",
            "--gateway",
            up_url,
            "--trust",
            "simulator",
            "--pcs-url",
            up_url,
            "--pccs",
            "--nras-url",
            up_url,
            "--policy",
            str(policy),
            "--db",
            f"{tmp}/v.db",
            "--port",
            "0",
            "--insecure-no-auth",
            "--workers",
            "1",
            "--rate-limit",
            "0",
            "--upstream-budget",
            "0",
            "--verify-workers",
            str(workers),
            "--verify-nice",
            str(nice),
            "--verify-backlog",
            str(backlog),
            *ca_args,
        ],
        r"listening on (http://\S+)",
        Path(tmp) / "proxy.log",
    )
    rows = []
    try:
        connector = aiohttp.TCPConnector(limit=0, ssl=trust)
        async with aiohttp.ClientSession(connector=connector) as session:
            headers = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
            warm: list[str] = []
            await phase(session, proxy_url, headers, 1, 4, False, warm, Counter())
            await drain(session, proxy_url, warm, Counter())  # the reuse source exists from here on
            for clients in levels:
                n = max(requests, clients * 10)
                errors: Counter[str] = Counter()
                tickets: list[str] = []
                result: dict[str, list[float]] = {}
                began = time.perf_counter()
                for stream in (False, True):
                    for name, base in (("direct", up_url), ("proxy", proxy_url)):
                        await phase(session, base, headers, clients, min(n, 2 * clients), stream, [], Counter())  # warm
                        result[f"{name}-{stream}"] = await phase(
                            session, base, headers, clients, n, stream, tickets if name == "proxy" else [], errors
                        )
                statuses: Counter[str] = Counter()
                await drain(session, proxy_url, tickets, statuses)
                elapsed = time.perf_counter() - began
                rows.append((clients, n, result, statuses, errors, len(tickets) / elapsed))
    finally:
        for proc in (proxy, upstream):
            proc.terminate()
            proc.wait(timeout=60)
    print(
        f"replay upstream, `verifier proxy --mode async` (1 dcap worker, reuse window 600 s, --verify-workers {workers}"
        f" --verify-nice {nice} --verify-backlog {backlog}), {os.cpu_count()} cores"
        + (", upstream over loopback TLS (tls.binds_peer judged)" if tls else "")
    )
    print(
        "\n| clients | requests per kind | JSON direct p50 / p99 ms | JSON added p50 / p99 ms | stream TTFB direct "
        "p50 / p99 ms | TTFB added p50 / p99 ms | verdicts/s | verdicts | errors |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for clients, n, r, statuses, errors, rate in rows:
        dj, pj, ds, ps = r["direct-False"], r["proxy-False"], r["direct-True"], r["proxy-True"]
        print(
            f"| {clients} | {n} | {pct(dj, 0.5):.2f} / {pct(dj, 0.99):.2f} | {pct(pj, 0.5) - pct(dj, 0.5):.2f} / "
            f"{pct(pj, 0.99) - pct(dj, 0.99):.2f} | {pct(ds, 0.5):.2f} / {pct(ds, 0.99):.2f} | "
            f"{pct(ps, 0.5) - pct(ds, 0.5):.2f} / {pct(ps, 0.99) - pct(ds, 0.99):.2f} | {rate:.0f} | "
            f"{', '.join(f'{v} {k}' for k, v in sorted(statuses.items()))} | {sum(errors.values())} |"
        )
    print(
        f"\n(medians of a run; statistics.median of JSON direct at 1 client: "
        f"{statistics.median(rows[0][2]['direct-False']) * 1000:.2f} ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--requests", type=int, default=300, help="requests per kind and level (at least 10 per client)"
    )
    parser.add_argument("--levels", default="1,10,100")
    parser.add_argument("--tls", action="store_true", help="the upstream over loopback TLS, TLS-layout reports")
    parser.add_argument(
        "--verify-workers", type=int, default=1, help="the proxy's verifier worker processes (0: verify in-process)"
    )
    parser.add_argument("--verify-nice", type=int, default=10, help="their CPU niceness")
    parser.add_argument(
        "--verify-backlog", type=int, default=10_000, help="completions not yet verified before a 503 (large: none)"
    )
    args = parser.parse_args()
    if args.serve_upstream:
        asyncio.run(serve_upstream(args.tls))
    else:
        asyncio.run(
            client_main(
                [int(x) for x in args.levels.split(",")],
                args.requests,
                args.verify_workers,
                args.verify_nice,
                args.verify_backlog,
                args.tls,
            )
        )
