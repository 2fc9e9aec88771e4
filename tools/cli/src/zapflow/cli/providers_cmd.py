"""``zapflow providers …``: run recorded or captured provider payloads through the adapters.

``zapflow providers parse <provider> <file>`` prints the business channel the body names first, one
``{"event": "receiving", "account": …, "phone": …, "name": …}`` line per receiving identity (Meta
``phone_number_id`` and display number, Evolution instance and owner number, Z-API instance id and
connected number, WuzAPI user id and instance name), then every canonical event of the body as a
JSON line: ``{"event": "message"|"status"|"edit"|"revoke"|"contact", …fields}``, then one
``{"event": "ignored", "reason": …}`` line per item the adapter deliberately dropped. An invalid
body prints the reason on stderr and exits with status 2.

WuzAPI form mode: its default webhook body is ``application/x-www-form-urlencoded`` with a
``jsonData`` field. The shared fixtures (``*_form.json``) store the *decoded* form fields as a
JSON object; such a file (a JSON object whose ``jsonData`` is a string) is re-encoded into the
url-encoded body WuzAPI sends (keys sorted, like Go's ``url.Values.Encode``) and parsed as a form.
A file that already holds the raw url-encoded body is parsed as it is when ``--content-type`` says
form.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import typer

from zapflow.providers import PROVIDERS, get_adapter
from zapflow.providers.errors import WebhookPayloadError

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"

app = typer.Typer(help="Provider adapters: parse webhook payloads.", no_args_is_help=True)


@app.callback()
def providers() -> None:
    """Work with provider wire formats (Meta, Evolution, Z-API, WuzAPI)."""


def _decoded_form_fields(body: bytes) -> dict[str, str] | None:
    """The fields of a JSON file that holds decoded form fields (``jsonData`` as a string)."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("jsonData"), str):
        return None
    return {
        str(key): value if isinstance(value, str) else json.dumps(value)
        for key, value in data.items()
    }


def prepare_body(provider: str, body: bytes, content_type: str | None) -> tuple[bytes, str]:
    """The wire body and content type to parse, re-encoding decoded WuzAPI form fields."""
    wants_form = content_type is None or content_type.split(";", 1)[0].strip().lower() == FORM_TYPE
    fields = _decoded_form_fields(body) if provider == "wuzapi" and wants_form else None
    if fields is not None:
        return urllib.parse.urlencode(sorted(fields.items())).encode(), FORM_TYPE
    return body, content_type or JSON_TYPE


@app.command()
def parse(
    provider: Annotated[str, typer.Argument(help=f"One of: {', '.join(PROVIDERS)}.")],
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Webhook body.")
    ],
    content_type: Annotated[
        str | None,
        typer.Option(
            "--content-type",
            help="Body content type (default: JSON, or form for decoded WuzAPI form fields).",
        ),
    ] = None,
    channel_phone: Annotated[
        str | None,
        typer.Option("--channel-phone", help="Business number; items for others are ignored."),
    ] = None,
) -> None:
    """Print each canonical event of one webhook body as a JSON line."""
    if provider not in PROVIDERS:
        raise typer.BadParameter(f"unknown provider; choose from {', '.join(PROVIDERS)}")
    body, media_type = prepare_body(provider, file.read_bytes(), content_type)
    try:
        parsed = get_adapter(provider).parse_webhook(body, media_type, channel_phone=channel_phone)
    except WebhookPayloadError as exc:
        typer.echo(f"error: {exc.reason}", err=True)
        raise typer.Exit(code=2) from exc
    for identity in parsed.receiving:
        typer.echo(json.dumps({"event": "receiving", **identity.as_dict()}))
    for name, item in parsed.events():
        line = {"event": name, **item.model_dump(mode="json")}
        typer.echo(json.dumps(line, ensure_ascii=False))
    for reason in parsed.ignored:
        typer.echo(json.dumps({"event": "ignored", "reason": reason}))
