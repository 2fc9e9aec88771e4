"""Evolution API v2 wire format, ``sendText`` only: request, 201 answer, errors and webhooks.

Shapes follow ``shared/providers/evolution``: the answer is the stored message
``{key{remoteJid, fromMe, id}, pushName, status: "PENDING", message{conversation}, …}``, errors
``{"status", "error", "response": {"message"}}``. Webhooks are unsigned (Evolution signs nothing);
the envelope carries the instance ``apikey`` when the number has one, which is what the gateway
checks. Statuses map ``sent`` → ``SERVER_ACK``, ``delivered`` → ``DELIVERY_ACK``, ``read`` →
``READ``, ``failed`` → ``ERROR``.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from zapflow.simulator.config import NumberConfig
from zapflow.simulator.wire import (
    Accepted,
    JsonDict,
    SendCall,
    StatusName,
    WebhookItem,
    WireError,
)

MAX_DELAY_MS: Final = 30_000.0
_STATUS: Final[dict[StatusName, str]] = {
    "sent": "SERVER_ACK",
    "delivered": "DELIVERY_ACK",
    "read": "READ",
    "failed": "ERROR",
}


def error(status: int, label: str, message: str | list[Any]) -> WireError:
    body: JsonDict = {"status": status, "error": label, "response": {"message": message}}
    return WireError(status, body, reason=f"evolution {status}")


def unauthorized() -> WireError:
    return error(401, "Unauthorized", "Unauthorized")


def unknown_instance(instance: str) -> WireError:
    return error(404, "Not Found", [f'The "{instance}" instance does not exist'])


def server_error() -> WireError:
    return error(500, "Internal Server Error", ["Simulated failure"])


def parse_send_text(data: Any) -> SendCall:
    if not isinstance(data, dict):
        raise error(400, "Bad Request", ["request body must be a JSON object"])
    number, text = data.get("number"), data.get("text")
    if not isinstance(number, str) or not number:
        raise error(400, "Bad Request", ['instance requires property "number"'])
    if not isinstance(text, str) or not text:
        raise error(400, "Bad Request", ['instance requires property "text"'])
    digits = number.split("@", 1)[0]
    if not re.fullmatch(r"\d{8,15}", digits):
        raise error(400, "Bad Request", [{"jid": number, "exists": False, "number": number}])
    delay = data.get("delay", 0)
    quoted = data.get("quoted")
    key = quoted.get("key") if isinstance(quoted, dict) else None
    reply_to = key.get("id") if isinstance(key, dict) else None
    content: JsonDict = {"type": "text", "text": {"body": text}}
    if isinstance(reply_to, str):
        content["context"] = {"message_id": reply_to}
    return SendCall(
        to=number,
        wa_id=digits,
        type="text",
        content=content,
        reply_to=reply_to if isinstance(reply_to, str) else None,
        delay_ms=min(float(delay), MAX_DELAY_MS) if isinstance(delay, int | float) else 0.0,
    )


def new_message_id(rng: random.Random) -> str:
    """A Baileys-style message id: ``3EB0`` and 18 upper-case hex digits."""
    return "3EB0" + "".join(rng.choices("0123456789ABCDEF", k=18))


def instance_id(number: NumberConfig) -> str:
    """A stable uuid of the instance, as Evolution's ``instanceId``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"zapflow-simulator:{number.key}"))


def _jid(digits: str) -> str:
    return f"{digits}@s.whatsapp.net"


def send_answer(accepted: Accepted) -> JsonDict:
    call = accepted.call
    body = call.content["text"]["body"]
    answer: JsonDict = {
        "key": {"remoteJid": _jid(call.wa_id), "fromMe": True, "id": accepted.message_id},
        "pushName": "Você",
        "status": "PENDING",
        "message": {"conversation": body},
        "messageType": "conversation",
        "messageTimestamp": int(accepted.accepted_at.timestamp()),
        "instanceId": instance_id(accepted.number),
        "source": "web",
    }
    if call.reply_to is not None:
        answer["contextInfo"] = {"stanzaId": call.reply_to}
    return answer


def _date_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EvolutionWebhooks:
    """Evolution's ``messages.update`` / ``messages.upsert`` webhooks; one event per POST."""

    batchable = False

    def status_item(
        self, accepted: Accepted, status: StatusName, at: datetime, *, error_code: int = 0
    ) -> WebhookItem:
        del error_code  # Evolution's ERROR status carries no code
        data: JsonDict = {
            "keyId": accepted.message_id,
            "remoteJid": _jid(accepted.call.wa_id),
            "fromMe": True,
            "status": _STATUS[status],
            "instanceId": instance_id(accepted.number),
            "messageId": f"sim{accepted.seq:022d}",
        }
        return WebhookItem("status", data | {"_at": _date_time(at)})

    def reply_item(
        self, accepted: Accepted, text: str, name: str, at: datetime, rng: random.Random
    ) -> WebhookItem:
        data: JsonDict = {
            "key": {
                "remoteJid": _jid(accepted.call.wa_id),
                "fromMe": False,
                "id": new_message_id(rng),
            },
            "pushName": name,
            "status": "DELIVERY_ACK",
            "message": {"conversation": text},
            "contextInfo": {"stanzaId": accepted.message_id},
            "messageType": "conversation",
            "messageTimestamp": int(at.timestamp()),
            "instanceId": instance_id(accepted.number),
            "source": "android",
        }
        return WebhookItem("message", data | {"_at": _date_time(at)})

    def encode(
        self, number: NumberConfig, items: Sequence[WebhookItem]
    ) -> tuple[bytes, dict[str, str]]:
        (item,) = items
        data = {k: v for k, v in item.data.items() if k != "_at"}
        doc = {
            "event": "messages.update" if item.kind == "status" else "messages.upsert",
            "instance": number.instance,
            "data": data,
            "destination": "",
            "date_time": item.data["_at"],
            "sender": _jid(number.display_phone_number),
            "server_url": "http://127.0.0.1",
            "apikey": number.api_key.get_secret_value() if number.api_key else None,
        }
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        return body, {"Content-Type": "application/json"}
