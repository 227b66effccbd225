"""Software identity: `pass` means the expected software answered, or the verdict names what is not established.

Genuine simulator hardware throughout: an attacker's own app, a pinned MRTD that differs, a pinned app over an
unpinned boot chain — each a non-pass naming what is missing — and the same evidence with matching refs passes.
Then the operator workflow on a loopback gateway: `refs pull` (app ids, trust on first use) → `refs add
--from-verdict` (boot chain) → verification passes; another app on the same hardware fails `app_id_not_allowed`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sim_bundle import record
from test_refs_cli import serving

from verifier.appraise.refs import load_refs
from verifier.cli import main
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig

ATTACKER = SimulatorWorld().with_other_app('{"services": {"miner": {"image": "attacker/exfiltrate:latest"}}}')


def checks(verdict: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {c["id"]: (c["status"], c["reason"]) for c in verdict["checks"]}


def message(verdict: dict[str, Any], check_id: str) -> str:
    return next(c["message"] for c in verdict["checks"] if c["id"] == check_id)


def write_refs(tmp_path: Path, *, app: bool = True, boot_chain: bool = True, mrtd: str | None = None) -> Path:
    world = SimulatorWorld()
    ident, quote = world.identity, world.tdx_quote(bytes(64))
    from verifier.evidence.quote import parse_quote

    r = parse_quote(quote).report
    text = '[refs]\nid = "t"\n'
    if app:
        text += (
            f'[[models."sim/echo-1".app]]\napp_id = "{ident.app_id.hex()}"\nsource = "manual"\nadded_at = 1790000000\n'
        )
    if boot_chain:
        text += (
            f'[[models."*".boot_chain]]\nmrtd = "{mrtd or r.mr_td.hex()}"\nrtmr0 = "{r.rtmrs[0].hex()}"\n'
            f'rtmr1 = "{r.rtmrs[1].hex()}"\nrtmr2 = "{r.rtmrs[2].hex()}"\nsource = "manual"\nadded_at = 1790000000\n'
        )
    path = tmp_path / "refs.toml"
    path.write_text(text)
    return path


def test_matching_refs_pass_and_say_what_is_pinned(tmp_path: Path) -> None:
    verdict, _ = record(tmp_path, refs_path=str(write_refs(tmp_path)))
    assert verdict["status"] == "pass", checks(verdict)
    assert "pinned by app identity for 'sim/echo-1' (refs 't': manual)" in message(verdict, "tdx.app")
    assert "pinned by boot chain (refs 't': manual)" in message(verdict, "tdx.measurements")
    assert verdict["trust_vector"]["executables"]["tier"] == "affirming"


def test_an_attackers_own_app_on_genuine_hardware_fails_app_id_not_allowed(tmp_path: Path) -> None:
    verdict, _ = record(tmp_path, refs_path=str(write_refs(tmp_path)), world=ATTACKER)
    assert checks(verdict)["tdx.app"] == ("fail", "app_id_not_allowed") and verdict["status"] == "fail"
    assert checks(verdict)["tdx.quote"] == ("pass", None)  # genuine hardware: only the identity is wrong
    assert verdict["trust_vector"]["executables"]["tier"] == "contraindicated"
    assert verdict["trust_vector"]["hardware"]["tier"] == "affirming"


def test_an_attackers_app_with_nothing_pinned_is_never_a_silent_pass(tmp_path: Path) -> None:
    verdict, _ = record(tmp_path, refs_path=str(write_refs(tmp_path, app=False, boot_chain=False)), world=ATTACKER)
    assert verdict["status"] == "indeterminate"
    assert checks(verdict)["tdx.app"] == ("indeterminate", "identity_not_pinned")
    assert "app identity (app id or compose hash) of model 'sim/echo-1' is not pinned" in message(verdict, "tdx.app")


def test_a_pinned_mrtd_that_differs_fails_the_boot_chain(tmp_path: Path) -> None:
    verdict, _ = record(tmp_path, refs_path=str(write_refs(tmp_path, mrtd="ab" * 48)))
    assert checks(verdict)["tdx.measurements"] == ("fail", "boot_chain_not_allowed") and verdict["status"] == "fail"


def test_a_policy_allow_listed_mrtd_that_differs_fails_even_without_refs(tmp_path: Path) -> None:
    policy = tmp_path / "mrtd.toml"
    policy.write_text(f'[policy]\nid = "mrtd"\n[tdx]\nallowed_mrtd = ["{"cd" * 48}"]\n')
    verdict, _ = record(tmp_path, policy_path=str(policy))
    assert checks(verdict)["tdx.measurements"] == ("fail", "measurement_not_allowed") and verdict["status"] == "fail"


def test_a_pinned_app_over_an_unpinned_boot_chain_names_the_boot_chain(tmp_path: Path) -> None:
    verdict, _ = record(tmp_path, refs_path=str(write_refs(tmp_path, boot_chain=False)))
    assert checks(verdict)["tdx.app"] == ("pass", None)
    assert checks(verdict)["tdx.measurements"] == ("indeterminate", "identity_not_pinned")
    assert "the boot chain (MRTD, RTMR0-2) of model 'sim/echo-1' is not pinned" in message(verdict, "tdx.measurements")
    assert verdict["status"] == "indeterminate"


def test_an_explicitly_insecure_policy_may_accept_unpinned_software_and_says_so(tmp_path: Path) -> None:
    verdict, _ = record(
        tmp_path,
        refs_path=str(write_refs(tmp_path, app=False, boot_chain=False)),
        policy_path=str(Path(__file__).parent.parent / "policies" / "any-software-INSECURE.toml"),
    )
    assert verdict["status"] == "pass"
    assert "NOT pinned" in message(verdict, "tdx.app")
    assert verdict["trust_vector"]["executables"]["tier"] == "warning"
    assert verdict["subject"]["model_binding"]["by"] == ["nothing"]


def test_a_dev_os_image_is_reported_and_a_policy_can_require_a_production_image(tmp_path: Path) -> None:
    world = SimulatorWorld()
    refs = write_refs(tmp_path)
    refs.write_text(
        refs.read_text() + f'[[models."*".os_image]]\nhash = "{world.identity.os_image_hash.hex()}"\n'
        'dev = true\nsource = "manual: reviewed image metadata"\nadded_at = 1790000000\n'
    )
    (tmp_path / "a").mkdir(), (tmp_path / "s").mkdir()
    advisory, _ = record(tmp_path / "a", refs_path=str(refs))
    assert checks(advisory)["tdx.os_image"] == ("fail", "dev_os_image") and advisory["status"] == "pass"
    assert advisory["trust_vector"]["configuration"]["tier"] == "warning"
    policy = tmp_path / "prod-image.toml"
    policy.write_text('[policy]\nid = "prod-image"\n[checks]\n"tdx.os_image" = "required"\n')
    strict, _ = record(tmp_path / "s", refs_path=str(refs), policy_path=str(policy))
    assert strict["status"] == "fail"


@pytest.fixture()
def gateway_url() -> Any:
    with serving(SimulatedGateway(SimulatorWorld(), SimulatorConfig()).app()) as url:
        yield url


def test_pull_then_pin_the_boot_chain_from_a_reviewed_verdict_then_verify(tmp_path: Path, gateway_url: str) -> None:
    refs = tmp_path / "refs.toml"
    out = CliRunner().invoke(main, ["refs", "pull", "--gateway", gateway_url, "--refs", str(refs), "--yes"])
    assert out.exit_code == 0, out.output
    assert "trust on first use" in out.output.lower()
    pulled = load_refs(refs).for_model("sim/echo-1")
    assert pulled.app_ids and pulled.apps[0].provenance.kind == "gateway" and not pulled.boot_chains

    for sub in ("1", "2", "3"):
        (tmp_path / sub).mkdir()
    only_app, _ = record(tmp_path / "1", refs_path=str(refs))  # app pinned by the pull, boot chain not yet
    assert checks(only_app)["tdx.app"] == ("pass", None)
    assert checks(only_app)["tdx.measurements"] == ("indeterminate", "identity_not_pinned")

    out = CliRunner().invoke(
        main,
        [
            "refs",
            "add",
            "--from-verdict",
            only_app["id"],
            "--db",
            str(tmp_path / "1" / "verifier.db"),
            "--refs",
            str(refs),
            "--force",
        ],
    )
    assert out.exit_code == 0, out.output
    assert load_refs(refs).for_model("sim/echo-1").boot_chains

    passing, _ = record(tmp_path / "2", refs_path=str(refs))
    assert passing["status"] == "pass", checks(passing)
    attacker, _ = record(tmp_path / "3", refs_path=str(refs), world=ATTACKER)
    assert checks(attacker)["tdx.app"] == ("fail", "app_id_not_allowed")


def test_the_demo_can_show_how_an_unpinned_model_is_reported() -> None:
    out = CliRunner().invoke(main, ["demo", "--unpinned", "--json"])
    verdict = json.loads(out.output)
    assert out.exit_code == 3 and verdict["status"] == "indeterminate"
    assert checks(verdict)["tdx.app"] == ("indeterminate", "identity_not_pinned")
    assert verdict["subject"]["model"] == "sim/plain-1"
