"""One valid instance of every registered contract, for round-trip and subject tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from zapflow.contracts.campaigns import v1 as campaigns
from zapflow.contracts.channels import v1 as channels
from zapflow.contracts.common import Actor, ActorKind, SendOrigin
from zapflow.contracts.compliance import v1 as compliance
from zapflow.contracts.consent import v1 as consent
from zapflow.contracts.contacts import v1 as contacts
from zapflow.contracts.content import TemplateContent, TextContent
from zapflow.contracts.conversations import v1 as conversations
from zapflow.contracts.dispatcher import v1 as dispatcher
from zapflow.contracts.dlq import v1 as dlq
from zapflow.contracts.envelope import Event
from zapflow.contracts.inbound import v1 as inbound
from zapflow.contracts.ingest import v1 as ingest
from zapflow.contracts.messages import v1 as messages
from zapflow.contracts.model import (
    DeliveryStatus,
    Direction,
    Message,
    MessageEdit,
    MessageKind,
    MessageRevoke,
    Party,
)
from zapflow.contracts.sender import v1 as sender
from zapflow.contracts.sending import v1 as sending

TENANT = "acme"
CHANNEL = "sales-1"
PHONE = "+5511999990001"
AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ID = UUID("00000000-0000-4000-8000-000000000001")
OPERATOR = Actor(kind=ActorKind.OPERATOR, id="user-1")
PARTY = Party(phone=PHONE, name="Ana")
COUNTS = campaigns.RecipientCounts(total=3, sent=2, failed=1)
CHANNEL_SETTINGS = channels.ChannelSettings(
    channel_id=CHANNEL,
    provider="meta",
    pace=channels.PaceSettings(rate_per_second=5, burst=10),
    credentials_ref="secret://acme/sales-1",
)


def send_request(**overrides: object) -> sending.SendRequest:
    """A valid operator send request; keyword arguments override fields."""
    fields: dict[str, object] = {
        "message_id": ID,
        "channel_id": CHANNEL,
        "to": sending.Recipient(phone=PHONE),
        "content": TextContent(body="hello"),
        "origin": SendOrigin.OPERATOR,
        "idempotency_key": "k-1",
    }
    return sending.SendRequest.model_validate({**fields, **overrides})


def _message() -> Message:
    return Message(
        provider_message_id="wamid.1",
        direction=Direction.INBOUND,
        kind=MessageKind.TEXT,
        sent_at=AT,
        contact=PARTY,
        text="hi",
    )


def _samples() -> list[Event]:
    request = send_request()
    return [
        inbound.WebhookReceived(
            tenant_id=TENANT, provider="meta", channel_id=CHANNEL, received_at=AT, body_b64="e30="
        ),
        messages.MessageReceived(
            tenant_id=TENANT,
            message_id=ID,
            conversation_id=ID,
            contact_id=ID,
            channel_id=CHANNEL,
            provider="meta",
            message=_message(),
        ),
        messages.OutboundMessageRecorded(
            tenant_id=TENANT,
            message_id=ID,
            conversation_id=ID,
            contact_id=ID,
            channel_id=CHANNEL,
            content=TextContent(body="hello"),
            origin=SendOrigin.OPERATOR,
        ),
        messages.MessageStatusChanged(
            tenant_id=TENANT,
            message_id=ID,
            conversation_id=ID,
            channel_id=CHANNEL,
            status=DeliveryStatus.DELIVERED,
            previous=DeliveryStatus.SENT,
            at=AT,
        ),
        messages.MessageEdited(
            tenant_id=TENANT,
            message_id=ID,
            conversation_id=ID,
            channel_id=CHANNEL,
            edit=MessageEdit(provider_message_id="wamid.1", text="hi!", at=AT, contact=PARTY),
        ),
        messages.MessageRevoked(
            tenant_id=TENANT,
            message_id=ID,
            conversation_id=ID,
            channel_id=CHANNEL,
            revoke=MessageRevoke(provider_message_id="wamid.1", at=AT, contact=PARTY),
        ),
        contacts.ContactUpdated(tenant_id=TENANT, contact_id=ID, party=PARTY, created=True),
        consent.ContactOptedOut(
            tenant_id=TENANT, phone=PHONE, source=consent.ConsentSource.KEYWORD, keyword="stop"
        ),
        consent.ContactOptedIn(tenant_id=TENANT, phone=PHONE, source=consent.ConsentSource.API),
        compliance.ChangeConsent(
            tenant_id=TENANT,
            phone=PHONE,
            state=compliance.ConsentState.OPTED_OUT,
            source=consent.ConsentSource.OPERATOR,
            requested_by=OPERATOR,
        ),
        conversations.ConversationAssigned(
            tenant_id=TENANT,
            conversation_id=ID,
            contact_id=ID,
            channel_id=CHANNEL,
            assignee="user-1",
        ),
        conversations.ConversationStatusChanged(
            tenant_id=TENANT,
            conversation_id=ID,
            contact_id=ID,
            channel_id=CHANNEL,
            status=conversations.ConversationStatus.OPEN,
        ),
        ingest.AssignConversation(tenant_id=TENANT, conversation_id=ID, requested_by=OPERATOR),
        ingest.ChangeConversationStatus(
            tenant_id=TENANT,
            conversation_id=ID,
            status=conversations.ConversationStatus.CLOSED,
            requested_by=OPERATOR,
        ),
        sending.SendRequested(tenant_id=TENANT, request=request),
        sender.SendApproved(tenant_id=TENANT, request=request, decision_id=ID),
        sending.SendVetoed(
            tenant_id=TENANT,
            request=request,
            decision_id=ID,
            reason=sending.VetoReason.OPTED_OUT,
            text="contact opted out",
        ),
        sending.SendDeferred(
            tenant_id=TENANT,
            request=request,
            decision_id=ID,
            until=AT,
            reason=sending.DeferReason.QUIET_HOURS,
            text="quiet hours",
        ),
        sending.SendSucceeded(
            tenant_id=TENANT,
            message_id=ID,
            channel_id=CHANNEL,
            provider="meta",
            provider_message_id="wamid.2",
            attempts=1,
            sent_at=AT,
        ),
        sending.SendFailed(
            tenant_id=TENANT,
            message_id=ID,
            channel_id=CHANNEL,
            provider="meta",
            reason=sending.FailureReason.INVALID_RECIPIENT,
            permanent=True,
            attempts=1,
            failed_at=AT,
        ),
        campaigns.CampaignCreated(
            tenant_id=TENANT,
            campaign_id=ID,
            name="Promo",
            channel_id=CHANNEL,
            audience_kind=campaigns.AudienceKind.LIST,
        ),
        campaigns.CampaignLaunched(tenant_id=TENANT, campaign_id=ID, recipients_total=3),
        campaigns.CampaignPaused(tenant_id=TENANT, campaign_id=ID, paused_by=OPERATOR),
        campaigns.CampaignResumed(tenant_id=TENANT, campaign_id=ID),
        campaigns.CampaignCancelled(tenant_id=TENANT, campaign_id=ID, counts=COUNTS),
        campaigns.CampaignCompleted(tenant_id=TENANT, campaign_id=ID, counts=COUNTS),
        campaigns.CampaignProgress(tenant_id=TENANT, campaign_id=ID, counts=COUNTS),
        campaigns.CampaignCommandRejected(
            tenant_id=TENANT,
            campaign_id=ID,
            command_id=ID,
            command_type="zf.dispatcher.launch_campaign.v1",
            reason="unknown campaign",
        ),
        campaigns.RecipientStateChanged(
            tenant_id=TENANT,
            campaign_id=ID,
            recipient_id=ID,
            message_id=ID,
            state=campaigns.RecipientState.SENT,
            previous=campaigns.RecipientState.QUEUED,
            at=AT,
        ),
        dispatcher.CreateCampaign(
            tenant_id=TENANT,
            campaign_id=ID,
            name="Promo",
            channel_id=CHANNEL,
            content=TemplateContent(name="promo", language="pt_BR", body_params=("{{name}}",)),
            audience=campaigns.Audience(kind=campaigns.AudienceKind.LIST, list_id="vip"),
            requested_by=OPERATOR,
        ),
        dispatcher.LaunchCampaign(tenant_id=TENANT, campaign_id=ID, requested_by=OPERATOR),
        dispatcher.PauseCampaign(tenant_id=TENANT, campaign_id=ID, requested_by=OPERATOR),
        dispatcher.ResumeCampaign(tenant_id=TENANT, campaign_id=ID, requested_by=OPERATOR),
        dispatcher.CancelCampaign(tenant_id=TENANT, campaign_id=ID, requested_by=OPERATOR),
        channels.ChannelRegistered(tenant_id=TENANT, channel=CHANNEL_SETTINGS),
        channels.ChannelUpdated(tenant_id=TENANT, channel=CHANNEL_SETTINGS, changed=("pace",)),
        channels.ChannelDisabled(tenant_id=TENANT, channel_id=CHANNEL),
        dlq.DeadLettered(
            tenant_id=TENANT,
            service="sender",
            original_subject="zf.sender.send_approved.v1.acme.sales-1.3",
            original_payload_b64="e30=",
            error_class="zapflow.providers.errors.InvalidRecipient",
            error_text="invalid recipient",
            delivery_count=3,
            failed_at=AT,
        ),
        dlq.DeadLetterReplayed(
            tenant_id=TENANT,
            dead_letter_id=ID,
            service="sender",
            republished_subject="zf.sender.send_approved.v1.acme.sales-1",
            republished_msg_id=str(uuid4()),
        ),
    ]


@pytest.fixture(scope="session")
def samples() -> dict[str, Event]:
    """Type string -> one valid instance of that type."""
    return {sample.type: sample for sample in _samples()}


@pytest.fixture(scope="session")
def make_request() -> Callable[..., sending.SendRequest]:
    """Builder of valid send requests with overrides."""
    return send_request
