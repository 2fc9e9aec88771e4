"""Every event and command model, by its ``type`` string, with the services that publish it.

``parse_event(type, data)`` turns a payload into its model, e.g. with the ``Zf-Type`` header of a
NATS message. Adding a model means adding it to ``_ENTRIES`` and committing its schema snapshot
(``python -m zapflow.contracts.snapshots --write``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from zapflow.contracts.campaigns import v1 as campaigns_v1
from zapflow.contracts.channels import v1 as channels_v1
from zapflow.contracts.compliance import v1 as compliance_v1
from zapflow.contracts.consent import v1 as consent_v1
from zapflow.contracts.contacts import v1 as contacts_v1
from zapflow.contracts.conversations import v1 as conversations_v1
from zapflow.contracts.dispatcher import v1 as dispatcher_v1
from zapflow.contracts.dlq import v1 as dlq_v1
from zapflow.contracts.envelope import Event
from zapflow.contracts.errors import UnknownEventType
from zapflow.contracts.inbound import v1 as inbound_v1
from zapflow.contracts.ingest import v1 as ingest_v1
from zapflow.contracts.messages import v1 as messages_v1
from zapflow.contracts.sender import v1 as sender_v1
from zapflow.contracts.sending import v1 as sending_v1
from zapflow.contracts.types import SERVICES, ServiceName

_GATEWAY: Final[tuple[ServiceName, ...]] = ("gateway",)
_INGEST: Final[tuple[ServiceName, ...]] = ("ingest",)
_COMPLIANCE: Final[tuple[ServiceName, ...]] = ("compliance",)
_DISPATCHER: Final[tuple[ServiceName, ...]] = ("dispatcher",)

_ENTRIES: Final[tuple[tuple[type[Event], tuple[str, ...]], ...]] = (
    (inbound_v1.WebhookReceived, _GATEWAY),
    (messages_v1.MessageReceived, _INGEST),
    (messages_v1.OutboundMessageRecorded, _INGEST),
    (messages_v1.MessageStatusChanged, _INGEST),
    (messages_v1.MessageEdited, _INGEST),
    (messages_v1.MessageRevoked, _INGEST),
    (contacts_v1.ContactUpdated, _INGEST),
    (consent_v1.ContactOptedOut, _COMPLIANCE),
    (consent_v1.ContactOptedIn, _COMPLIANCE),
    (compliance_v1.ChangeConsent, _GATEWAY),
    (conversations_v1.ConversationAssigned, _INGEST),
    (conversations_v1.ConversationStatusChanged, _INGEST),
    (ingest_v1.AssignConversation, _GATEWAY),
    (ingest_v1.ChangeConversationStatus, _GATEWAY),
    # compliance requests the confirmation of an opt-out/opt-in keyword
    (sending_v1.SendRequested, ("gateway", "dispatcher", "compliance")),
    (sender_v1.SendApproved, _COMPLIANCE),
    (sending_v1.SendVetoed, _COMPLIANCE),
    (sending_v1.SendDeferred, _COMPLIANCE),
    (sending_v1.SendSucceeded, ("sender",)),
    (sending_v1.SendFailed, ("sender",)),
    (campaigns_v1.CampaignCreated, _DISPATCHER),
    (campaigns_v1.CampaignLaunched, _DISPATCHER),
    (campaigns_v1.CampaignPaused, _DISPATCHER),
    (campaigns_v1.CampaignResumed, _DISPATCHER),
    (campaigns_v1.CampaignCancelled, _DISPATCHER),
    (campaigns_v1.CampaignCompleted, _DISPATCHER),
    (campaigns_v1.CampaignProgress, _DISPATCHER),
    (campaigns_v1.CampaignCommandRejected, _DISPATCHER),
    (campaigns_v1.RecipientStateChanged, _DISPATCHER),
    (dispatcher_v1.CreateCampaign, _GATEWAY),
    (dispatcher_v1.LaunchCampaign, _GATEWAY),
    (dispatcher_v1.PauseCampaign, _GATEWAY),
    (dispatcher_v1.ResumeCampaign, _GATEWAY),
    (dispatcher_v1.CancelCampaign, _GATEWAY),
    (channels_v1.ChannelRegistered, _GATEWAY),
    (channels_v1.ChannelUpdated, _GATEWAY),
    (channels_v1.ChannelDisabled, _GATEWAY),
    (dlq_v1.DeadLettered, SERVICES),
    (dlq_v1.DeadLetterReplayed, ("cli",)),
)


def type_name(model: type[Event]) -> str:
    """The ``type`` string a model declares (the default of its ``Literal`` ``type`` field)."""
    default = model.model_fields["type"].default
    if not isinstance(default, str) or not default.startswith("zf."):
        raise TypeError(f"{model.__qualname__} declares no zf.* type")
    return default


REGISTRY: Final[Mapping[str, type[Event]]] = MappingProxyType(
    {type_name(model): model for model, _ in _ENTRIES}
)
"""Type string -> model class, for every event and command of every version."""

PRODUCERS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {type_name(model): services for model, services in _ENTRIES}
)
"""Type string -> what publishes it: services, or ``cli`` for operator tooling (DLQ replay)."""


def model_for(type_name: str) -> type[Event]:
    """The model registered for ``type_name``; raises ``UnknownEventType`` if none is."""
    try:
        return REGISTRY[type_name]
    except KeyError:
        raise UnknownEventType(type_name) from None


def parse_event(type_name: str, data: bytes | str | Mapping[str, Any]) -> Event:
    """Validate a JSON payload (bytes/str) or a decoded mapping as the model of ``type_name``.

    Raises ``UnknownEventType`` for an unregistered type and pydantic's ``ValidationError`` for a
    payload that does not fit (including a ``type`` field that disagrees with ``type_name``).
    """
    model = model_for(type_name)
    if isinstance(data, bytes | str):
        return model.model_validate_json(data)
    return model.model_validate(data)
