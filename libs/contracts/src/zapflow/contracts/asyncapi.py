"""AsyncAPI 3.0 document of every Zapflow subject, message and operation.

One channel per type (address = subject with ``{tenant}``/``{channel}``/``{service}`` parameters),
one message per model (payload = its JSON Schema), ``send`` operations for the producers
(``registry.PRODUCERS``) and ``receive`` operations for the services whose durable consumers read
it (``streams.ALL_CONSUMERS``).

    python -m zapflow.contracts.asyncapi docs/asyncapi.json           # write
    python -m zapflow.contracts.asyncapi docs/asyncapi.json --check   # fail if out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from pydantic.json_schema import models_json_schema

from zapflow.contracts import headers
from zapflow.contracts.envelope import Event
from zapflow.contracts.registry import PRODUCERS, REGISTRY
from zapflow.contracts.routing import consumers_for, stream_for
from zapflow.contracts.subjects import subject_params

_PARAMETERS: Final = {
    "tenant": "Tenant id (lowercase subject token).",
    "channel": "Channel id within the tenant; the stream may add a partition token after it.",
    "service": "Service that dead-lettered the message.",
}

_HEADERS_SCHEMA: Final = {
    "type": "object",
    "title": "ZfHeaders",
    "properties": {
        headers.NATS_MSG_ID: {"type": "string", "description": "Envelope id (de-duplication)."},
        headers.ZF_TYPE: {"type": "string", "description": "Event type."},
        headers.ZF_TENANT: {"type": "string", "description": "Tenant id."},
        headers.ZF_CORRELATION_ID: {"type": "string", "description": "Correlation id."},
        headers.CONTENT_TYPE: {"type": "string", "const": headers.JSON},
        headers.TRACEPARENT: {"type": "string", "description": "W3C trace context."},
        headers.TRACESTATE: {"type": "string", "description": "W3C trace state."},
    },
    "required": [headers.NATS_MSG_ID, headers.ZF_TYPE, headers.ZF_TENANT],
}


def channel_id(type_name: str) -> str:
    """AsyncAPI channel key of a type: its dots made underscores."""
    return type_name.replace(".", "_")


def _summary(model: type[Event]) -> str:
    return (model.__doc__ or model.__name__).strip().splitlines()[0]


def _operations(type_name: str, model: type[Event]) -> dict[str, dict[str, Any]]:
    key = channel_id(type_name)
    base = {
        "channel": {"$ref": f"#/channels/{key}"},
        "messages": [{"$ref": f"#/channels/{key}/messages/{model.__name__}"}],
    }
    operations: dict[str, dict[str, Any]] = {}
    for producer in PRODUCERS[type_name]:
        operations[f"{producer}__send__{key}"] = {
            "action": "send",
            **base,
            "summary": f"{producer} publishes {type_name}",
        }
    receivers: dict[str, list[str]] = {}
    for consumer in consumers_for(type_name):
        receivers.setdefault(consumer.owner, []).append(consumer.durable)
    for owner, durables in receivers.items():
        operations[f"{owner}__receive__{key}"] = {
            "action": "receive",
            **base,
            "summary": f"{owner} consumes {type_name}",
            "x-zf-durables": list(dict.fromkeys(durables)),
        }
    return operations


def build_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, as plain JSON-compatible data."""
    models = sorted(REGISTRY.items())
    refs, definitions = models_json_schema(
        [(model, "validation") for _, model in models],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = {**definitions.get("$defs", {}), "ZfHeaders": _HEADERS_SCHEMA}
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for type_name, model in models:
        key, params = channel_id(type_name), subject_params(model)
        channels[key] = {
            "address": ".".join((type_name, *(f"{{{p}}}" for p in params))),
            "title": type_name,
            "description": f"{_summary(model)} Stored in {stream_for(type_name).name}.",
            "parameters": {p: {"description": _PARAMETERS[p]} for p in params},
            "messages": {model.__name__: {"$ref": f"#/components/messages/{model.__name__}"}},
        }
        messages[model.__name__] = {
            "name": type_name,
            "title": model.__name__,
            "summary": _summary(model),
            "contentType": headers.JSON,
            "headers": {"$ref": "#/components/schemas/ZfHeaders"},
            "payload": refs[(model, "validation")],
        }
        operations.update(_operations(type_name, model))
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Zapflow events",
            "version": _version(),
            "description": "Versioned contracts between Zapflow services on NATS JetStream.",
        },
        "defaultContentType": headers.JSON,
        "servers": {
            "local": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "nats-server started by `make run` (JetStream enabled).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _version() -> str:
    try:
        return metadata.version("zapflow-contracts")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def render(document: dict[str, Any]) -> str:
    """Stable JSON text of the document, with a trailing newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the document to a path, or ``--check`` that it is up to date."""
    parser = argparse.ArgumentParser(prog="python -m zapflow.contracts.asyncapi")
    parser.add_argument("path", type=Path, nargs="?", default=Path("docs/asyncapi.json"))
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    text = render(build_document())
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.is_file() else ""
        if current != text:
            sys.stderr.write(f"{args.path} is out of date\n")
            return 1
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {args.path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
