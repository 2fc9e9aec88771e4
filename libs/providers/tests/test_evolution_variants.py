"""Evolution payload variants built by mutating the recorded fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from zapflow.contracts.model import DeliveryStatus, Direction, MessageKind
from zapflow.providers.base import ParsedWebhook
from zapflow.providers.errors import WebhookPayloadError
from zapflow.providers.evolution import EvolutionAdapter

Doc = Callable[[str, str], Any]
ADAPTER = EvolutionAdapter()


def parse(payload: Any, **kwargs: Any) -> ParsedWebhook:
    return ADAPTER.parse_webhook(json.dumps(payload).encode(), "application/json", **kwargs)


def upsert(
    doc: Doc, message: dict[str, Any], *, key: dict[str, Any] | None = None, **data: Any
) -> Any:
    payload = doc("evolution", "inbound_text.json")
    payload["data"]["message"] = message
    payload["data"]["key"].update(key or {})
    payload["data"].update(data)
    return payload


def only_message(doc: Doc, message: dict[str, Any], **kwargs: Any) -> Any:
    (msg,) = parse(upsert(doc, message, **kwargs)).messages
    return msg


def test_group_message_with_lid_participant(doc: Doc) -> None:
    key = {
        "remoteJid": "120363025246125888@g.us",
        "participant": "99887766554433@lid",
        "participantAlt": "5511999990004@s.whatsapp.net",
        "addressingMode": "lid",
    }
    msg = only_message(doc, {"conversation": "bom dia grupo"}, key=key, pushName="Davi")
    assert msg.group is not None
    assert msg.group.id == "120363025246125888@g.us"
    assert msg.contact.wa_id == "120363025246125888@g.us"
    assert msg.contact.phone is None
    assert msg.sender is not None
    assert (msg.sender.lid, msg.sender.phone, msg.sender.name) == (
        "99887766554433@lid",
        "+5511999990004",
        "Davi",
    )


def test_lid_addressed_chat(doc: Doc) -> None:
    key = {"remoteJid": "201245678901234@lid", "remoteJidAlt": "5511999990001@s.whatsapp.net"}
    msg = only_message(doc, {"conversation": "oi"}, key=key)
    assert (msg.contact.wa_id, msg.contact.lid) == ("201245678901234@lid", "201245678901234@lid")
    assert msg.contact.phone == "+5511999990001"


def test_phone_typed_message_is_outbound_echo(doc: Doc) -> None:
    msg = only_message(doc, {"conversation": "digitado no celular"}, key={"fromMe": True})
    assert (msg.direction, msg.from_me, msg.contact.name) == (Direction.OUTBOUND, True, None)


def test_reply_context_moved_to_data(doc: Doc) -> None:
    context = {"stanzaId": "3EB0QUOTED", "participant": "5511999990000@s.whatsapp.net"}
    msg = only_message(doc, {"conversation": "sim"}, contextInfo=context)
    assert msg.reply_to == "3EB0QUOTED"
    extended = {
        "extendedTextMessage": {
            "text": "ok",
            "contextInfo": {"stanzaId": "Q2", "isForwarded": True},
        }
    }
    msg = only_message(doc, extended)
    assert (msg.text, msg.reply_to, msg.forwarded) == ("ok", "Q2", True)


def test_media_kinds(doc: Doc) -> None:
    audio = {"audioMessage": {"url": "u", "mimetype": "audio/ogg", "ptt": True, "seconds": 7}}
    msg = only_message(doc, audio)
    assert msg.kind is MessageKind.AUDIO
    assert msg.media is not None
    assert (msg.media.voice, msg.media.seconds) == (True, 7)
    document = {
        "documentWithCaptionMessage": {
            "message": {"documentMessage": {"fileName": "nota.pdf", "mimetype": "application/pdf"}}
        }
    }
    msg = only_message(doc, document)
    assert msg.kind is MessageKind.DOCUMENT
    assert msg.media is not None
    assert msg.media.filename == "nota.pdf"
    sticker = {
        "stickerMessage": {"isAnimated": True, "mimetype": "image/webp"},
        "mediaUrl": "https://s3/x",
    }
    msg = only_message(doc, sticker)
    assert msg.media is not None
    assert (msg.media.animated, msg.media.url) == (True, "https://s3/x")


def test_location_contact_reaction_and_replies(doc: Doc) -> None:
    place = {
        "locationMessage": {"degreesLatitude": -23.5, "degreesLongitude": -46.6, "name": "Loja"}
    }
    msg = only_message(doc, place)
    assert msg.location is not None
    assert msg.location.name == "Loja"
    vcard = "BEGIN:VCARD\nFN:Carla\nitem1.TEL;waid=5511999990003:+55 11 99999-0003\nEND:VCARD"
    msg = only_message(doc, {"contactMessage": {"displayName": "Carla", "vcard": vcard}})
    assert msg.contacts[0].phones == ("+5511999990003",)
    assert msg.contacts[0].vcard == vcard
    reaction = {"reactionMessage": {"key": {"id": "3EB0TARGET"}, "text": "❤️"}}
    msg = only_message(doc, reaction)
    assert msg.reaction is not None
    assert msg.reaction.emoji == "❤️"
    msg = only_message(doc, {"reactionMessage": {"key": {"id": "3EB0TARGET"}, "text": ""}})
    assert msg.reaction is not None
    assert msg.reaction.emoji is None
    buttons = {"buttonsResponseMessage": {"selectedButtonId": "b1", "selectedDisplayText": "Sim"}}
    msg = only_message(doc, buttons)
    assert msg.interactive is not None
    assert msg.interactive.reply_id == "b1"
    rows = {
        "listResponseMessage": {"title": "Vendas", "singleSelectReply": {"selectedRowId": "r1"}}
    }
    msg = only_message(doc, rows)
    assert msg.interactive is not None
    assert (msg.interactive.kind, msg.interactive.reply_id) == (
        "list",
        "r1",
    )


def test_unknown_content_is_unsupported_with_raw(doc: Doc) -> None:
    msg = only_message(doc, {"pollCreationMessageV3": {"name": "Qual?"}})
    assert (msg.kind, msg.raw_type) == (MessageKind.UNSUPPORTED, "pollCreationMessageV3")
    assert msg.raw is not None
    assert msg.raw["message"]["pollCreationMessageV3"]["name"] == "Qual?"


def test_revoke_and_edit_in_upsert(doc: Doc) -> None:
    revoke = {"protocolMessage": {"key": {"id": "3EB0GONE", "fromMe": False}, "type": "REVOKE"}}
    parsed = parse(upsert(doc, revoke))
    assert [r.provider_message_id for r in parsed.revokes] == ["3EB0GONE"]
    assert not parsed.messages
    edit = {
        "editedMessage": {
            "message": {
                "protocolMessage": {
                    "key": {"id": "3EB0OLD"},
                    "type": 14,
                    "editedMessage": {"conversation": "corrigido"},
                }
            }
        }
    }
    (change,) = parse(upsert(doc, edit)).edits
    assert (change.provider_message_id, change.text) == ("3EB0OLD", "corrigido")
    own = doc("evolution", "inbound_text.json")["data"]["key"]["id"]
    assert change.change_message_id == own  # the edit's own id beside the edited one's
    (gone,) = parse(upsert(doc, revoke)).revokes
    assert gone.change_message_id == own


def test_messages_edited_and_delete_events(doc: Doc) -> None:
    payload = doc("evolution", "status_read.json")
    payload["event"] = "messages.edited"
    payload["data"] = {
        "key": {
            "remoteJid": "5511999990001@s.whatsapp.net",
            "fromMe": False,
            "id": "3A5F0C9E8B7D6A1F2E3C",
        },
        "type": "MESSAGE_EDIT",
        "editedMessage": {"extendedTextMessage": {"text": "editado"}},
        "timestampMs": {"low": 1763647500000 & 0xFFFFFFFF, "high": 1763647500000 >> 32},
    }
    (change,) = parse(payload).edits
    assert (change.provider_message_id, change.text) == ("3A5F0C9E8B7D6A1F2E3C", "editado")
    assert change.at.timestamp() == 1763647500
    assert change.contact.phone == "+5511999990001"
    payload["event"] = "MESSAGES_DELETE"
    payload["data"] = {"remoteJid": "5511999990001@s.whatsapp.net", "fromMe": True, "id": "3EB0X"}
    (revoke,) = parse(payload).revokes
    assert (revoke.provider_message_id, revoke.from_me) == ("3EB0X", True)


@pytest.mark.parametrize(
    ("status", "from_me", "expected"),
    [
        (3, True, DeliveryStatus.DELIVERED),
        ("PLAYED", True, DeliveryStatus.PLAYED),
        ("PENDING", True, DeliveryStatus.QUEUED),
        ("READ", False, "read-self receipt"),
        ("DELIVERY_ACK", False, "receipt for inbound message"),
        ("DELETED", True, "deleted status"),
    ],
)
def test_status_variants(doc: Doc, status: Any, from_me: bool, expected: Any) -> None:
    payload = doc("evolution", "status_read.json")
    payload["data"].update({"status": status, "fromMe": from_me})
    parsed = parse(payload)
    if isinstance(expected, DeliveryStatus):
        assert [s.status for s in parsed.statuses] == [expected]
    else:
        assert (parsed.statuses, parsed.ignored) == ([], [expected])


def test_batch_list_and_channel_phone(doc: Doc) -> None:
    payload = doc("evolution", "status_read.json")
    second = dict(payload["data"], keyId="3EB0SECOND", status="DELIVERY_ACK")
    payload["data"] = [payload["data"], second]
    assert [s.provider_message_id for s in parse(payload).statuses] == [
        "3EB0C8F1A2B3D4E5F60718",
        "3EB0SECOND",
    ]
    assert len(parse(payload, channel_phone="55 11 9999-0000").statuses) == 2
    assert parse(payload, channel_phone="+5511977776666").ignored == [
        "addressed to another channel number"
    ]


@pytest.mark.parametrize(
    "body", [b"{}", b'{"event": 3, "data": {}}', b'{"event": "x"}', b"\xff\xfe"]
)
def test_envelope_errors(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError):
        ADAPTER.parse_webhook(body, "application/json")
