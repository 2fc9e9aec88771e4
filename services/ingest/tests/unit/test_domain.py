"""Pure decisions: contact plans, status folding, conversation reopening."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from zapflow.contracts.conversations.v1 import ConversationStatus
from zapflow.contracts.model import DeliveryStatus, Party
from zapflow.ingest.domain import (
    Receipt,
    StoredContact,
    fold_statuses,
    has_identity,
    party_after,
    plan_contact,
    reopens,
)

T0 = datetime(2025, 11, 20, 14, 0, tzinfo=UTC)
PHONE, LID = "+5511999990001", "201245678901234@lid"


def stored(**fields: object) -> StoredContact:
    base: dict[str, object] = {
        "id": uuid4(),
        "kind": "person",
        "phone": None,
        "wa_id": None,
        "lid": None,
        "name": None,
        "created_at": T0,
    }
    base.update(fields)
    return StoredContact(**base)  # type: ignore[arg-type]


def test_unknown_identity_is_created_with_every_field() -> None:
    party = Party(phone=PHONE, wa_id="5511999990001", lid=LID, name="Ana")
    plan = plan_contact(party, [])
    assert plan.action == "create"
    assert plan.fields == {
        "phone": PHONE,
        "wa_id": "5511999990001",
        "lid": LID,
        "name": "Ana",
        "user_id": None,
    }
    assert party_after(plan) == party


def test_known_identity_without_news_changes_nothing() -> None:
    row = stored(phone=PHONE, wa_id="5511999990001", name="Ana")
    plan = plan_contact(Party(phone=PHONE, wa_id="5511999990001@s.whatsapp.net", name="Ana"), [row])
    assert (plan.action, plan.target, plan.fields) == ("none", row, {})


def test_new_name_and_lid_update_the_row_but_wa_id_is_never_flipped() -> None:
    row = stored(phone=PHONE, wa_id="5511999990001", name="Ana")
    plan = plan_contact(
        Party(phone=PHONE, wa_id="5511999990001@s.whatsapp.net", lid=LID, name="Ana Souza"), [row]
    )
    assert plan.action == "update"
    assert plan.fields == {"lid": LID, "name": "Ana Souza"}
    assert party_after(plan).wa_id == "5511999990001"


def test_missing_name_keeps_the_stored_one() -> None:
    row = stored(phone=PHONE, name="Ana")
    assert plan_contact(Party(phone=PHONE), [row]).action == "none"


def test_phone_row_survives_a_merge_with_the_lid_row() -> None:
    lid_row = stored(lid=LID, name="Ana (lid)", created_at=T0)
    phone_row = stored(phone=PHONE, created_at=T0 + timedelta(hours=1))
    plan = plan_contact(Party(phone=PHONE, lid=LID), [lid_row, phone_row])
    assert plan.action == "merge"
    assert plan.target == phone_row
    assert plan.absorbed == (lid_row,)
    assert plan.fields == {"lid": LID, "name": "Ana (lid)"}


def test_a_lid_seen_with_another_phone_is_a_number_change() -> None:
    row = stored(phone="+5511988880000", lid=LID)
    plan = plan_contact(Party(phone=PHONE, lid=LID), [row])
    assert (plan.action, plan.fields) == ("update", {"phone": PHONE})


def test_wa_id_only_rows_fold_into_the_identified_one() -> None:
    bare = stored(wa_id="bsuid-1", created_at=T0)
    phone_row = stored(phone=PHONE, created_at=T0 + timedelta(days=1))
    plan = plan_contact(Party(phone=PHONE, wa_id="bsuid-1"), [bare, phone_row])
    assert (plan.action, plan.target, plan.absorbed) == ("merge", phone_row, (bare,))


def test_identity_needs_a_key() -> None:
    assert not has_identity(Party(name="só nome"))
    assert has_identity(Party(wa_id="120363025246125888@g.us"))


S, D, R, F = (
    DeliveryStatus.SENT,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.READ,
    DeliveryStatus.FAILED,
)


def r(status: DeliveryStatus, minutes: int) -> Receipt:
    return Receipt(status, T0 + timedelta(minutes=minutes))


@pytest.mark.parametrize(
    ("current", "receipts", "expected"),
    [
        (None, [r(S, 1)], r(S, 1)),
        (S, [r(R, 3), r(D, 2), r(S, 1)], r(R, 3)),
        (R, [r(D, 2), r(D, 2)], None),
        (D, [r(F, 5)], None),
        (S, [r(F, 5), r(R, 6)], r(F, 5)),
        (F, [r(R, 9)], None),
        (DeliveryStatus.QUEUED, [r(D, 2), r(S, 1)], r(D, 2)),
    ],
)
def test_statuses_fold_to_the_most_advanced_and_never_regress(
    current: DeliveryStatus | None, receipts: list[Receipt], expected: Receipt | None
) -> None:
    assert fold_statuses(current, receipts) == expected


def test_only_customer_messages_reopen_a_conversation() -> None:
    assert reopens(ConversationStatus.CLOSED, inbound=True)
    assert reopens(ConversationStatus.PENDING, inbound=True)
    assert not reopens(ConversationStatus.OPEN, inbound=True)
    assert not reopens(ConversationStatus.CLOSED, inbound=False)


BSUID = "BR.1502576394655843"


def test_a_business_scoped_user_id_finds_and_completes_its_contact() -> None:
    stored = StoredContact(uuid4(), "person", PHONE, "5511999990001", None, "Ana", T0)
    plan = plan_contact(Party(phone=PHONE, user_id=BSUID), [stored])
    assert (plan.action, plan.fields) == ("update", {"user_id": BSUID})
    by_bsuid = StoredContact(uuid4(), "person", None, None, None, "Ana", T0, user_id=BSUID)
    assert plan_contact(Party(user_id=BSUID, name="Ana"), [by_bsuid]).action == "none"
    merged = plan_contact(Party(phone=PHONE, user_id=BSUID), [by_bsuid, stored])
    assert (merged.action, merged.target, merged.absorbed) == ("merge", stored, (by_bsuid,))
