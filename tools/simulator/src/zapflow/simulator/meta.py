"""Meta WhatsApp Cloud API wire format: send and mark-as-read requests, answers and errors.

Shapes follow the recorded payloads in ``shared/providers/meta`` (see its README): send answers
``{messaging_product, contacts[{input, wa_id}], messages[{id, message_status?}]}``, errors
``{"error": {message, type, code, error_subcode?, error_data{messaging_product, details},
fbtrace_id}}``. Webhooks are in :mod:`.meta_webhooks`.
"""

from __future__ import annotations

import base64
import random
import re
import string
from typing import Any, Final

from zapflow.simulator.wire import JsonDict, SendCall, WireError

VERSION_PATTERN: Final = re.compile(r"^v\d{1,3}(\.\d{1,2})?$")
MEDIA_TYPES: Final = frozenset({"image", "audio", "video", "document", "sticker"})
OTHER_TYPES: Final = frozenset({"location", "contacts", "reaction"})
MAX_TEXT: Final = 4096
MAX_OPAQUE: Final = 512
_TRACE_ALPHABET: Final = string.ascii_letters + string.digits + "-_"


# -- errors --------------------------------------------------------------------------------------


def error(
    status: int,
    code: int,
    message: str,
    rng: random.Random,
    *,
    details: str | None = None,
    subcode: int | None = None,
) -> WireError:
    """A Graph API error answer."""
    body: JsonDict = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        body["error_subcode"] = subcode
    if details is not None:
        body["error_data"] = {"messaging_product": "whatsapp", "details": details}
    body["fbtrace_id"] = "A" + "".join(rng.choices(_TRACE_ALPHABET, k=22))
    return WireError(status, {"error": body}, reason=f"meta error {code}")


def invalid(details: str, rng: random.Random) -> WireError:
    return error(400, 100, "(#100) Invalid parameter", rng, details=details)


def rate_limited(status: int, rng: random.Random) -> WireError:
    return error(
        status,
        130429,
        "(#130429) Rate limit hit",
        rng,
        details="Cloud API message throughput has been reached.",
    )


def pair_rate_limited(status: int, rng: random.Random) -> WireError:
    return error(
        status,
        131056,
        "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        rng,
        details="Message failed to send because there were too many messages sent from this "
        "phone number to the same phone number in a short period of time.",
    )


def server_error(rng: random.Random) -> WireError:
    if rng.random() < 0.5:
        return error(503, 2, "(#2) Service temporarily unavailable", rng)
    return error(
        500,
        131000,
        "(#131000) Something went wrong",
        rng,
        details="Message failed to send due to an unknown error.",
    )


def unauthorized(rng: random.Random) -> WireError:
    return error(401, 190, "Invalid OAuth access token - Cannot parse access token", rng)


def unknown_path(version: str, rng: random.Random) -> WireError:
    return error(400, 2500, f"Unknown path components: /{version}", rng)


def unknown_number(phone_number_id: str, rng: random.Random) -> WireError:
    return error(
        400,
        100,
        f"Unsupported post request. Object with ID '{phone_number_id}' does not exist, cannot "
        "be loaded due to missing permissions, or does not support this operation.",
        rng,
        subcode=33,
    )


# -- requests ------------------------------------------------------------------------------------


def _digits(to: Any, rng: random.Random) -> str:
    if not isinstance(to, str) or not to.strip():
        raise invalid("The parameter to is required.", rng)
    digits = re.sub(r"[\s()+.-]", "", to)
    if not re.fullmatch(r"\d{8,15}", digits):
        raise invalid("Invalid parameter to.", rng)
    return digits


def _check_typed(kind: str, part: Any, rng: random.Random) -> None:
    if not isinstance(part, dict):
        raise invalid(f"The parameter {kind} is required.", rng)
    if kind == "text":
        body = part.get("body")
        if not isinstance(body, str) or not body:
            raise invalid("The parameter text['body'] is required.", rng)
        if len(body) > MAX_TEXT:
            raise invalid(f"Param text['body'] must be at most {MAX_TEXT} characters long.", rng)
    elif kind in MEDIA_TYPES:
        if ("link" in part) == ("id" in part):
            raise invalid(f"Param {kind} must have exactly one of 'link' or 'id'.", rng)
    elif kind == "template":
        language = part.get("language")
        if not isinstance(part.get("name"), str) or not isinstance(language, dict):
            raise invalid("Param template must have 'name' and 'language'.", rng)
        if not isinstance(language.get("code"), str):
            raise invalid("The parameter template['language']['code'] is required.", rng)
    elif kind == "interactive":
        body = part.get("body")
        if not isinstance(part.get("type"), str) or not isinstance(part.get("action"), dict):
            raise invalid("Param interactive must have 'type' and 'action'.", rng)
        if part["type"] in ("button", "list") and not (
            isinstance(body, dict) and isinstance(body.get("text"), str)
        ):
            raise invalid("The parameter interactive['body']['text'] is required.", rng)


def parse_mark_read(data: JsonDict, rng: random.Random) -> str:
    """The ``message_id`` of a mark-as-read request."""
    message_id = data.get("message_id")
    if not isinstance(message_id, str) or not message_id.startswith("wamid."):
        raise error(
            400, 131009, "(#131009) Parameter value is not valid", rng, details="Invalid message_id"
        )
    return message_id


def is_mark_read(data: JsonDict) -> bool:
    return data.get("status") == "read"


def parse_send(data: Any, rng: random.Random) -> SendCall:
    """A send request, or :class:`WireError` with Meta's answer to a malformed one."""
    if not isinstance(data, dict):
        raise invalid("Request body must be a JSON object.", rng)
    if data.get("messaging_product") != "whatsapp":
        raise invalid("The parameter messaging_product is required.", rng)
    if data.get("recipient_type", "individual") not in ("individual", "group"):
        raise invalid("Invalid parameter recipient_type.", rng)
    wa_id = _digits(data.get("to"), rng)
    kind = data.get("type", "text")
    if not isinstance(kind, str) or kind not in (
        {"text", "template", "interactive"} | MEDIA_TYPES | OTHER_TYPES
    ):
        raise invalid("Invalid parameter type.", rng)
    _check_typed(kind, data.get(kind), rng)
    context = data.get("context")
    reply_to = context.get("message_id") if isinstance(context, dict) else None
    if context is not None and not isinstance(reply_to, str):
        raise invalid("The parameter context['message_id'] is required.", rng)
    opaque = data.get("biz_opaque_callback_data")
    if opaque is not None and (not isinstance(opaque, str) or len(opaque) > MAX_OPAQUE):
        raise invalid("Invalid parameter biz_opaque_callback_data.", rng)
    content: JsonDict = {"type": kind, kind: data[kind]}
    if reply_to is not None:
        content["context"] = {"message_id": reply_to}
    return SendCall(
        to=data["to"],
        wa_id=wa_id,
        type=kind,
        content=content,
        biz_opaque_callback_data=opaque,
        reply_to=reply_to,
    )


# -- answers -------------------------------------------------------------------------------------


def new_message_id(wa_id: str, rng: random.Random, *, inbound: bool = False) -> str:
    """A ``wamid.`` id in Meta's layout: base64 of the peer's number and a random hex tag."""
    tag = "".join(rng.choices("0123456789ABCDEF", k=20 if inbound else 18))
    raw = (
        b"\x1c\x18"
        + bytes([len(wa_id)])
        + wa_id.encode()
        + (b"\x15\x02\x00\x12\x18\x14" if inbound else b"\x15\x02\x00\x11\x18\x12")
        + tag.encode()
        + b"\x00"
    )
    return "wamid." + base64.b64encode(raw).decode()


def send_answer(call: SendCall, message_id: str) -> JsonDict:
    message: JsonDict = {"id": message_id}
    if call.type == "template":
        message["message_status"] = "accepted"
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": call.to, "wa_id": call.wa_id}],
        "messages": [message],
    }


MARK_READ_ANSWER: Final[JsonDict] = {"success": True}
