"""A throwaway certificate authority for the simulator's HTTPS listener.

Some clients refuse plain HTTP (the `pagerduty` package's `EventsApiV2Client` rejects any
base URL that is not `https://`), so the simulator also listens with TLS. The CA is made
fresh by `trustme` at every start and lives only as long as the simulator; clients trust it
through the PEM file at `ca_path` (`verify=ca_path`, `ssl.create_default_context(cafile=...)`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

# The names the server certificate is valid for: the simulator only ever listens on loopback.
SERVER_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True, slots=True)
class TLSMaterial:
    server_context: ssl.SSLContext
    ca_path: Path


def make_tls(directory: Path) -> TLSMaterial:
    """Make a CA and a loopback server certificate; write the CA's PEM into `directory`."""
    ca = trustme.CA()
    cert = ca.issue_cert(*SERVER_NAMES)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    ca_path = directory / "sim-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return TLSMaterial(server_context, ca_path)


def client_context(ca_path: Path | str) -> ssl.SSLContext:
    """An SSL context for clients (aiohttp, urllib) that trusts only the simulator's CA."""
    return ssl.create_default_context(cafile=str(ca_path))
