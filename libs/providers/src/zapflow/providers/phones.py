"""Phone numbers and WhatsApp identities.

Providers name people in many ways: Meta's ``wa_id`` (digits), JIDs
(``5511999990001@s.whatsapp.net``, with an optional ``:device`` suffix), ``@c.us``, Z-API's bare
digits, LIDs (``201245678901234@lid``: an opaque identity that is *not* a phone), groups
(``…@g.us``, Z-API ``<id>-group``), and people type ``+55 (11) 99999-0001``.
:func:`normalize_phone` turns every phone form into E.164 and refuses the rest; :func:`party`
builds a canonical :class:`~zapflow.contracts.model.Party` from whatever ids a payload carries,
keeping the raw id in ``wa_id`` and the LID in ``lid``.

Brazil's ninth digit: since 2012-2016 Brazilian mobile numbers have 9 digits after the 2-digit
area code (DDD), but WhatsApp still reports many older accounts with 8 (``551199990001``). A number
with country code 55, a valid DDD and an 8-digit subscriber starting with 6-9 (the mobile ranges)
gets the ``9`` inserted, so ``55 11 9999-0001`` and ``5511999990001`` both become
``+5511999990001``.
Landlines (subscriber starting with 2-5) are left alone. Numbers are assumed to be international
(with country code); there is no default country.
"""

from __future__ import annotations

import re
from typing import Final

from zapflow.contracts.model import Party

PHONE_SERVERS: Final = frozenset({"s.whatsapp.net", "c.us"})
"""JID servers whose user part is a phone number."""
LID_SERVER: Final = "lid"
GROUP_SERVER: Final = "g.us"
ZAPI_GROUP_SUFFIX: Final = "-group"

_SEPARATORS: Final = re.compile(r"[\s\-().]")
_E164_DIGITS: Final = re.compile(r"[1-9]\d{6,14}")


def split_jid(raw: str) -> tuple[str, str | None]:
    """``"5511999990001:12@s.whatsapp.net"`` -> ``("5511999990001", "s.whatsapp.net")``.

    The device (``:12``) and agent (``.0``) suffixes of a phone/LID user part are dropped; an id
    without ``@`` returns ``(id, None)``.
    """
    text = raw.strip()
    user, at, server = text.partition("@")
    if not at:
        return text, None
    user = user.split(":", 1)[0]
    head, dot, _agent = user.partition(".")
    if dot and head.isdigit():
        user = head
    return user, server.strip().lower()


def is_lid(raw: str) -> bool:
    return split_jid(raw)[1] == LID_SERVER


def is_group(raw: str) -> bool:
    user, server = split_jid(raw)
    return server == GROUP_SERVER or (server is None and user.endswith(ZAPI_GROUP_SUFFIX))


def _brazil_ninth_digit(digits: str) -> str:
    if len(digits) == 12 and digits.startswith("55"):
        ddd, subscriber = digits[2:4], digits[4:]
        if "0" not in ddd and subscriber[0] in "6789":
            return f"55{ddd}9{subscriber}"
    return digits


def normalize_phone(raw: str | None) -> str | None:
    """E.164 (``+5511999990001``) for any phone form, else ``None`` (LIDs, groups, garbage)."""
    if not raw:
        return None
    user, server = split_jid(raw)
    if server is not None and server not in PHONE_SERVERS:
        return None
    text = user.strip()
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    digits = _SEPARATORS.sub("", text)
    if not (digits.isascii() and digits.isdigit()):
        return None
    digits = _brazil_ninth_digit(digits)
    if not _E164_DIGITS.fullmatch(digits):
        return None
    return f"+{digits}"


def same_phone(a: str | None, b: str | None) -> bool:
    """True when both are phones and normalize to the same E.164 number."""
    na = normalize_phone(a)
    return na is not None and na == normalize_phone(b)


def phone_digits(raw: str) -> str:
    """The digits a send API expects (``5511999990001``); ``ValueError`` if ``raw`` is no phone."""
    phone = normalize_phone(raw)
    if phone is None:
        raise ValueError("not a phone number")
    return phone[1:]


def phone_jid(raw: str) -> str:
    """``5511999990001@s.whatsapp.net`` for a phone; JIDs (groups, LIDs) pass through unchanged."""
    if "@" in raw:
        return raw.strip()
    return f"{phone_digits(raw)}@s.whatsapp.net"


def party(*ids: str | None, name: str | None = None, user_id: str | None = None) -> Party:
    """A Party from a primary id and alternates (e.g. ``remoteJid`` and ``remoteJidAlt``).

    ``wa_id`` is the first non-empty id as sent; ``phone`` the first id that is a phone; ``lid``
    the first ``@lid`` id. Group ids yield a Party with only ``wa_id``. ``user_id`` is Meta's
    business-scoped user id (BSUID), kept as given.
    """
    present = [i.strip() for i in ids if isinstance(i, str) and i.strip()]
    phone = next((p for p in map(normalize_phone, present) if p is not None), None)
    lid = next((i for i in present if is_lid(i)), None)
    return Party(
        phone=phone,
        wa_id=present[0] if present else None,
        lid=lid,
        name=(name.strip() or None) if name else None,
        user_id=(user_id.strip() or None) if user_id else None,
    )
