"""`verifier simulator`: the simulated gateway (with its PCCS and NRAS routes) on its own, for trying the API."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from verifier.cli.service import listen
from verifier.simulator.gateway import FAULTS, FORMATS

_FAULT_HELP = "\b\nFaults (--fault NAME, repeatable):\n" + "\n".join(
    f"  {name:<24}{what}" for name, what in FAULTS.items()
)


def trusting_commands(url: str, ca_file: str | None = None) -> tuple[str, str]:
    """The `serve` and `proxy` command lines that trust this simulator (its PKI, PCCS and NRAS, its TLS CA)."""
    common = f"--trust simulator --pcs-url {url} --pccs --nras-url {url}" + (f" --ca-file {ca_file}" if ca_file else "")
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
@click.option(
    "--tls",
    is_flag=True,
    help="Serve over loopback TLS (a test CA, one certificate per replica); TLS-layout reports on request.",
)
@click.option(
    "--tls-replicas",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="With --tls: replicas behind the one listener, each with its own TLS key (round robin per connection).",
)
@click.option(
    "--ca-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --tls: write the test CA certificate here (default: a new temporary file); pass it as --ca-file.",
)
def simulator(
    host: str,
    port: int,
    report_format: str,
    faults: tuple[str, ...],
    tls: bool,
    tls_replicas: int,
    ca_out: Path | None,
) -> None:
    """Run the simulated gateway (with its PCCS and NRAS) on its own, for trying the API.

    It answers chat completions (model sim/echo-1 echoes the last message), signatures and nonce-bound
    attestation reports signed by a test PKI that only `--trust simulator` accepts. Any API key is accepted.
    With --tls it serves https with a test CA that clients must trust explicitly (--ca-file).
    """
    from aiohttp import web

    from verifier.simulator import SimulatorWorld
    from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig

    try:
        config = SimulatorConfig(
            report_format=report_format,
            three_part_text=report_format == "near_two_layer",
            faults=frozenset(faults),
            tls=tls,
            tls_replicas=tls_replicas,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    gateway = SimulatedGateway(SimulatorWorld(), config)
    ca_file = None
    if gateway.tls is not None:
        target = ca_out or Path(tempfile.mkdtemp(prefix="verifier-sim-")) / "simulator-ca.pem"
        try:
            ca_file = str(gateway.tls.write_ca(target))
        except OSError as exc:
            raise click.ClickException(f"cannot write {target}: {exc.strerror}") from None
    sock = listen(host, port)
    scheme = "https" if tls else "http"
    url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}"
    serve_cmd, proxy_cmd = trusting_commands(url, ca_file)
    click.echo(f"simulated gateway ({report_format}{', faults ' + ', '.join(faults) if faults else ''})")
    click.echo(
        f"listening on {url}" + (f" (TLS, {len(gateway.tls.replicas)} replica(s), CA {ca_file})" if gateway.tls else "")
    )
    click.echo(f"verify through the HTTP API:  {serve_cmd}")
    click.echo(f"or through the proxy:         {proxy_cmd}")
    ssl_context = gateway.ssl_context() if tls else None
    web.run_app(gateway.app(), sock=sock, ssl_context=ssl_context, print=None, access_log=None)
