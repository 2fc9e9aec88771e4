"""Contacts in PostgreSQL: find the rows an identity matches, then create, update or merge.

The decision is ``domain.plan_contact``; this module only reads the candidates and writes the
plan. A merge folds the absorbed row's conversations into the survivor's (per channel), moves its
messages, and leaves the absorbed row behind with ``merged_into`` set so old ids still resolve.
Concurrent writers of the same identity collide on the unique indexes; the caller retries the
whole transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID, uuid4

import asyncpg

from zapflow.contracts.model import Party
from zapflow.ingest.adapters.pgtypes import Conn
from zapflow.ingest.domain import (
    IDENTITY_FIELDS,
    ContactKind,
    ContactPlan,
    StoredContact,
    party_after,
    plan_contact,
)

_FIND: Final = """
SELECT id, kind, phone, wa_id, lid, name, created_at, user_id FROM contacts
WHERE tenant_id = $1 AND merged_into IS NULL
  AND (phone = $2 OR lid = $3 OR user_id = $5
       OR (phone IS NULL AND lid IS NULL AND user_id IS NULL AND wa_id = $4))
ORDER BY created_at, id
"""
_CREATE: Final = """
INSERT INTO contacts (id, tenant_id, kind, phone, wa_id, lid, name, user_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""
_ABSORB: Final = """
UPDATE contacts SET merged_into = $2, phone = NULL, lid = NULL, user_id = NULL,
  updated_at = now()
WHERE id = $1 OR merged_into = $1
"""
_REPOINT_CONVERSATIONS: Final = """
UPDATE conversations c SET contact_id = $2, updated_at = now()
WHERE c.contact_id = $1 AND c.merged_into IS NULL
  AND NOT EXISTS (
    SELECT 1 FROM conversations t
    WHERE t.tenant_id = c.tenant_id AND t.channel_id = c.channel_id
      AND t.contact_id = $2 AND t.merged_into IS NULL)
"""
_FOLD_CONVERSATIONS: Final = """
WITH pairs AS (
  SELECT c.id AS src, t.id AS dst, c.unread_count, c.last_message_at, c.last_inbound_at
  FROM conversations c
  JOIN conversations t ON t.tenant_id = c.tenant_id AND t.channel_id = c.channel_id
                      AND t.contact_id = $2 AND t.merged_into IS NULL
  WHERE c.contact_id = $1 AND c.merged_into IS NULL
), moved AS (
  UPDATE messages m SET conversation_id = p.dst FROM pairs p WHERE m.conversation_id = p.src
  RETURNING m.id
), folded AS (
  UPDATE conversations t SET
    unread_count = t.unread_count + p.unread_count,
    last_message_at = greatest(t.last_message_at, p.last_message_at),
    last_inbound_at = greatest(t.last_inbound_at, p.last_inbound_at),
    updated_at = now()
  FROM pairs p WHERE t.id = p.dst
  RETURNING t.id
)
UPDATE conversations c SET merged_into = p.dst, status = 'closed', unread_count = 0,
                           updated_at = now()
FROM pairs p WHERE c.id = p.src
"""
_MOVE_MESSAGES: Final = "UPDATE messages SET contact_id = $2 WHERE contact_id = $1"
_MOVE_SENT_BY: Final = "UPDATE messages SET sender_contact_id = $2 WHERE sender_contact_id = $1"


@dataclass(frozen=True)
class ContactChange:
    """A contact created or changed: what ``ContactUpdated`` reports."""

    contact_id: UUID
    party: Party
    created: bool
    changed: tuple[str, ...]


class ContactResolver:
    """Resolves identities to contact ids within one transaction of one tenant."""

    def __init__(self, conn: Conn, tenant_id: str) -> None:
        self._conn = conn
        self._tenant = tenant_id
        self._known: dict[tuple[str | None, ...], UUID] = {}

    async def resolve(
        self, party: Party, kind: ContactKind = "person"
    ) -> tuple[UUID, ContactChange | None]:
        """The contact ``party`` is (created if new) and the change made, if any."""
        memo = (kind, party.phone, party.lid, party.wa_id, party.name, party.user_id)
        if memo in self._known:
            return self._known[memo], None
        rows = await self._conn.fetch(
            _FIND, self._tenant, party.phone, party.lid, party.wa_id, party.user_id
        )
        plan = plan_contact(party, [_stored(r) for r in rows])
        contact_id, change = await self._apply(plan, kind)
        self._known[memo] = contact_id
        return contact_id, change

    async def _apply(
        self, plan: ContactPlan, kind: ContactKind
    ) -> tuple[UUID, ContactChange | None]:
        if plan.action == "create":
            new_id = uuid4()
            f = plan.fields
            await self._conn.execute(
                _CREATE,
                new_id,
                self._tenant,
                kind,
                f["phone"],
                f["wa_id"],
                f["lid"],
                f["name"],
                f["user_id"],
            )
            changed = tuple(k for k in IDENTITY_FIELDS if f.get(k))
            return new_id, ContactChange(new_id, party_after(plan), True, changed)
        assert plan.target is not None
        target = plan.target.id
        for absorbed in plan.absorbed:
            await self._merge(absorbed.id, target)
        if plan.fields:
            await self._update(target, plan.fields)
        if plan.action == "none":
            return target, None
        return target, ContactChange(target, party_after(plan), False, tuple(plan.fields))

    async def _merge(self, absorbed: UUID, target: UUID) -> None:
        await self._conn.execute(_ABSORB, absorbed, target)
        await self._conn.execute(_REPOINT_CONVERSATIONS, absorbed, target)
        await self._conn.execute(_FOLD_CONVERSATIONS, absorbed, target)
        await self._conn.execute(_MOVE_MESSAGES, absorbed, target)
        await self._conn.execute(_MOVE_SENT_BY, absorbed, target)

    async def _update(self, contact_id: UUID, fields: dict[str, str | None]) -> None:
        names = [k for k in IDENTITY_FIELDS if k in fields]  # column names from a fixed list
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
        await self._conn.execute(
            f"UPDATE contacts SET {sets}, updated_at = now() WHERE id = $1",
            contact_id,
            *(fields[n] for n in names),
        )


def _stored(row: asyncpg.Record) -> StoredContact:
    return StoredContact(
        id=row["id"],
        kind=row["kind"],
        phone=row["phone"],
        wa_id=row["wa_id"],
        lid=row["lid"],
        name=row["name"],
        created_at=row["created_at"],
        user_id=row["user_id"],
    )
