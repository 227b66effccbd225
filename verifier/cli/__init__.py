"""Command line entry point: a group whose commands are imported only when they run.

``verifier --version`` and ``verifier --help`` import click and nothing else: each command's module
(and with it the crypto stack, aiohttp, dcap-qvl's pool) is imported on first use. Exit codes
everywhere: 0 pass, 2 fail, 3 indeterminate, 1 usage error or unreadable input.
"""

from __future__ import annotations

import importlib
import sys

import click

from verifier import __version__

# name -> (module under verifier.cli, attribute, one-line help shown by `verifier --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("demo", "demo", "Start the simulator and the service on loopback and verify one completion end to end."),
    "verify": (
        "service",
        "verify",
        "Verify one completion against its gateway: signature, fresh-nonce report, TDX, GPU.",
    ),
    "verify-bundle": ("offline", "verify_bundle", "Verify an evidence bundle (a directory or .zip) offline."),
    "serve": ("service", "serve", "Run the HTTP API."),
    "show": ("ledger", "show", "Show a recorded verdict."),
    "list": ("ledger", "list_cmd", "List recorded verdicts, newest first."),
    "export": ("ledger", "export", "Export a verdict's evidence bundle (zip) for `verifier verify-bundle`."),
    "reverify": ("jobs", "reverify", "Re-evaluate recorded evidence (one verdict, or a batch job: --all / --where)."),
    "policy": ("offline", "policy_group", "Policy files."),
    "refs": (
        "refs",
        "refs_group",
        "Reference values: pull a gateway's app ids, pin a reviewed verdict, detect drift, show.",
    ),
    "keys": ("keys", "keys_group", "API keys for the HTTP API: create (shown once), list, revoke."),
    "ledger": ("ledger_check", "ledger_group", "The ledger file: `ledger check` re-hashes every blob and reference."),
    "ear": ("ear", "ear_group", "EAT Attestation Results: `ear verify TOKEN --jwks FILE|URL`, `ear rotate-key`."),
    "log": (
        "log",
        "log_group",
        "The transparency log of verdicts: `log verify` checks inclusion and consistency offline.",
    ),
    "proxy": ("proxy", "proxy", "Relay OpenAI-style chat completions to one gateway and verify every one."),
    "simulator": (
        "simulator",
        "simulator",
        "Run the simulated gateway (with its PCCS and NRAS) on its own, for trying the API.",
    ),
    "jobs": ("jobs", "jobs_group", "Batch re-verification jobs: list, show, resume, cancel."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"verifier.cli.{entry[0]}")
        command: click.Command = getattr(module, entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_text) for name, (_m, _a, help_text) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="verifier")
def main() -> None:
    """Verify that confidential-AI chat completions came from genuine TEE hardware."""


def run() -> None:
    """Console entry point: usage errors exit 1 (click's default 2 would read as a `fail` verdict)."""
    try:
        main.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
