"""Pure decisions of the inbound path: no I/O, no framework, plain values in and out.

* :func:`plan_contact` — which contact a WhatsApp identity is, and what changes (create, update,
  merge two rows that turned out to be the same person);
* :func:`fold_statuses` — the status a message ends with after a set of receipts, never
  regressing whatever order they came in;
* :func:`reopens` — whether a message moves a conversation back to ``open``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

from zapflow.contracts.conversations.v1 import ConversationStatus
from zapflow.contracts.model import DeliveryStatus, Party, status_advances

ContactKind = Literal["person", "group"]
IDENTITY_FIELDS = ("phone", "wa_id", "lid", "name", "user_id")
KEYS = ("phone", "lid", "user_id")
"""Identities that are unique per tenant and win over stored ones (wa_id is only filled in)."""


@dataclass(frozen=True)
class StoredContact:
    id: UUID
    kind: ContactKind
    phone: str | None
    wa_id: str | None
    lid: str | None
    name: str | None
    created_at: datetime
    user_id: str | None = None

    def party(self) -> Party:
        return Party(
            phone=self.phone, wa_id=self.wa_id, lid=self.lid, name=self.name, user_id=self.user_id
        )


@dataclass(frozen=True)
class ContactPlan:
    """``create``: a new row with ``fields``; ``update``: set ``fields`` on ``target``;
    ``merge``: fold ``absorbed`` into ``target``, then set ``fields``; ``none``: nothing."""

    action: Literal["create", "update", "merge", "none"]
    target: StoredContact | None = None
    absorbed: tuple[StoredContact, ...] = ()
    fields: dict[str, str | None] = field(default_factory=dict)


def has_identity(party: Party) -> bool:
    return bool(party.phone or party.lid or party.wa_id or party.user_id)


def plan_contact(party: Party, matches: Sequence[StoredContact]) -> ContactPlan:
    """Decide how ``party`` maps onto the contacts that share one of its keys.

    ``matches`` are the tenant's live contacts with the same phone, the same LID, the same
    business-scoped user id (Meta BSUID), or (for rows that have none of those) the same wa_id.
    The survivor of a merge is the phone match, else the LID match, else the BSUID match, else
    the oldest row; the payload's phone, LID and BSUID win over stored ones (a LID that now comes
    with another phone is a number change; so is a new BSUID for a phone), wa_id is only filled
    in, never flipped between providers' spellings, and a non-empty name replaces the stored one.
    """
    if not matches:
        return ContactPlan("create", fields={k: getattr(party, k) for k in IDENTITY_FIELDS})
    target = _survivor(party, matches)
    absorbed = tuple(m for m in matches if m.id != target.id)
    fields: dict[str, str | None] = {}
    for key in KEYS:
        value = getattr(party, key)
        if value and value != getattr(target, key):
            fields[key] = value
    if target.wa_id is None and party.wa_id:
        fields["wa_id"] = party.wa_id
    name = party.name or next((m.name for m in absorbed if m.name and not target.name), None)
    if name and name != target.name:
        fields["name"] = name
    if absorbed:
        return ContactPlan("merge", target=target, absorbed=absorbed, fields=fields)
    return ContactPlan("update" if fields else "none", target=target, fields=fields)


def _survivor(party: Party, matches: Sequence[StoredContact]) -> StoredContact:
    for key in KEYS:
        value = getattr(party, key)
        for m in matches:
            if value and getattr(m, key) == value:
                return m
    return min(matches, key=lambda m: (m.created_at, str(m.id)))


def party_after(plan: ContactPlan) -> Party:
    """The contact's identity once ``plan`` is applied."""
    base = plan.target.party().model_dump() if plan.target else {}
    return Party.model_validate({**base, **plan.fields})


@dataclass(frozen=True)
class Receipt:
    status: DeliveryStatus
    at: datetime
    error_code: str | None = None
    error_text: str | None = None
    client_message_id: str | None = None  # the id Zapflow sent with the message, echoed


def echoed_message_id(client_message_id: str | None) -> UUID | None:
    """The Zapflow message a receipt names by the id we sent with it (a UUID), else None: other
    software sharing the number may put anything in that provider field."""
    if client_message_id is None:
        return None
    try:
        return UUID(client_message_id)
    except ValueError:
        return None


def fold_statuses(current: DeliveryStatus | None, receipts: Iterable[Receipt]) -> Receipt | None:
    """The receipt that leaves the message in its most advanced status, or None if none advances.

    Receipts are taken in time order; each one that ``status_advances`` replaces the previous,
    so ``read`` before ``delivered`` before ``sent`` ends at ``read``, and nothing moves a
    failed message.
    """
    winner: Receipt | None = None
    status = current
    for receipt in sorted(receipts, key=lambda r: r.at):
        if status_advances(status, receipt.status):
            winner, status = receipt, receipt.status
    return winner


def reopens(status: ConversationStatus, *, inbound: bool) -> bool:
    """A customer's message brings a pending or closed conversation back to ``open``."""
    return inbound and status is not ConversationStatus.OPEN
