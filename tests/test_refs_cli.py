"""`verifier refs` end to end: pull the simulator gateway's model list on loopback (trust on first use, never a silent
write), pin verdicts the simulator service recorded, and detect drift in the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from aiohttp import web
from click.testing import CliRunner

from verifier.adapters.ledger import Ledger
from verifier.adapters.model_list import fetch_model_lists
from verifier.appraise.refs import dump_refs, load_refs, parse_refs, simulator_refs
from verifier.cli import main
from verifier.demo import run_demo, serve
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig

WORLD = SimulatorWorld()
IDENT = WORLD.identity


@contextlib.contextmanager
def serving(app: web.Application) -> Iterator[str]:
    """``app`` on a loopback port, on its own loop in a thread (the CLI runs its own event loop)."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    with serving(SimulatedGateway(SimulatorWorld(), SimulatorConfig()).app()) as url:
        yield url


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Verdicts the simulator service recorded: a clean one (phala_flat), a near_two_layer one, and an NRAS failure."""
    workdir = tmp_path_factory.mktemp("ledger")
    clean = asyncio.run(run_demo(db_dir=workdir))[0]
    two_layer = asyncio.run(run_demo(db_dir=workdir, report_format="near_two_layer"))[0]
    nras = asyncio.run(run_demo(db_dir=workdir, config=SimulatorConfig(faults=frozenset({"nras_failure"}))))[0]
    debug = asyncio.run(run_demo(db_dir=workdir, config=SimulatorConfig(faults=frozenset({"debug_td"}))))[0]
    return {
        "db": str(clean.db_path),
        "clean": clean.verdict,
        "two_layer": two_layer.verdict,
        "nras": nras.verdict,
        "debug": debug.verdict,
    }


def cli(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env, input=input)
    return result.exit_code, result.output


def copy_into(db: str, verdict: dict[str, Any], *, claims: dict[str, Any]) -> str:
    """Record a copy of ``verdict`` with other claims (a verdict of other software) in a ledger; returns its id."""
    with Ledger.open(db) as ledger:
        return ledger.save({**verdict, "id": None, "supersedes": None, "claims": claims}, {})


# ---------------------------------------------------------------------------------------------- pull


async def test_fetch_model_lists_reads_both_simulator_lists_with_the_cvm_app_id() -> None:
    async with serve(SimulatedGateway(SimulatorWorld(), SimulatorConfig()).app()) as url:
        main_list, phala = await fetch_model_lists(url + "/")
    assert main_list.url == f"{url}/v1/models" and phala.url == f"{url}/v1/models/phala"
    assert [(m.id, m.app_id, m.providers) for m in main_list.models] == [
        ("sim/echo-1", IDENT.app_id, ("phala",)),
        ("sim/plain-1", None, ("sim",)),
    ]
    assert [(m.id, m.app_id) for m in phala.models] == [("sim/echo-1", IDENT.app_id)]


def test_pull_writes_the_simulator_app_id_with_gateway_provenance(tmp_path: Path, gateway_url: str) -> None:
    refs = tmp_path / "refs.toml"
    code, out = cli("refs", "pull", "--gateway", gateway_url + "/", "--refs", str(refs), "--yes")
    assert code == 0, out
    assert "Trust on first use" in out and "+ sim/echo-1: NEW" in out and IDENT.app_id.hex() in out
    assert "sim/plain-1: no app id published" in out and f"wrote {refs}" in out
    r = load_refs(refs)
    [app] = r.for_model("SIM/echo-1").apps
    assert (app.app_id, app.compose_hash) == (IDENT.app_id, None)
    assert app.provenance.source.startswith(
        f"gateway {gateway_url}/v1/models/phala at "
    ) and app.provenance.note.startswith("trust on first use")
    assert r.for_model("sim/plain-1").apps == ()

    code, out = cli("refs", "pull", "--gateway", gateway_url, "--refs", str(refs))
    assert (
        code == 0
        and f"= sim/echo-1: app id {IDENT.app_id.hex()} (unchanged, first trusted 20" in out
        and "nothing to write" in out
    )
    assert load_refs(refs).sha256 == r.sha256


def test_pull_off_a_terminal_without_yes_prints_the_diff_and_writes_nothing(tmp_path: Path, gateway_url: str) -> None:
    refs = tmp_path / "refs.toml"
    code, out = cli("refs", "pull", "--gateway", gateway_url, "--refs", str(refs))
    assert code == 0 and "+ sim/echo-1: NEW" in out and "not written" in out and "stdin is not a terminal" in out
    assert not refs.exists()
    code, out = cli("refs", "pull", "--gateway", gateway_url, "--refs", str(refs), "--json")
    doc = json.loads(out)
    assert doc["written"] is False and doc["changes"] == [
        {"model": "sim/echo-1", "kind": "new", "added": [IDENT.app_id.hex()], "removed": [], "kept": []}
    ]
    assert (
        doc["without_app_id"] == ["sim/plain-1"]
        and "Trust on first use" in doc["trust_on_first_use"]
        and not refs.exists()
    )


def test_pull_on_a_terminal_asks_and_writes_only_on_yes(
    tmp_path: Path, gateway_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("verifier.cli.refs._interactive", lambda: True)
    refs = tmp_path / "refs.toml"
    code, out = cli("refs", "pull", "--gateway", gateway_url, "--refs", str(refs), input="n\n")
    assert code == 0 and "Write 1 change(s)" in out and "not written" in out and not refs.exists()
    code, out = cli("refs", "pull", "--gateway", gateway_url, "--refs", str(refs), input="y\n")
    assert code == 0 and f"wrote {refs}" in out and load_refs(refs).for_model("sim/echo-1").app_ids == {IDENT.app_id}


def test_pull_reports_a_changed_app_id_and_keeps_other_sources(tmp_path: Path, gateway_url: str) -> None:
    refs = tmp_path / "refs.toml"
    old = "ab" * 20
    refs.write_text(
        f'# hand-written\n[refs]\nid = "mine"\n[[models."sim/echo-1".app]]\napp_id = "{old}"\n'
        f'source = "gateway {gateway_url}/v1/models at 2026-01-01T00:00:00Z"\nadded_at = 1767225600\n'
        f'[[models."sim/echo-1".app]]\ncompose_hash = "{"cd" * 32}"\nsource = "manual"\nadded_at = 0\n'
    )
    code, out = cli("refs", "pull", "--gateway", gateway_url, "--refs", str(refs), "--yes")
    assert code == 0, out
    assert "~ sim/echo-1: CHANGED" in out and f"- app id {old} (first trusted 2026-01-01T00:00:00Z" in out
    assert "review before accepting" in out and "comments in" in out
    r = load_refs(refs)
    assert r.id == "mine"
    assert {(a.app_id.hex() if a.app_id else None, a.provenance.kind) for a in r.for_model("sim/echo-1").apps} == {
        (IDENT.app_id.hex(), "gateway"),
        (None, "manual"),
    }


def test_pull_sends_the_upstream_key_as_bearer_and_never_prints_it(tmp_path: Path) -> None:
    seen: list[str | None] = []

    async def models(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        if request.path.endswith("/phala"):
            return web.json_response({"error": f"bad key {request.headers.get('Authorization')}"}, status=401)
        return web.json_response({"data": [{"id": "m", "metadata": {"appid": "01" * 20}}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/phala", models)
    with serving(app) as url:
        code, out = cli(
            "refs",
            "pull",
            "--gateway",
            url,
            "--refs",
            str(tmp_path / "r.toml"),
            env={"VERIFIER_UPSTREAM_KEY": "sk-secret-123"},
        )
    assert seen == ["Bearer sk-secret-123", "Bearer sk-secret-123"]
    assert code == 1 and out.startswith("Error: ") and "401" in out and "sk-secret-123" not in out
    assert "<VERIFIER_UPSTREAM_KEY>" in out


def test_pull_without_a_phala_list_uses_v1_models(tmp_path: Path) -> None:
    app = web.Application()
    app.router.add_get("/v1/models", _json({"data": [{"id": "m", "metadata": {"appid": "02" * 20}}]}))
    with serving(app) as url:
        code, out = cli("refs", "pull", "--gateway", url, "--refs", str(tmp_path / "r.toml"), "--yes")
    assert code == 0 and "/v1/models/phala not published" in out
    [app_ref] = load_refs(tmp_path / "r.toml").for_model("m").apps
    assert app_ref.provenance.gateway_url == f"{url}/v1/models"


def _json(doc: Any, status: int = 200) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(doc, status=status)

    return handler


def _answer(handler: Any) -> web.Application:
    app = web.Application()
    app.router.add_get("/v1/models", handler)
    app.router.add_get("/elsewhere", _json({"data": [{"id": "m", "metadata": {"appid": "03" * 20}}]}))
    return app


async def _html(request: web.Request) -> web.Response:
    return web.Response(text="<html>maintenance</html>", content_type="text/html")


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/elsewhere")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.json_response({"data": []})


@pytest.mark.parametrize(
    ("handler", "expect"),
    [
        (_redirect, "redirects are not followed"),
        (_slow, "did not answer within 0.2 s"),
        (_html, "not JSON"),
        (_json({"models": []}), '{"data": [model, ...]}'),
        (_json({"data": [{"id": "m", "metadata": {"appid": "nothex"}}]}), "not a 20-byte hex app id"),
        (_json({"error": "down"}, status=503), "answered 503"),
    ],
)
def test_pull_refuses_answers_it_cannot_trust_with_a_one_line_error(tmp_path: Path, handler: Any, expect: str) -> None:
    refs = tmp_path / "r.toml"
    with serving(_answer(handler)) as url:
        code, out = cli("refs", "pull", "--gateway", url, "--refs", str(refs), "--yes", "--timeout", "0.2")
    assert (
        code == 1 and out.startswith("Error: model list: ") and expect in out and len(out.strip().splitlines()) == 1
    ), out
    assert not refs.exists()


def test_pull_reports_an_unreachable_gateway_and_a_bad_url(tmp_path: Path) -> None:
    with serving(web.Application()) as url:
        pass  # the port is closed again
    code, out = cli("refs", "pull", "--gateway", url, "--refs", str(tmp_path / "r.toml"))
    assert code == 1 and out.startswith("Error: model list: ")
    code, out = cli("refs", "pull", "--gateway", "ftp://gw.example", "--refs", str(tmp_path / "r.toml"))
    assert code == 1 and "expected an http(s) base URL" in out


# ---------------------------------------------------------------------------------------------- add --from-verdict


def test_add_from_verdict_pins_the_app_and_the_boot_chain(tmp_path: Path, ledger: dict[str, Any]) -> None:
    refs, vid = tmp_path / "refs.toml", ledger["clean"]["id"]
    code, out = cli("refs", "add", "--from-verdict", vid, "--db", ledger["db"], "--refs", str(refs))
    assert code == 0, out
    m = load_refs(refs).for_model("sim/echo-1")
    assert [(a.app_id, a.compose_hash) for a in m.apps] == [(IDENT.app_id, IDENT.compose_hash)]
    assert [b.value for b in m.boot_chains] == [(IDENT.mr_td, *IDENT.rtmrs[:3], WORLD.mr_seam)]
    assert {e.provenance.source for e in (*m.apps, *m.boot_chains)} == {f"verdict {vid}"}
    code, out = cli("refs", "add", "--from-verdict", vid, "--db", ledger["db"], "--refs", str(refs))
    assert code == 0 and "already pins everything" in out


def test_add_from_verdict_pins_the_os_image_hash_the_verdict_records(tmp_path: Path, ledger: dict[str, Any]) -> None:
    db = str(tmp_path / "copy.db")
    claims = json.loads(json.dumps(ledger["clean"]["claims"]))
    for app in claims["app"].values():
        app["os_image_hash"] = IDENT.os_image_hash.hex()
    vid = copy_into(db, ledger["clean"], claims=claims)
    code, out = cli(
        "refs",
        "add",
        "--from-verdict",
        vid,
        "--db",
        db,
        "--refs",
        str(tmp_path / "r.toml"),
        "--model",
        "*",
        "--note",
        "reviewed by ops",
    )
    assert code == 0 and f"+ os_image {IDENT.os_image_hash.hex()}" in out
    m = load_refs(tmp_path / "r.toml").for_model("any/model")
    assert m.os_image_hashes == {IDENT.os_image_hash} and m.app_ids == {IDENT.app_id} and m.boot_chains[0].model == "*"
    assert m.os_images[0].provenance.note == "reviewed by ops"


def test_add_from_verdict_refuses_a_failed_verdict_unless_forced(tmp_path: Path, ledger: dict[str, Any]) -> None:
    refs, vid = tmp_path / "refs.toml", ledger["nras"]["id"]
    code, out = cli("refs", "add", "--from-verdict", vid, "--db", ledger["db"], "--refs", str(refs))
    assert code == 1 and "refusing to pin" in out and "gpu.nras: fail (nras_result_false)" in out and "--force" in out
    assert not refs.exists()
    code, out = cli("refs", "add", "--from-verdict", vid, "--db", ledger["db"], "--refs", str(refs), "--force")
    assert code == 0 and "is fail" in out and load_refs(refs).for_model("sim/echo-1").app_ids == {IDENT.app_id}


def test_add_from_verdict_never_pins_an_unverified_quote(tmp_path: Path, ledger: dict[str, Any]) -> None:
    code, out = cli(
        "refs",
        "add",
        "--from-verdict",
        ledger["debug"]["id"],
        "--db",
        ledger["db"],
        "--refs",
        str(tmp_path / "r.toml"),
        "--force",
    )
    assert code == 1 and "TDX quote was not verified (tdx.quote: fail)" in out and not (tmp_path / "r.toml").exists()


def test_add_from_an_unknown_verdict_or_ledger_is_an_error(tmp_path: Path, ledger: dict[str, Any]) -> None:
    code, out = cli("refs", "add", "--from-verdict", "v_nope", "--db", ledger["db"], "--refs", str(tmp_path / "r.toml"))
    assert code == 1 and out.startswith("Error: no verdict 'v_nope'")
    code, out = cli(
        "refs", "add", "--from-verdict", "v_nope", "--db", str(tmp_path / "none.db"), "--refs", str(tmp_path / "r.toml")
    )
    assert code == 1 and "no ledger at" in out


# ---------------------------------------------------------------------------------------------- diff / check


def test_pulled_refs_name_the_unpinned_boot_chain_until_a_verdict_pins_it(
    tmp_path: Path, gateway_url: str, ledger: dict[str, Any]
) -> None:
    refs, db = str(tmp_path / "refs.toml"), ledger["db"]
    assert cli("refs", "pull", "--gateway", gateway_url, "--refs", refs, "--yes")[0] == 0
    code, out = cli("refs", "check", "--refs", refs, "--db", db, "--model", "sim/echo-1")
    assert code == 2 and "DRIFT" in out and "not pinned: os_image, boot_chain" in out
    code, out = cli("refs", "diff", "--refs", refs, "--db", db, "--model", "sim/echo-1")
    assert code == 0 and f"boot_chain not pinned: mrtd={IDENT.mr_td.hex()}" in out and "app " not in out
    assert ledger["clean"]["id"] in out and ledger["two_layer"]["id"] in out
    assert cli("refs", "add", "--from-verdict", ledger["clean"]["id"], "--db", db, "--refs", refs)[0] == 0
    code, out = cli("refs", "check", "--refs", refs, "--db", db)
    assert code == 0 and "no drift" in out and "1 skipped (no verified identity)" in out  # the debug TD's quote


def test_diff_groups_verdicts_of_other_software_by_model_and_signer(tmp_path: Path, ledger: dict[str, Any]) -> None:
    db = str(tmp_path / "drift.db")
    clean = ledger["clean"]
    claims = json.loads(json.dumps(clean["claims"]))
    for app in claims["app"].values():
        app["app_id"] = "ee" * 20  # an attacker's app on the same (genuine) machine
    other = copy_into(db, clean, claims=claims)
    same = copy_into(db, clean, claims=clean["claims"])
    refs = tmp_path / "refs.toml"
    refs.write_text(dump_refs(simulator_refs()))
    code, out = cli("refs", "diff", "--refs", str(refs), "--db", db, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["drift"] is True and doc["considered"] == 2
    [group] = doc["groups"]
    assert (group["model"], group["signer"], group["verdicts"], group["considered"]) == (
        "sim/echo-1",
        clean["subject"]["signer"],
        [other],
        2,
    )
    assert group["unpinned"] == {"app": [f"changed: app_id={'ee' * 20} compose_hash={IDENT.compose_hash.hex()}"]}
    assert same not in out
    code, out = cli("refs", "check", "--refs", str(refs), "--db", db)
    assert code == 2 and "1 run software not in the refs" in out


# ---------------------------------------------------------------------------------------------- show / errors


def test_show_prints_every_entry_with_its_provenance(tmp_path: Path) -> None:
    refs = tmp_path / "refs.toml"
    refs.write_text(dump_refs(simulator_refs()))
    code, out = cli("refs", "show", "--refs", str(refs))
    assert code == 0 and "refs 'simulator'" in out and f"app_id={IDENT.app_id.hex()}" in out
    assert "from manual: derived from SimulatorWorld()" in out and "added 2026-" in out and "(every model)" in out
    code, out = cli("refs", "show", "--json", env={"VERIFIER_REFS": str(refs)})
    doc = json.loads(out)
    assert code == 0 and doc["refs"]["id"] == "simulator" and doc["sha256"] == load_refs(refs).sha256
    assert (
        parse_refs(tomli_w.dumps({k: v for k, v in doc.items() if k in ("refs", "models")}).encode(), source="j")
        == simulator_refs()
    )


@pytest.mark.parametrize(
    "command",
    [
        ["show"],
        ["diff", "--db", "x.db"],
        ["check", "--db", "x.db"],
        ["add", "--from-verdict", "v", "--db", "x.db"],
        ["pull", "--gateway", "http://127.0.0.1:9"],
    ],
)
def test_every_command_reports_a_bad_refs_file_as_a_one_line_error(tmp_path: Path, command: list[str]) -> None:
    refs = tmp_path / "refs.toml"
    refs.write_text('[refs]\nid = "t"\n[[models.m.app]]\napp_id = "0102"\nsource = "manual"\nadded_at = 0\n')
    code, out = cli("refs", *command, "--refs", str(refs))
    assert code == 1 and out.startswith("Error: ") and 'models."m".app[0].app_id: got 2 bytes, expected 20' in out, out
    assert len(out.strip().splitlines()) == 1


def test_diff_and_show_need_an_existing_refs_file(tmp_path: Path, ledger: dict[str, Any]) -> None:
    code, out = cli("refs", "show", "--refs", str(tmp_path / "absent.toml"))
    assert code == 1 and "cannot read refs file" in out
    code, out = cli("refs", "check", "--refs", str(tmp_path / "absent.toml"), "--db", ledger["db"])
    assert code == 1 and "cannot read refs file" in out
