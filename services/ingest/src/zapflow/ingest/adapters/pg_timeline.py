"""Changes to stored messages: delivery receipts, edits and revokes, in PostgreSQL.

A change for a provider id that is not stored yet is kept (receipts in
``message_status_history`` with ``message_id`` NULL, edits and revokes in
``message_pending_changes``) and applied by :meth:`Timeline.apply_pending` when the message is
inserted. A receipt that names one of our outbound messages by the id we sent with it (Meta
``biz_opaque_callback_data``) links its provider id to that message when the message has none
yet: the sender may have died before it recorded the provider's answer. Receipts never move a
status backwards (``status_advances``); every receipt is kept in the history, applied or not.
The caller owns the transaction; each method returns the events to publish.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

from zapflow.contracts.common import SendOrigin
from zapflow.contracts.envelope import Event
from zapflow.contracts.model import DeliveryStatus, MessageEdit, MessageRevoke, StatusUpdate
from zapflow.ingest import events
from zapflow.ingest.adapters import pgjson
from zapflow.ingest.adapters.pgtypes import Conn
from zapflow.ingest.domain import Receipt, echoed_message_id, fold_statuses
from zapflow.ingest.events import Campaign, Cause

_TARGET: Final = """
SELECT id, conversation_id, status, edited_at, revoked, origin, campaign_id, recipient_id
FROM messages
WHERE channel_id = $1 AND provider_message_id = $2
FOR NO KEY UPDATE
"""
_RECORD_RECEIPT: Final = """
INSERT INTO message_status_history
  (tenant_id, channel_id, provider_message_id, message_id, status, at, error_code, error_text,
   applied, source_event_id, client_message_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT ON CONSTRAINT message_status_history_receipt DO NOTHING
RETURNING id
"""
_SET_STATUS: Final = """
UPDATE messages SET status = $2, status_at = $3, error_code = $4, error_text = $5 WHERE id = $1
"""
_PENDING_RECEIPTS: Final = """
SELECT id, status, at, error_code, error_text, client_message_id FROM message_status_history
WHERE channel_id = $1 AND provider_message_id = $2 AND message_id IS NULL
FOR UPDATE
"""
_ADOPT_RECEIPTS: Final = """
UPDATE message_status_history SET message_id = $3, applied = (id = $4)
WHERE channel_id = $1 AND provider_message_id = $2 AND message_id IS NULL
"""
# our outbound message, named by the id we sent with it, takes the provider id (it has none yet)
_LINK_ECHOED: Final = """
UPDATE messages SET provider_message_id = $4
WHERE id = $1 AND tenant_id = $2 AND channel_id = $3 AND origin IS NOT NULL
  AND provider_message_id IS NULL
RETURNING id
"""
_KEEP_CHANGE: Final = """
INSERT INTO message_pending_changes
  (tenant_id, channel_id, provider_message_id, change, at, payload)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
ON CONFLICT ON CONSTRAINT message_pending_changes_once DO NOTHING
"""
_TAKE_CHANGES: Final = """
DELETE FROM message_pending_changes WHERE channel_id = $1 AND provider_message_id = $2
RETURNING change, at, payload
"""
_EDIT: Final = """
UPDATE messages SET text = $2, edited = true, edited_at = $3, edit_message_id = $4 WHERE id = $1
"""
_REVOKE: Final = """
UPDATE messages SET revoked = true, revoked_at = $2, revoke_message_id = $3 WHERE id = $1
"""


@dataclass(frozen=True)
class Target:
    """A stored message a change applies to."""

    id: UUID
    conversation_id: UUID
    status: DeliveryStatus | None
    edited_at: datetime | None
    revoked: bool
    campaign: Campaign


class Timeline:
    """Applies receipts, edits and revokes inside the transaction of ``src`` (a raw webhook, or
    the send event that linked a provider id to its outbound message)."""

    def __init__(self, conn: Conn, src: Cause) -> None:
        self._conn = conn
        self._src = src

    async def _target(self, provider_message_id: str) -> Target | None:
        row = await self._conn.fetchrow(_TARGET, self._src.channel_id, provider_message_id)
        if row is None:
            return None
        status = DeliveryStatus(row["status"]) if row["status"] else None
        origin = SendOrigin(row["origin"]) if row["origin"] else None
        campaign = Campaign(origin, row["campaign_id"], row["recipient_id"])
        return Target(
            row["id"], row["conversation_id"], status, row["edited_at"], row["revoked"], campaign
        )

    async def status(self, key: str, update: StatusUpdate) -> list[Event]:
        """Record the receipt; apply it if it moves its message forward. A receipt for a provider
        id no message holds waits, unless it names an outbound message of ours by the id we
        sent (the caller holds that message's lock): then the id is linked and every receipt
        that waited for it is applied."""
        target = await self._target(update.provider_message_id)
        receipt = Receipt(
            update.status, update.at, update.error_code, update.error_text, update.client_message_id
        )
        advances = target is not None and fold_statuses(target.status, [receipt]) is not None
        recorded = await self._conn.fetchval(
            _RECORD_RECEIPT,
            self._src.tenant_id,
            self._src.channel_id,
            update.provider_message_id,
            target.id if target else None,
            update.status.value,
            update.at,
            pgjson.text(update.error_code),
            pgjson.text(update.error_text),
            advances,
            self._src.id,
            update.client_message_id,
        )
        if target is None:
            if await self.link_echoed(update.client_message_id, update.provider_message_id):
                return await self.apply_pending(key, update.provider_message_id)
            return []
        if not advances or recorded is None:
            return []
        return [await self._set_status(key, target, update.provider_message_id, receipt)]

    async def link_echoed(self, client_message_id: str | None, provider_message_id: str) -> bool:
        """Give ``provider_message_id`` to the outbound message named by ``client_message_id``
        (ours: same tenant and channel, sent through Zapflow, no provider id yet)."""
        message_id = echoed_message_id(client_message_id)
        if message_id is None:
            return False
        linked = await self._conn.fetchval(
            _LINK_ECHOED,
            message_id,
            self._src.tenant_id,
            self._src.channel_id,
            provider_message_id,
        )
        return linked is not None

    async def _set_status(
        self, key: str, target: Target, provider_message_id: str, receipt: Receipt
    ) -> Event:
        await self._conn.execute(
            _SET_STATUS,
            target.id,
            receipt.status.value,
            receipt.at,
            pgjson.text(receipt.error_code),
            pgjson.text(receipt.error_text),
        )
        return events.status_changed(
            self._src,
            key,
            message_id=target.id,
            provider_message_id=provider_message_id,
            conversation_id=target.conversation_id,
            status=receipt.status,
            previous=target.status,
            at=receipt.at,
            error_code=receipt.error_code,
            error_text=receipt.error_text,
            campaign=target.campaign,
            client_message_id=receipt.client_message_id,
        )

    async def edit(self, key: str, edit: MessageEdit) -> list[Event]:
        target = await self._target(edit.provider_message_id)
        if target is None:
            await self._keep("edit", edit.provider_message_id, edit.at, pgjson.dumps(edit))
            return []
        if target.revoked or (target.edited_at is not None and target.edited_at >= edit.at):
            return []  # a stale edit, or an edit of a deleted message
        await self._conn.execute(
            _EDIT, target.id, pgjson.text(edit.text), edit.at, pgjson.text(edit.change_message_id)
        )
        return [
            events.message_edited(
                self._src,
                key,
                message_id=target.id,
                conversation_id=target.conversation_id,
                edit=edit,
            )
        ]

    async def revoke(self, key: str, revoke: MessageRevoke) -> list[Event]:
        target = await self._target(revoke.provider_message_id)
        if target is None:
            await self._keep("revoke", revoke.provider_message_id, revoke.at, pgjson.dumps(revoke))
            return []
        if target.revoked:
            return []
        await self._conn.execute(
            _REVOKE, target.id, revoke.at, pgjson.text(revoke.change_message_id)
        )
        return [
            events.message_revoked(
                self._src,
                key,
                message_id=target.id,
                conversation_id=target.conversation_id,
                revoke=revoke,
            )
        ]

    async def _keep(
        self, change: str, provider_message_id: str, at: datetime, payload: str | None
    ) -> None:
        await self._conn.execute(
            _KEEP_CHANGE,
            self._src.tenant_id,
            self._src.channel_id,
            provider_message_id,
            change,
            at,
            payload,
        )

    async def apply_pending(self, key: str, provider_message_id: str) -> list[Event]:
        """Apply what arrived for ``provider_message_id`` before it was stored (just now)."""
        out: list[Event] = []
        target = await self._target(provider_message_id)
        assert target is not None, "apply_pending runs right after the insert"
        rows = await self._conn.fetch(_PENDING_RECEIPTS, self._src.channel_id, provider_message_id)
        if rows:
            receipts = {
                Receipt(
                    DeliveryStatus(r["status"]),
                    r["at"],
                    r["error_code"],
                    r["error_text"],
                    r["client_message_id"],
                ): r["id"]
                for r in rows
            }
            winner = fold_statuses(target.status, receipts)
            await self._conn.execute(
                _ADOPT_RECEIPTS,
                self._src.channel_id,
                provider_message_id,
                target.id,
                receipts[winner] if winner else None,
            )
            if winner is not None:
                out.append(
                    await self._set_status(f"{key}/status", target, provider_message_id, winner)
                )
        changes = await self._conn.fetch(_TAKE_CHANGES, self._src.channel_id, provider_message_id)
        for n, row in enumerate(sorted(changes, key=lambda r: r["at"])):
            change_key = f"{key}/pending/{n}"
            if row["change"] == "edit":
                out += await self.edit(change_key, MessageEdit.model_validate_json(row["payload"]))
            else:
                out += await self.revoke(
                    change_key, MessageRevoke.model_validate_json(row["payload"])
                )
        return out
