"""Z-API payload variants built by mutating the recorded fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from zapflow.contracts.model import DeliveryStatus, Direction, MessageKind
from zapflow.providers.base import ParsedWebhook
from zapflow.providers.errors import WebhookPayloadError
from zapflow.providers.zapi import ZapiAdapter

Doc = Callable[[str, str], Any]
ADAPTER = ZapiAdapter()


def parse(payload: Any, **kwargs: Any) -> ParsedWebhook:
    return ADAPTER.parse_webhook(json.dumps(payload).encode(), "application/json", **kwargs)


def received(doc: Doc, **fields: Any) -> Any:
    payload = doc("zapi", "inbound_text.json")
    del payload["text"]
    payload.update(fields)
    return payload


def only_message(doc: Doc, **fields: Any) -> Any:
    (msg,) = parse(received(doc, **fields)).messages
    return msg


def test_group_message(doc: Doc) -> None:
    msg = only_message(
        doc,
        text={"message": "bom dia"},
        isGroup=True,
        phone="120363019502650977-group",
        chatName="Clientes VIP",
        participantPhone="5511999990004",
        participantLid="99887766554433@lid",
        senderName="Davi",
    )
    assert msg.group is not None
    assert (msg.group.id, msg.group.name) == (
        "120363019502650977-group",
        "Clientes VIP",
    )
    assert msg.contact.phone is None
    assert msg.contact.wa_id == "120363019502650977-group"
    assert msg.sender is not None
    assert (msg.sender.phone, msg.sender.lid, msg.sender.name) == (
        "+5511999990004",
        "99887766554433@lid",
        "Davi",
    )


def test_from_me_echo(doc: Doc) -> None:
    msg = only_message(
        doc, text={"message": "enviado"}, fromMe=True, fromApi=False, senderName="Loja"
    )
    assert (msg.direction, msg.from_me) == (Direction.OUTBOUND, True)
    assert msg.contact.name == "Ana Souza"  # chatName, not our own senderName
    assert msg.contact.lid is None  # senderLid is ours on echoes


@pytest.mark.parametrize(
    ("key", "part", "kind", "field", "value"),
    [
        (
            "audio",
            {"audioUrl": "https://a", "ptt": True, "seconds": 4, "mimeType": "audio/ogg"},
            "audio",
            "voice",
            True,
        ),
        (
            "video",
            {"videoUrl": "https://v", "caption": "vídeo", "mimeType": "video/mp4"},
            "video",
            "caption",
            "vídeo",
        ),
        (
            "document",
            {"documentUrl": "https://d", "fileName": "nota.pdf"},
            "document",
            "filename",
            "nota.pdf",
        ),
        (
            "sticker",
            {"stickerUrl": "https://s", "mimeType": "image/webp"},
            "sticker",
            "url",
            "https://s",
        ),
    ],
)
def test_media_kinds(
    doc: Doc, key: str, part: dict[str, Any], kind: str, field: str, value: Any
) -> None:
    msg = only_message(doc, **{key: part})
    assert msg.kind == MessageKind(kind)
    assert msg.media is not None
    assert getattr(msg.media, field) == value


def test_location_contact_reaction_and_buttons(doc: Doc) -> None:
    msg = only_message(
        doc, location={"latitude": -23.5, "longitude": -46.6, "address": "Av. Paulista"}
    )
    assert msg.location is not None
    assert msg.location.address == "Av. Paulista"
    msg = only_message(
        doc, contact={"displayName": "Carla", "vCard": "BEGIN:VCARD", "phones": ["551199990003"]}
    )
    assert msg.contacts[0].phones == ("+5511999990003",)
    reaction = {"value": "👍", "referencedMessage": {"messageId": "3EB0T", "fromMe": True}}
    msg = only_message(doc, reaction=reaction)
    assert msg.reaction is not None
    assert (msg.reaction.target_message_id, msg.reaction.emoji) == (
        "3EB0T",
        "👍",
    )
    msg = only_message(doc, reaction={"value": "", "referencedMessage": {"messageId": "3EB0T"}})
    assert msg.reaction is not None
    assert msg.reaction.emoji is None
    msg = only_message(doc, buttonsResponseMessage={"buttonId": "confirmar_sim", "message": "Sim"})
    assert msg.interactive is not None
    assert (msg.interactive.kind, msg.interactive.title) == (
        "button",
        "Sim",
    )
    msg = only_message(
        doc, listResponseMessage={"selectedRowId": "r1", "title": "Vendas", "message": "m"}
    )
    assert msg.interactive is not None
    assert (msg.interactive.kind, msg.interactive.reply_id) == (
        "list",
        "r1",
    )


def test_reply_forward_notification_unknown(doc: Doc) -> None:
    msg = only_message(doc, text={"message": "sim"}, referenceMessageId="3EB0Q", forwarded=True)
    assert (msg.reply_to, msg.forwarded) == ("3EB0Q", True)
    msg = only_message(
        doc, notification="GROUP_PARTICIPANT_ADD", notificationParameters=["551199990004"]
    )
    assert (msg.kind, msg.text) == (MessageKind.SYSTEM, "GROUP_PARTICIPANT_ADD")
    msg = only_message(doc, poll={"question": "Qual?"})
    assert (msg.kind, msg.raw_type) == (MessageKind.UNSUPPORTED, "poll")
    assert msg.raw is not None
    assert msg.raw["poll"] == {"question": "Qual?"}


def test_edit(doc: Doc) -> None:
    parsed = parse(received(doc, text={"message": "corrigido"}, isEdit=True))
    (change,) = parsed.edits
    assert (change.provider_message_id, change.text) == ("3A5F0C9E8B7D6A1F2E3C", "corrigido")
    assert parsed.messages == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("PLAYED", DeliveryStatus.PLAYED),
        ("PENDING", DeliveryStatus.QUEUED),
        ("READ_BY_ME", "read-self receipt"),
        ("READ-SELF", "read-self receipt"),
        ("WEIRD", "unknown status"),
    ],
)
def test_status_variants(doc: Doc, status: str, expected: Any) -> None:
    payload = doc("zapi", "status_read.json")
    payload.update({"status": status, "ids": ["A", "B"]})
    parsed = parse(payload)
    if isinstance(expected, DeliveryStatus):
        assert [(s.provider_message_id, s.status) for s in parsed.statuses] == [
            ("A", expected),
            ("B", expected),
        ]
    else:
        assert (parsed.statuses, parsed.ignored) == ([], [expected])


def test_delivery_failure_code_and_channel_phone(doc: Doc) -> None:
    payload = doc("zapi", "status_failed.json")
    payload["errorCode"] = "SHADOW_BAN"
    (update,) = parse(payload).statuses
    assert (update.status, update.error_code) == (DeliveryStatus.FAILED, "SHADOW_BAN")
    inbound = doc("zapi", "inbound_text.json")
    assert parse(inbound, channel_phone="+55 11 99999-0000").messages
    assert parse(inbound, channel_phone="+5511900000000").ignored == [
        "addressed to another channel number"
    ]


@pytest.mark.parametrize("body", [b"[]", b'{"phone": "1"}', b'{"type": 7}', b"<html>"])
def test_envelope_errors(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError):
        ADAPTER.parse_webhook(body, "application/json")
