"""Recording outbound messages inside the ingest-outbound transaction.

A request (``SendRequested``, or the request a ``SendVetoed`` carries) records the outbound
message once, by its ``message_id``, status ``queued``: in the conversation the request names
(when it is the tenant's, on that channel), else in the recipient's conversation on the channel
(contact and conversation created as for inbound). Vetoes and send outcomes are then applied by
``pg_outcomes`` (parked there when they come first). The caller owns the transaction and holds
the advisory locks; every change is collected as an event for the outbox.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from uuid import UUID, uuid4

from zapflow.contracts.common import Actor, ActorKind
from zapflow.contracts.envelope import Event
from zapflow.contracts.sending.v1 import SendFailed, SendRequest, SendRequested, SendSucceeded
from zapflow.ingest import events
from zapflow.ingest.adapters import pgjson
from zapflow.ingest.adapters.pg_contacts import ContactResolver
from zapflow.ingest.adapters.pg_items import OPEN_THREAD
from zapflow.ingest.adapters.pg_outcomes import Outcomes
from zapflow.ingest.adapters.pgretry import Race
from zapflow.ingest.adapters.pgtypes import Conn
from zapflow.ingest.events import SendCause
from zapflow.ingest.outbound import (
    SendEvent,
    message_id_of,
    outcome_of,
    recipient_party,
    timeline_content,
)

SYSTEM: Final = Actor(kind=ActorKind.SYSTEM, id="ingest")

# a request seen after its veto: the message takes the (earlier) request time
_EARLIER: Final = "UPDATE messages SET sent_at = $2 WHERE id = $1 AND sent_at > $2"
_GIVEN_THREAD: Final = """
SELECT id, contact_id FROM conversations
WHERE tenant_id = $1 AND channel_id = $3 AND merged_into IS NULL AND id = (
  SELECT coalesce(merged_into, id) FROM conversations WHERE tenant_id = $1 AND id = $2)
FOR NO KEY UPDATE
"""
_CONTACT_THREAD: Final = """
SELECT id FROM conversations
WHERE tenant_id = $1 AND channel_id = $2 AND contact_id = $3 AND merged_into IS NULL
FOR NO KEY UPDATE
"""
_RECORD: Final = """
WITH ins AS (
  INSERT INTO messages
    (id, tenant_id, channel_id, conversation_id, contact_id, direction, kind, from_me, text,
     media, content, reply_to, status, status_at, sent_at, source_event_id, origin, campaign_id,
     recipient_id, requested_by)
  VALUES ($1, $2, $3, $4, $5, 'outbound', $6, true, $7, $8::jsonb, $9::jsonb, $10, 'queued',
          $11, $11, $12, $13, $14, $15, $16::jsonb)
  RETURNING conversation_id
)
UPDATE conversations c SET last_message_at = greatest(c.last_message_at, $11), updated_at = now()
FROM ins WHERE c.id = ins.conversation_id
"""


class SendRun:
    """The work of one send event inside its transaction; collects the events to publish.

    ``locked`` are the advisory lock keys the transaction holds (see ``pg_outcomes``).
    """

    def __init__(self, conn: Conn, cause: SendCause, locked: frozenset[int]) -> None:
        self.conn = conn
        self.cause = cause
        self.contacts = ContactResolver(conn, cause.tenant_id)
        self.events: list[Event] = []
        self.outcomes = Outcomes(conn, cause, locked, self.events)

    async def apply(self, evt: SendEvent) -> None:
        if not isinstance(evt, SendSucceeded | SendFailed):
            await self.record(evt.request, evt.occurred_at)
        if isinstance(evt, SendRequested):
            return
        message = await self.outcomes.load(message_id_of(evt))
        if message is None:
            await self.outcomes.park(evt)
        else:
            outcome = outcome_of(evt)
            await self.outcomes.settle(message, outcome, outcome.status.value)

    async def record(self, request: SendRequest, at: datetime) -> None:
        """The message in its conversation, queued, unless recorded before; then the outcomes
        that were parked for it."""
        if await self.outcomes.load(request.message_id) is not None:
            await self.conn.execute(_EARLIER, request.message_id, at)
            return
        conversation_id, contact_id = await self._thread(request, at)
        shown = timeline_content(request.content)
        await self.conn.execute(
            _RECORD,
            request.message_id,
            self.cause.tenant_id,
            request.channel_id,
            conversation_id,
            contact_id,
            shown.kind.value,
            pgjson.text(shown.text),
            pgjson.dumps(shown.media),
            pgjson.dumps({"outbound": request.content.model_dump(mode="json")}),
            pgjson.text(request.reply_to),
            at,
            self.cause.id,
            request.origin.value,
            request.campaign_id,
            request.recipient_id,
            pgjson.dumps(request.requested_by),
        )
        self.events.append(
            events.outbound_recorded(
                self.cause,
                "recorded",
                conversation_id=conversation_id,
                contact_id=contact_id,
                request=request,
            )
        )
        await self.outcomes.apply_parked(request.message_id)
        await self.outcomes.adopt_echoed(request.message_id)

    async def _thread(self, request: SendRequest, at: datetime) -> tuple[UUID, UUID]:
        """(conversation, contact) of the message: the one named, else the recipient's."""
        tenant, channel = self.cause.tenant_id, request.channel_id
        if request.conversation_id is not None:
            row = await self.conn.fetchrow(_GIVEN_THREAD, tenant, request.conversation_id, channel)
            if row is not None:
                return row["id"], row["contact_id"]
        party, kind = recipient_party(request.to)
        contact_id, change = await self.contacts.resolve(party, kind)
        if change is not None:
            self.events.append(
                events.contact_updated(
                    self.cause,
                    "contact",
                    contact_id=contact_id,
                    party=change.party,
                    created=change.created,
                    changed=change.changed,
                )
            )
        found = await self.conn.fetchval(_CONTACT_THREAD, tenant, channel, contact_id)
        if found is not None:
            return found, contact_id
        group_id = party.wa_id if kind == "group" else None
        opened = await self.conn.fetchval(
            OPEN_THREAD, uuid4(), tenant, channel, contact_id, group_id, at
        )
        if opened is None:
            raise Race("conversation created concurrently")
        self.events.append(
            events.conversation_opened(
                self.cause,
                "conversation",
                conversation_id=opened,
                contact_id=contact_id,
                previous=None,
                changed_by=request.requested_by or SYSTEM,
            )
        )
        return opened, contact_id
