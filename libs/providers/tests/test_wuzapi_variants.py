"""WuzAPI payload variants built by mutating the recorded fixtures (JSON and form mode)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from zapflow.contracts.model import Direction, MessageKind
from zapflow.providers.base import ParsedWebhook
from zapflow.providers.errors import WebhookPayloadError
from zapflow.providers.wuzapi import WuzapiAdapter

Doc = Callable[[str, str], Any]
ADAPTER = WuzapiAdapter()
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def parse(payload: Any) -> ParsedWebhook:
    return ADAPTER.parse_webhook(json.dumps(payload).encode(), JSON)


def event(doc: Doc, message: Any, **info: Any) -> Any:
    payload = doc("wuzapi", "inbound_text.json")
    payload["event"]["Message"] = message
    payload["event"]["Info"].update(info)
    return payload


def only_message(doc: Doc, message: Any, **info: Any) -> Any:
    (msg,) = parse(event(doc, message, **info)).messages
    return msg


def test_group_message_with_lid_sender(doc: Doc) -> None:
    msg = only_message(
        doc,
        {"conversation": "bom dia"},
        Chat="120363025246125888@g.us",
        Sender="99887766554433@lid",
        SenderAlt="5511999990004@s.whatsapp.net",
        IsGroup=True,
        AddressingMode="lid",
        PushName="Davi",
    )
    assert msg.group is not None
    assert msg.group.id == "120363025246125888@g.us"
    assert msg.sender is not None
    assert (msg.sender.phone, msg.sender.lid, msg.sender.name) == (
        "+5511999990004",
        "99887766554433@lid",
        "Davi",
    )


def test_from_me_uses_recipient_alt(doc: Doc) -> None:
    msg = only_message(
        doc,
        {"conversation": "enviado"},
        IsFromMe=True,
        Chat="201245678901234@lid",
        Sender="5511999990000@s.whatsapp.net",
        RecipientAlt="5511999990001@s.whatsapp.net",
        PushName="Loja",
    )
    assert (msg.direction, msg.from_me, msg.contact.name) == (Direction.OUTBOUND, True, None)
    assert (msg.contact.phone, msg.contact.lid) == ("+5511999990001", "201245678901234@lid")


def test_reply_media_and_reaction(doc: Doc) -> None:
    extended = {
        "extendedTextMessage": {
            "text": "sim",
            "contextInfo": {"stanzaID": "3EB0Q", "participant": "x"},
        }
    }
    assert only_message(doc, extended).reply_to == "3EB0Q"
    audio = {
        "audioMessage": {"URL": "https://a", "PTT": True, "seconds": 3, "mimetype": "audio/ogg"}
    }
    msg = only_message(doc, audio)
    assert msg.media is not None
    assert (msg.media.voice, msg.media.seconds, msg.media.url) == (
        True,
        3,
        "https://a",
    )
    document = {"documentMessage": {"fileName": "nota.pdf", "mimetype": "application/pdf"}}
    msg = only_message(doc, document)
    assert msg.media is not None
    assert msg.media.filename == "nota.pdf"
    reaction = {"reactionMessage": {"key": {"ID": "3EB0T", "fromMe": True}, "text": "🙏"}}
    msg = only_message(doc, reaction)
    assert msg.reaction is not None
    assert msg.reaction.target_message_id == "3EB0T"


def test_animated_sticker_and_s3_url(doc: Doc) -> None:
    payload = event(doc, {"stickerMessage": {"mimetype": "image/webp"}})
    payload.update(
        {"isSticker": True, "stickerAnimated": True, "s3": {"url": "https://s3/st.webp"}}
    )
    (msg,) = parse(payload).messages
    assert msg.kind is MessageKind.STICKER
    assert msg.media is not None
    assert (msg.media.animated, msg.media.url) == (True, "https://s3/st.webp")


def test_edit_and_revoke(doc: Doc) -> None:
    edit = {
        "protocolMessage": {
            "key": {"ID": "3EB0OLD"},
            "type": 14,
            "editedMessage": {"conversation": "novo"},
        }
    }
    (change,) = parse(event(doc, edit, Edit="1")).edits
    assert (change.provider_message_id, change.text) == ("3EB0OLD", "novo")
    revoke = {"protocolMessage": {"key": {"ID": "3EB0GONE"}, "type": 0}}
    (gone,) = parse(event(doc, revoke, Edit="7")).revokes
    assert gone.provider_message_id == "3EB0GONE"
    own = doc("wuzapi", "inbound_text.json")["event"]["Info"]["ID"]
    assert (change.change_message_id, gone.change_message_id) == (own, own)
    assert gone.contact.phone == "+5511999990001"


def test_unknown_and_empty_messages_are_unsupported(doc: Doc) -> None:
    msg = only_message(doc, {"eventMessage": {"name": "Festa"}})
    assert (msg.kind, msg.raw_type) == (MessageKind.UNSUPPORTED, "eventMessage")
    assert msg.raw is not None
    assert msg.raw["Message"]["eventMessage"]["name"] == "Festa"
    assert only_message(doc, None).kind is MessageKind.UNSUPPORTED


def test_receipts_and_other_events(doc: Doc) -> None:
    receipt = doc("wuzapi", "status_read.json")
    receipt["state"] = "ReadSelf"
    assert parse(receipt).ignored == ["read-self receipt"]
    receipt["state"] = None
    receipt["event"]["Type"] = "played"
    assert [s.status.value for s in parse(receipt).statuses] == ["played"]
    receipt["state"] = "Read"  # a played voice note's receipt may say Read in state
    assert [s.status.value for s in parse(receipt).statuses] == ["played"]
    receipt["state"] = None
    receipt["event"]["Type"] = "retry"
    assert parse(receipt).ignored == ["unsupported receipt"]
    presence = {"type": "ChatPresence", "event": {}, "instanceName": "x", "userID": "y"}
    assert parse(presence).ignored == ["ChatPresence"]


def test_form_mode_with_plus_encoded_spaces(
    doc: Doc, to_form: Callable[[dict[str, str]], bytes]
) -> None:
    fields = {
        "jsonData": json.dumps(doc("wuzapi", "status_delivered.json")),
        "userID": "u",
        "instanceName": "i",
    }
    body = to_form(fields)
    assert b"+" in body  # spaces in the JSON are encoded as '+'
    (update,) = ADAPTER.parse_webhook(body, f"{FORM}; charset=utf-8").statuses
    assert update.status.value == "delivered"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"userID=u&instanceName=i", FORM),
        (b"jsonData=%5B1%5D", FORM),
        (b"jsonData=nope", FORM),
        (b'{"event": {}}', JSON),
        (b"[1, 2]", JSON),
        (b"\xff\xfe", FORM),
    ],
)
def test_envelope_errors(body: bytes, content_type: str) -> None:
    with pytest.raises(WebhookPayloadError):
        ADAPTER.parse_webhook(body, content_type)
