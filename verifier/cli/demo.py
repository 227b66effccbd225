"""`verifier demo`: the simulator and the service on loopback, one verification end to end."""

from __future__ import annotations

import asyncio

import click

from verifier.cli.options import emit


@click.command()
@click.option(
    "--format",
    "report_format",
    type=click.Choice(["phala_flat", "near_two_layer", "aci_legacy"]),
    default="phala_flat",
    show_default=True,
    help="Report format the simulated gateway serves.",
)
@click.option("--signing-algo", type=click.Choice(["ecdsa", "ed25519"]), default="ecdsa", show_default=True)
@click.option("--stream/--no-stream", default=True, show_default=True, help="Stream the completion (SSE).")
@click.option(
    "--unpinned",
    is_flag=True,
    help="Verify a model the simulator's refs do not pin (sim/plain-1): shows how unpinned software is reported.",
)
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--serve",
    "serve_dashboard",
    is_flag=True,
    help="Keep the simulator and the service up (a few passes and failures recorded) for the dashboard, "
    "until Ctrl-C; prints its URL and a read key.",
)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="With --serve: the port.")
@click.option(
    "--tls",
    is_flag=True,
    help="Serve the simulated gateway over loopback TLS with TLS-fingerprint reports: shows tls.binds_peer (the "
    "service fetches the report itself, so the binding covers its report connection).",
)
def demo(
    report_format: str,
    signing_algo: str,
    stream: bool,
    unpinned: bool,
    as_json: bool,
    serve_dashboard: bool,
    port: int,
    tls: bool,
) -> None:
    """Start the simulator and the service on loopback and verify one completion end to end."""
    from verifier.demo import run_demo  # the demo wires the simulator: an edge, never the core
    from verifier.simulator.gateway import SimulatorConfig

    if serve_dashboard:
        asyncio.run(_serve_dashboard(port))
        return

    model = "sim/plain-1" if unpinned else "sim/echo-1"
    config = SimulatorConfig(report_format=report_format, three_part_text=report_format == "near_two_layer", tls=tls)
    (result,) = asyncio.run(run_demo(config=config, signing_algo=signing_algo, stream=stream, model=model))
    if result.http_status != 201:
        raise click.ClickException(f"the verifier answered {result.http_status}: {result.verdict}")
    if not as_json:
        click.echo(f"simulated gateway {result.gateway_url}; verifier service {result.service_url}")
        click.echo(
            f"verdict recorded in {result.db_path} — try: verifier show {result.verdict.get('id')} --db "
            f"{result.db_path}"
        )
        if unpinned:
            click.echo(f"{model} is not pinned by the simulator's reference values: its verdict cannot be a pass")
    emit(result.verdict, as_json)


async def _serve_dashboard(port: int) -> None:
    from verifier.demo import serving_demo

    async with serving_demo(port=port) as running:
        statuses = ", ".join(str(v.get("status")) for v in running.verdicts)
        click.echo(f"simulated gateway {running.gateway_url}; ledger {running.db_path} ({statuses})")
        click.echo(f"dashboard: {running.service_url}/ui/  — log in with this read key (shown once):")
        click.echo(running.read_key)
        click.echo("Ctrl-C stops the demo.")
        await asyncio.Event().wait()  # Ctrl-C cancels this; leaving the block stops the service and the simulator
