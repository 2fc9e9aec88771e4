"""Meta payload variants built by mutating the recorded fixtures: every message type and quirk."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from zapflow.contracts.model import DeliveryStatus, Direction, MessageKind
from zapflow.providers.base import ParsedWebhook
from zapflow.providers.errors import WebhookPayloadError
from zapflow.providers.meta import MetaAdapter

Doc = Callable[[str, str], Any]
ADAPTER = MetaAdapter(clock=lambda: datetime(2025, 11, 20, 12, 0, tzinfo=UTC))


def parse(payload: Any, **kwargs: Any) -> ParsedWebhook:
    return ADAPTER.parse_webhook(json.dumps(payload).encode(), "application/json", **kwargs)


def with_message(doc: Doc, **fields: Any) -> Any:
    """inbound_text.json with its message's type-specific fields replaced."""
    payload = doc("meta", "inbound_text.json")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message.update(fields)
    return payload


def only_message(doc: Doc, **fields: Any) -> Any:
    (msg,) = parse(with_message(doc, **fields)).messages
    return msg


@pytest.mark.parametrize(
    ("kind", "part", "expected"),
    [
        (
            "audio",
            {"id": "a1", "mime_type": "audio/ogg; codecs=opus", "voice": True},
            {"voice": True},
        ),
        ("video", {"id": "v1", "mime_type": "video/mp4", "caption": "olha"}, {"caption": "olha"}),
        (
            "document",
            {"id": "d1", "mime_type": "application/pdf", "filename": "nota.pdf"},
            {"filename": "nota.pdf"},
        ),
        ("sticker", {"id": "s1", "mime_type": "image/webp", "animated": True}, {"animated": True}),
    ],
)
def test_media_kinds(doc: Doc, kind: str, part: dict[str, Any], expected: dict[str, Any]) -> None:
    msg = only_message(doc, type=kind, **{kind: part})
    assert msg.kind == MessageKind(kind)
    assert msg.media is not None
    assert msg.media.provider_media_id == part["id"]
    assert msg.media.mime_type == part["mime_type"]
    for field, value in expected.items():
        assert getattr(msg.media, field) == value


def test_location_contacts_and_system(doc: Doc) -> None:
    place = {"latitude": -23.55, "longitude": -46.63, "name": "Loja", "address": "Av. Paulista"}
    msg = only_message(doc, type="location", location=place)
    assert msg.location is not None
    assert (msg.location.latitude, msg.location.name) == (-23.55, "Loja")

    card = {"name": {"formatted_name": "Carla Dias"}, "phones": [{"phone": "+55 11 9999-0003"}]}
    msg = only_message(doc, type="contacts", contacts=[card])
    assert msg.kind is MessageKind.CONTACTS
    assert msg.contacts[0].name == "Carla Dias"
    assert msg.contacts[0].phones == ("+5511999990003",)  # ninth digit added

    system = {
        "body": "User changed number",
        "type": "user_changed_number",
        "wa_id": "5511999990009",
    }
    msg = only_message(doc, type="system", system=system)
    assert (msg.kind, msg.text) == (MessageKind.SYSTEM, "User changed number")
    assert msg.raw is not None
    assert msg.raw["system"]["wa_id"] == "5511999990009"


def test_reaction_and_removal(doc: Doc) -> None:
    msg = only_message(doc, type="reaction", reaction={"message_id": "wamid.X", "emoji": "👍"})
    assert msg.reaction is not None
    assert (msg.reaction.target_message_id, msg.reaction.emoji) == ("wamid.X", "👍")
    msg = only_message(doc, type="reaction", reaction={"message_id": "wamid.X", "emoji": ""})
    assert msg.reaction is not None
    assert msg.reaction.emoji is None


def test_interactive_replies(doc: Doc) -> None:
    button = {"type": "button_reply", "button_reply": {"id": "confirmar_sim", "title": "Sim"}}
    msg = only_message(doc, type="interactive", interactive=button)
    assert msg.interactive is not None
    assert (msg.interactive.kind, msg.interactive.reply_id) == ("button", "confirmar_sim")

    row = {"id": "dep_vendas", "title": "Vendas", "description": "Orçamentos e pedidos"}
    msg = only_message(
        doc, type="interactive", interactive={"type": "list_reply", "list_reply": row}
    )
    assert msg.interactive is not None
    assert (msg.interactive.kind, msg.interactive.description) == ("list", "Orçamentos e pedidos")

    msg = only_message(doc, type="button", button={"payload": "RASTREAR_48213", "text": "Rastrear"})
    assert msg.kind is MessageKind.INTERACTIVE
    assert msg.interactive is not None
    assert msg.interactive.kind == "template_button"
    assert (msg.interactive.reply_id, msg.interactive.title) == ("RASTREAR_48213", "Rastrear")


def test_unsupported_and_unknown_keep_raw(doc: Doc) -> None:
    errors = [{"code": 131051, "title": "Message type unknown"}]
    msg = only_message(doc, type="unsupported", errors=errors)
    assert msg.kind is MessageKind.UNSUPPORTED
    assert msg.raw is not None
    assert msg.raw["errors"][0]["code"] == 131051
    msg = only_message(doc, type="hologram", hologram={"depth": 3})
    assert (msg.kind, msg.raw_type) == (MessageKind.UNSUPPORTED, "hologram")
    assert msg.raw is not None
    assert msg.raw["hologram"] == {"depth": 3}
    flow = {"type": "nfm_reply", "nfm_reply": {"response_json": "{}"}}
    assert only_message(doc, type="interactive", interactive=flow).kind is MessageKind.UNSUPPORTED


def test_reply_context_forward_and_referral(doc: Doc) -> None:
    context = {"from": "5511999990000", "id": "wamid.ORIGINAL"}
    msg = only_message(doc, type="text", text={"body": "sim"}, context=context)
    assert msg.reply_to == "wamid.ORIGINAL"
    assert not msg.forwarded
    msg = only_message(doc, type="text", text={"body": "fwd"}, context={"forwarded": True})
    assert msg.forwarded
    assert msg.reply_to is None
    referral = {"source_url": "https://fb.me/ad", "source_type": "ad", "source_id": "1"}
    msg = only_message(doc, type="text", text={"body": "vi o anúncio"}, referral=referral)
    assert msg.raw is not None
    assert msg.raw["referral"]["source_type"] == "ad"


def test_edit_and_revoke(doc: Doc) -> None:
    edit = {
        "original_message_id": "wamid.OLD",
        "message": {"type": "text", "text": {"body": "novo"}},
    }
    parsed = parse(with_message(doc, type="edit", edit=edit))
    (change,) = parsed.edits
    assert (change.provider_message_id, change.text, change.from_me) == ("wamid.OLD", "novo", False)
    assert change.contact.phone == "+5511999990001"
    assert parsed.messages == []
    parsed = parse(with_message(doc, type="revoke", revoke={"original_message_id": "wamid.OLD"}))
    (revoke,) = parsed.revokes
    assert revoke.provider_message_id == "wamid.OLD"
    assert revoke.at == datetime(2025, 11, 20, 14, 0, tzinfo=UTC)
    own = with_message(doc)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert (change.change_message_id, revoke.change_message_id) == (own, own)


BSUID = "BR.1502576394655843"


def test_business_scoped_user_id_beside_the_wa_id(doc: Doc) -> None:
    payload = doc("meta", "inbound_text.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["user_id"] = BSUID
    (msg,) = parse(payload).messages
    assert (msg.contact.phone, msg.contact.user_id, msg.contact.name) == (
        "+5511999990001",
        BSUID,
        "Ana Souza",
    )


def test_business_scoped_user_id_instead_of_the_wa_id(doc: Doc) -> None:
    payload = doc("meta", "inbound_text.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Ana", "username": "@ana"}, "user_id": BSUID}]
    message = value["messages"][0]
    del message["from"]
    message["from_user_id"] = BSUID
    (msg,) = parse(payload).messages
    assert (msg.contact.phone, msg.contact.wa_id) == (None, None)
    assert (msg.contact.user_id, msg.contact.name) == (BSUID, "Ana")


def test_status_recipient_keeps_its_business_scoped_user_id(doc: Doc) -> None:
    payload = doc("meta", "status_delivered.json")
    status = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    status["recipient_user_id"] = BSUID
    (update,) = parse(payload).statuses
    assert update.recipient is not None
    assert (update.recipient.phone, update.recipient.user_id) == ("+5511999990001", BSUID)
    del status["recipient_id"]
    (update,) = parse(payload).statuses
    assert update.recipient is not None
    assert (update.recipient.wa_id, update.recipient.user_id) == (None, BSUID)


def test_smb_echo_is_outbound_from_me(doc: Doc) -> None:
    payload = doc("meta", "inbound_text.json")
    change = payload["entry"][0]["changes"][0]
    change["field"] = "smb_message_echoes"
    value = change["value"]
    message = value.pop("messages")[0]
    message.update({"from": "5511999990000", "to": "5511999990001", "text": {"body": "typed"}})
    value["message_echoes"] = [message]
    (msg,) = parse(payload).messages
    assert (msg.direction, msg.from_me, msg.text) == (Direction.OUTBOUND, True, "typed")
    assert msg.contact.phone == "+5511999990001"
    assert msg.contact.name is None


def test_batched_envelope(doc: Doc) -> None:
    payload = doc("meta", "inbound_text.json")
    first = payload["entry"][0]["changes"][0]["value"]
    second = json.loads(json.dumps(first["messages"][0]))
    second["id"] = "wamid.SECOND"
    first["messages"].append(second)
    first["statuses"] = doc("meta", "status_read.json")["entry"][0]["changes"][0]["value"][
        "statuses"
    ]
    payload["entry"].append(doc("meta", "inbound_image.json")["entry"][0])
    payload["entry"].append(doc("meta", "status_failed.json")["entry"][0])
    parsed = parse(payload)
    assert [m.provider_message_id[:12] for m in parsed.messages] == [
        "wamid.HBgNNT",
        "wamid.SECOND",
        "wamid.HBgNNT",
    ]
    assert [m.kind for m in parsed.messages] == [
        MessageKind.TEXT,
        MessageKind.TEXT,
        MessageKind.IMAGE,
    ]
    assert [s.status for s in parsed.statuses] == [DeliveryStatus.READ, DeliveryStatus.FAILED]


def test_statuses_played_unknown_and_brazilian_wa_id(doc: Doc) -> None:
    payload = doc("meta", "status_read.json")
    status = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    status.update({"status": "played", "recipient_id": "551199990001"})
    (update,) = parse(payload).statuses
    assert update.status is DeliveryStatus.PLAYED
    assert update.recipient is not None
    assert (update.recipient.phone, update.recipient.wa_id) == ("+5511999990001", "551199990001")
    status["status"] = "deleted"
    parsed = parse(payload)
    assert (parsed.statuses, parsed.ignored) == ([], ["unknown status"])


def test_statuses_echo_biz_opaque_callback_data(doc: Doc) -> None:
    payload = doc("meta", "status_delivered.json")
    status = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    (update,) = parse(payload).statuses
    assert update.client_message_id is None
    status["biz_opaque_callback_data"] = "6f1c3b1e-5d0a-4f7e-9a51-3c2b7d9e8a10"
    (update,) = parse(payload).statuses
    assert update.client_message_id == "6f1c3b1e-5d0a-4f7e-9a51-3c2b7d9e8a10"
    for unusable in ("", "   ", 42, "x" * 513):
        status["biz_opaque_callback_data"] = unusable
        (update,) = parse(payload).statuses
        assert update.client_message_id is None


def test_channel_phone_filter_and_missing_timestamp(doc: Doc) -> None:
    payload = doc("meta", "inbound_text.json")
    assert parse(payload, channel_phone="+55 (11) 99999-0000").messages
    other = parse(payload, channel_phone="+5511988887777")
    assert (other.messages, other.ignored) == ([], ["addressed to another channel number"])
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"]
    (msg,) = parse(payload).messages
    assert msg.sent_at == datetime(2025, 11, 20, 12, 0, tzinfo=UTC)  # the adapter's clock


def test_other_fields_and_message_without_id_are_ignored(doc: Doc) -> None:
    payload = doc("meta", "inbound_text.json")
    payload["entry"][0]["changes"].append({"field": "message_template_status_update", "value": {}})
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    parsed = parse(payload)
    assert parsed.messages == []
    assert parsed.ignored == ["message without id", "field message_template_status_update"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account"}',
    ],
)
def test_envelope_errors(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError) as info:
        ADAPTER.parse_webhook(body, "application/json")
    assert info.value.reason
    assert info.value.provider == "meta"
