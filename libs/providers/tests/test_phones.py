"""Phone normalization: every phone form to E.164, Brazil's ninth digit, non-phone ids refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapflow.providers.phones import (
    is_group,
    is_lid,
    normalize_phone,
    party,
    phone_digits,
    phone_jid,
    same_phone,
    split_jid,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("5511999990001", "+5511999990001"),
        ("+55 (11) 99999-0001", "+5511999990001"),
        ("55 11 9999-0001", "+5511999990001"),  # 8-digit mobile: ninth digit added
        ("551199990001", "+5511999990001"),
        ("5511999990001@s.whatsapp.net", "+5511999990001"),
        ("5511999990001:12@s.whatsapp.net", "+5511999990001"),
        ("5511999990001.0:3@s.whatsapp.net", "+5511999990001"),
        ("551199990001@c.us", "+5511999990001"),
        ("00 55 11 99999 0001", "+5511999990001"),
        ("551133334444", "+551133334444"),  # landline: unchanged
        ("+1 (415) 555-2671", "+14155552671"),
        ("201245678901234@lid", None),
        ("120363025246125888@g.us", None),
        ("120363019502650977-group", None),
        ("status@broadcast", None),
        ("0055", None),
        ("+0 11 5555", None),
        ("55119999000112345678", None),  # too long
        ("\uff15\uff15\uff11\uff11\uff19\uff19\uff19\uff19\uff19\uff10\uff10\uff10\uff11", None),
        ("55 11 abc", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_phone(raw: str | None, expected: str | None) -> None:
    assert normalize_phone(raw) == expected


def test_identity_helpers() -> None:
    assert split_jid("5511999990001:7@S.WhatsApp.net") == ("5511999990001", "s.whatsapp.net")
    assert is_lid("1@lid")
    assert not is_lid("5511999990001@s.whatsapp.net")
    assert is_group("1-2@g.us")
    assert is_group("123-group")
    assert not is_group("5511999990001")
    assert same_phone("55 11 9999-0001", "5511999990001@s.whatsapp.net")
    assert not same_phone("201245678901234@lid", "201245678901234@lid")
    assert phone_digits("+55 11 99999-0001") == "5511999990001"
    assert phone_jid("+5511999990001") == "5511999990001@s.whatsapp.net"
    assert phone_jid("1@g.us") == "1@g.us"
    with pytest.raises(ValueError, match="not a phone"):
        phone_digits("1@lid")


def test_party_from_ids() -> None:
    person = party("201245678901234@lid", "5511999990001@s.whatsapp.net", name=" Ana ")
    assert (person.phone, person.wa_id, person.lid, person.name) == (
        "+5511999990001",
        "201245678901234@lid",
        "201245678901234@lid",
        "Ana",
    )
    group = party("120363025246125888@g.us")
    assert (group.phone, group.wa_id, group.lid) == (None, "120363025246125888@g.us", None)
    assert party(None, "", name="").model_dump() == party().model_dump()


subscriber8 = st.from_regex(r"[6-9][0-9]{7}", fullmatch=True)
ddd = st.from_regex(r"[1-9][1-9]", fullmatch=True)


@given(ddd, subscriber8, st.sampled_from(["", " ", "-", "."]))
def test_brazil_mobile_forms_compare_equal(area: str, number: str, sep: str) -> None:
    short = f"+55 {area} {number[:4]}{sep}{number[4:]}"
    full = f"55{area}9{number}"
    assert normalize_phone(short) == normalize_phone(full) == f"+{full}"
    assert normalize_phone(f"55{area}{number}@s.whatsapp.net") == f"+{full}"


@given(st.text(max_size=40))
def test_normalize_is_total_and_idempotent(raw: str) -> None:
    phone = normalize_phone(raw)
    if phone is not None:
        assert normalize_phone(phone) == phone
        assert phone.startswith("+")
        assert phone[1:].isdigit()
        assert 7 <= len(phone) - 1 <= 15
