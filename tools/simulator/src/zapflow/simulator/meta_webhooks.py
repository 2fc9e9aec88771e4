"""Meta WhatsApp Cloud API webhooks: statuses and inbound messages, signed like Meta's.

``object: whatsapp_business_account`` bodies signed with
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>``. Raw bodies escape
non-ASCII as ``\\u00e9`` and ``/`` as ``\\/``, as Meta's do, so receivers must verify the bytes
they received, never re-serialised JSON. Several statuses of one number may share a POST.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from zapflow.simulator.config import NumberConfig
from zapflow.simulator.meta import new_message_id
from zapflow.simulator.wire import Accepted, JsonDict, StatusName, WebhookItem

SIGNATURE_HEADER: Final = "X-Hub-Signature-256"
_FAILURE_TITLES: Final = {
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
}


def _unix(at: datetime) -> str:
    return str(int(at.timestamp()))


def _conversation(accepted: Accepted) -> JsonDict:
    seed = f"{accepted.number.key}:{accepted.call.wa_id}:{accepted.accepted_at.date()}"
    category = "marketing" if accepted.call.type == "template" else "service"
    return {
        "conversation": {
            "id": hashlib.sha256(seed.encode()).hexdigest()[:32],
            "origin": {"type": category},
        },
        "pricing": {
            "billable": category != "service",
            "pricing_model": "PMP",
            "category": category,
            "type": "regular" if category != "service" else "free_customer_service",
        },
    }


def encode_json(doc: Any) -> bytes:
    """JSON the way Meta's raw webhook bodies look: compact, ``\\uXXXX`` and ``\\/`` escapes."""
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()


def signature(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value of ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class MetaWebhooks:
    """Meta's status and message webhooks (implements ``WebhookFormat``); batchable."""

    batchable = True

    def status_item(
        self, accepted: Accepted, status: StatusName, at: datetime, *, error_code: int = 0
    ) -> WebhookItem:
        item: JsonDict = {
            "id": accepted.message_id,
            "status": status,
            "timestamp": _unix(at),
            "recipient_id": accepted.call.wa_id,
        }
        if status in ("sent", "delivered"):
            item |= _conversation(accepted)
        if status == "failed":
            item["errors"] = [_failure(error_code)]
        if accepted.call.biz_opaque_callback_data is not None:
            item["biz_opaque_callback_data"] = accepted.call.biz_opaque_callback_data
        return WebhookItem("status", item)

    def reply_item(
        self, accepted: Accepted, text: str, name: str, at: datetime, rng: random.Random
    ) -> WebhookItem:
        wa_id = accepted.call.wa_id
        message: JsonDict = {
            "context": {"from": accepted.number.display_phone_number, "id": accepted.message_id},
            "from": wa_id,
            "id": new_message_id(wa_id, rng, inbound=True),
            "timestamp": _unix(at),
            "text": {"body": text},
            "type": "text",
        }
        return WebhookItem("message", message, contact={"profile": {"name": name}, "wa_id": wa_id})

    def encode(
        self, number: NumberConfig, items: Sequence[WebhookItem]
    ) -> tuple[bytes, dict[str, str]]:
        metadata = {
            "display_phone_number": number.display_phone_number,
            "phone_number_id": number.phone_number_id,
        }
        changes: list[JsonDict] = []
        statuses = [i.data for i in items if i.kind == "status"]
        messages = [i for i in items if i.kind == "message"]
        if messages:
            contacts = {json.dumps(i.contact, sort_keys=True): i.contact for i in messages}
            value: JsonDict = {"messaging_product": "whatsapp", "metadata": metadata}
            value["contacts"] = [c for c in contacts.values() if c is not None]
            value["messages"] = [i.data for i in messages]
            changes.append({"value": value, "field": "messages"})
        if statuses:
            value = {"messaging_product": "whatsapp", "metadata": metadata, "statuses": statuses}
            changes.append({"value": value, "field": "messages"})
        doc = {
            "object": "whatsapp_business_account",
            "entry": [{"id": number.waba_id, "changes": changes}],
        }
        body = encode_json(doc)
        headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
        if number.app_secret is not None:
            headers[SIGNATURE_HEADER] = signature(number.app_secret.get_secret_value(), body)
        return body, headers


def _failure(code: int) -> JsonDict:
    title = _FAILURE_TITLES.get(code, "Message failed to send")
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": title},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }
