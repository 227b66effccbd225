"""`verifier simulator`: the simulated gateway (with its PCCS and NRAS routes) on its own, for trying the API."""

from __future__ import annotations

import click

from verifier.cli.service import listen
from verifier.simulator.gateway import FAULTS, FORMATS

_FAULT_HELP = "\b\nFaults (--fault NAME, repeatable):\n" + "\n".join(
    f"  {name:<24}{what}" for name, what in FAULTS.items()
)


def trusting_commands(url: str) -> tuple[str, str]:
    """The `serve` and `proxy` command lines that trust this simulator (its PKI, PCCS and NRAS)."""
    common = f"--trust simulator --pcs-url {url} --pccs --nras-url {url}"
    return (f"verifier serve {common} --allow-gateway {url}", f"verifier proxy {common} --gateway {url}")


@click.command(epilog=_FAULT_HELP)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--format",
    "report_format",
    type=click.Choice(FORMATS),
    default="phala_flat",
    show_default=True,
    help="Report format served (near_two_layer signs model:req:resp texts).",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    type=click.Choice(sorted(FAULTS)),
    metavar="NAME",
    help="Misbehave this way (repeatable; the names are listed below).",
)
def simulator(host: str, port: int, report_format: str, faults: tuple[str, ...]) -> None:
    """Run the simulated gateway (with its PCCS and NRAS) on its own, for trying the API.

    It answers chat completions (model sim/echo-1 echoes the last message), signatures and nonce-bound
    attestation reports signed by a test PKI that only `--trust simulator` accepts. Any API key is accepted.
    """
    from aiohttp import web

    from verifier.simulator import SimulatorWorld
    from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig

    config = SimulatorConfig(
        report_format=report_format, three_part_text=report_format == "near_two_layer", faults=frozenset(faults)
    )
    gateway = SimulatedGateway(SimulatorWorld(), config)
    sock = listen(host, port)
    url = f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}"
    serve_cmd, proxy_cmd = trusting_commands(url)
    click.echo(f"simulated gateway ({report_format}{', faults ' + ', '.join(faults) if faults else ''})")
    click.echo(f"listening on {url}")
    click.echo(f"verify through the HTTP API:  {serve_cmd}")
    click.echo(f"or through the proxy:         {proxy_cmd}")
    web.run_app(gateway.app(), sock=sock, print=None, access_log=None)
