"""``zapflow nats``: the NATS identities of a deployment and the server configuration they need.

``identities DIR`` creates (or keeps) one NKey seed per service and one for ``admin`` in ``DIR``
(files ``<name>.nk``, mode 0600) and prints their public keys; the seeds go into each service's
Secret, the public keys into the server's environment. ``auth-config`` prints the
``authorization`` block nats-server needs, computed from the contracts (``--env-refs``: public
keys read from ``ZF_<IDENTITY>_NATS_NKEY`` variables, the form checked in as
``deploy/k8s/base/nats/auth.conf``; ``--check FILE`` fails when that file is out of date).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zapflow.runtime import natsauth

app = typer.Typer(no_args_is_help=True)


@app.command()
def identities(directory: Path) -> None:
    """Create the identities missing in DIRECTORY and print every public key."""
    ids = natsauth.Identities.load_or_create(directory)
    for name, key in ids.public_keys().items():
        typer.echo(f"{natsauth.public_key_env(name)}={key}")


EnvRefs = Annotated[
    bool, typer.Option("--env-refs", help="Refer to public keys through environment variables.")
]
FromDirectory = Annotated[
    Path | None,
    typer.Option("--identities", help="Use the public keys of the identities in this directory."),
]
Check = Annotated[Path | None, typer.Option(help="Fail if this file differs from the output.")]


@app.command("auth-config")
def auth_config(
    env_refs: EnvRefs = False, directory: FromDirectory = None, check: Check = None
) -> None:
    """Print nats-server's authorization block for the identities."""
    if env_refs == (directory is not None):
        typer.echo("error: give exactly one of --env-refs and --identities", err=True)
        raise typer.Exit(2)
    if directory is not None:
        text = natsauth.Identities.load_or_create(directory).authorization_config()
    else:
        text = natsauth.authorization_config()
    if check is None:
        typer.echo(text, nl=False)
        return
    if not check.exists() or check.read_text() != text:
        typer.echo(
            f"{check} is out of date: zapflow nats auth-config --env-refs > {check}", err=True
        )
        raise typer.Exit(1)
