"""Representative message bodies: a figure and its reference carry the same bytes."""

from __future__ import annotations

import json
import uuid
from typing import Final

WEBHOOK_BODY: Final[bytes] = json.dumps(
    {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": "106540352242922"},
                            "messages": [
                                {
                                    "from": "5511999990000",
                                    "id": "wamid.HBgLNTUxMTk5OTk5MDAwMBUCABIYFDNBMDI",
                                    "timestamp": "1735689600",
                                    "type": "text",
                                    "text": {"body": "Olá! Quero saber o status do meu pedido."},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    },
    separators=(",", ":"),
).encode()
"""A WhatsApp Cloud API inbound-message webhook (~450 bytes): the body the edge receives."""


def msg_id_headers() -> dict[str, str]:
    """A fresh ``Nats-Msg-Id``: every Zapflow publish carries one, so the references do too."""
    return {"Nats-Msg-Id": uuid.uuid4().hex}
