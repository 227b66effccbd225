"""The service commands end to end: `verify` against a loopback simulated gateway records a verdict that
`show`, `list`, `export`, `verify-bundle` and `reverify` then read, reproduce and supersede."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner

from verifier.cli import main
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    """The simulated gateway on its own loop in a thread (the CLI runs its own event loop)."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(SimulatedGateway(SimulatorWorld(), SimulatorConfig()).app())
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def sim_flags(url: str) -> list[str]:
    return ["--trust", "simulator", "--pcs-url", url, "--pccs", "--nras-url", url]


@pytest.fixture
def exchange(tmp_path: Path, gateway_url: str) -> tuple[Path, Path]:
    request = json.dumps(
        {"model": "sim/echo-1", "stream": True, "messages": [{"role": "user", "content": "hello"}]}
    ).encode()
    req = urllib.request.Request(
        f"{gateway_url}/v1/chat/completions", data=request, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # loopback only
        response = resp.read()
    (tmp_path / "request.json").write_bytes(request)
    (tmp_path / "response.sse").write_bytes(response)
    return tmp_path / "request.json", tmp_path / "response.sse"


def test_verify_show_list_export_and_reverify_agree(
    tmp_path: Path, gateway_url: str, exchange: tuple[Path, Path]
) -> None:
    db = str(tmp_path / "ledger.db")
    code, out = cli(
        "verify",
        "--request",
        str(exchange[0]),
        "--response",
        str(exchange[1]),
        "--model",
        "sim/echo-1",
        "--gateway",
        gateway_url,
        "--db",
        db,
        "--json",
        *sim_flags(gateway_url),
    )
    verdict: dict[str, Any] = json.loads(out)
    assert (code, verdict["status"]) == (0, "pass"), out[-1500:]
    assert verdict["nonce"]["origin"] == "minted" and verdict["simulator"] is True

    code, out = cli("show", verdict["id"], "--db", db, "--json")
    assert code == 0 and json.loads(out)["checks"] == verdict["checks"]
    code, out = cli("show", verdict["id"], "--db", db)
    assert code == 0 and "SIMULATOR" in out and "PASS" in out

    code, out = cli("list", "--db", db, "--json", "--status", "pass")
    assert [i["id"] for i in json.loads(out)["items"]] == [verdict["id"]]

    bundle = tmp_path / "export.zip"
    code, out = cli("export", verdict["id"], "--db", db, "-o", str(bundle))
    assert code == 0 and "--trust simulator" in out
    at = str(verdict["times"]["verified_at"])
    code, out = cli("verify-bundle", str(bundle), "--at", at, "--trust", "simulator", "--json")
    again = json.loads(out)
    assert code == 0
    assert [(c["id"], c["status"], c["reason"]) for c in again["checks"]] == [
        (c["id"], c["status"], c["reason"]) for c in verdict["checks"]
    ]

    code, out = cli("reverify", verdict["id"], "--db", db, "--at", at, "--json")
    new = json.loads(out)
    assert code == 0 and new["supersedes"] == verdict["id"] and new["id"] != verdict["id"]
    code, out = cli("list", "--db", db, "--json")
    assert {i["id"] for i in json.loads(out)["items"]} == {verdict["id"], new["id"]}


def test_verify_against_an_unreachable_gateway_is_indeterminate_exit_3(
    tmp_path: Path, exchange: tuple[Path, Path]
) -> None:
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    code, out = cli(
        "verify",
        "--request",
        str(exchange[0]),
        "--response",
        str(exchange[1]),
        "--model",
        "sim/echo-1",
        "--gateway",
        dead,
        "--json",
        "--offline",
        "--signature-deadline",
        "0.5",
        *sim_flags(dead),
    )
    verdict = json.loads(out)
    assert (code, verdict["status"]) == (3, "indeterminate")
    signature = next(c for c in verdict["checks"] if c["id"] == "signature.valid")
    assert (signature["status"], signature["reason"]) == ("indeterminate", "upstream_unavailable")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["show", "v_nope", "--db", "{db}"], "no verdict"),
        (["export", "v_nope", "--db", "{db}", "-o", "{tmp}/x.zip"], "no verdict"),
        (["list", "--db", "{tmp}/missing.db"], "no ledger"),
        (["verify", "--request", "{tmp}/missing", "--response", "{tmp}/missing", "--model", "m"], "missing"),
        (["verify-bundle", "{tmp}/nothing-here"], "no such bundle"),
        (["policy", "check", "{tmp}/bad.toml"], "bad.toml"),
    ],
)
def test_usage_errors_exit_1_with_a_message_not_a_traceback(tmp_path: Path, args: list[str], needle: str) -> None:
    db = tmp_path / "ledger.db"
    (tmp_path / "bad.toml").write_text("[tdx]\nallowed_mrtd = ['zz']\n")
    from verifier.adapters.ledger import Ledger

    Ledger.open(str(db))
    filled = [a.format(db=db, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(main, filled)
    assert result.exit_code == 1, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
