"""`vmimages certs`: development TLS certificates."""

from __future__ import annotations

from pathlib import Path

import click

from vmimages.certs import create_dev_certificates
from vmimages.cli import main


@main.group()
def certs() -> None:
    """Development TLS certificates (the SDKs speak https by default; zeno only https)."""


@certs.command("create")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write ca.pem, server.pem and the keys into.",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="A name or address clients use for the server (repeatable).  [default: localhost,"
    " 127.0.0.1]",
)
def certs_create(out: Path, hosts: tuple[str, ...]) -> None:
    """Make a development CA and a server certificate it signs, for `serve --tls-cert`."""
    names = list(hosts) or ["localhost", "127.0.0.1"]
    made = create_dev_certificates(out, names)
    click.echo(f"""Made a development CA and a certificate for {", ".join(names)} in {out}:
  CA (clients trust it): {made.ca}
  server:                {made.cert}
  server key:            {made.key}  (mode 0600)

Serve https with it:
  vmimages serve --tls-cert {made.cert} --tls-key {made.key}

Trust it from
  the Python SDK:  Config(domain="{names[0]}:8080", certification="{made.ca}")
  the Go SDK:      SSL_CERT_FILE={made.ca} go run ...   (with cfg.Domain = "{names[0]}:8080")
  zeno:            SSL_CERT_FILE={made.ca} zeno ...
  curl:            curl --cacert {made.ca} https://{names[0]}:8080/api/v2/vm ...""")
