"""`verifier demo`: the simulator and the service on loopback, one verification end to end."""

from __future__ import annotations

import asyncio

import click

from verifier.cli.options import emit


@click.command()
@click.option("--format", "report_format", type=click.Choice(["phala_flat", "near_two_layer", "aci_legacy"]), default="phala_flat",
              show_default=True, help="Report format the simulated gateway serves.")
@click.option("--signing-algo", type=click.Choice(["ecdsa", "ed25519"]), default="ecdsa", show_default=True)
@click.option("--stream/--no-stream", default=True, show_default=True, help="Stream the completion (SSE).")
@click.option("--json", "as_json", is_flag=True)
def demo(report_format: str, signing_algo: str, stream: bool, as_json: bool) -> None:
    """Start the simulator and the service on loopback and verify one completion end to end."""
    from verifier.demo import run_demo  # the demo wires the simulator: an edge, never the core

    (result,) = asyncio.run(run_demo(report_format=report_format, signing_algo=signing_algo, stream=stream))
    if result.http_status != 201:
        raise click.ClickException(f"the verifier answered {result.http_status}: {result.verdict}")
    if not as_json:
        click.echo(f"simulated gateway {result.gateway_url}; verifier service {result.service_url}")
        click.echo(f"verdict recorded in {result.db_path} — try: verifier show {result.verdict.get('id')} --db {result.db_path}")
    emit(result.verdict, as_json)
