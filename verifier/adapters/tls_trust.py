"""Which CAs upstream TLS is verified against: the system store, or exactly those of ``--ca-file``.

One SSL context for every upstream session (gateway, Intel PCS/PCCS, NRAS; the proxy's relay and channels; the
verifier worker processes). Certificate and hostname verification are never switched off: a loopback simulator is
trusted by naming its test CA (``verifier simulator --tls`` writes it), not by skipping the check.
"""

from __future__ import annotations

import ssl

from verifier.core.errors import ConfigError


def upstream_ssl_context(ca_file: str | None) -> ssl.SSLContext | None:
    """Verification against exactly the CAs of ``ca_file`` (None: aiohttp's default, the system store)."""
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"ca_file {ca_file}: cannot load CA certificates ({exc})") from None


def connector_ssl(context: ssl.SSLContext | None) -> ssl.SSLContext | bool:
    """What ``aiohttp.TCPConnector(ssl=...)`` takes: the context, or True (default verification)."""
    return context if context is not None else True
