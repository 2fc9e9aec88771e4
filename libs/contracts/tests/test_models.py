"""Rules the contracts enforce on their own: addresses, campaign references, content shapes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from zapflow.contracts.campaigns.v1 import Audience, AudienceKind
from zapflow.contracts.channels.v1 import PaceSettings
from zapflow.contracts.common import SendOrigin
from zapflow.contracts.content import (
    InteractiveContent,
    MediaContent,
    MediaType,
    OutboundContent,
    ReplyButton,
    TemplateContent,
    TextContent,
)
from zapflow.contracts.envelope import Event
from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.model import DeliveryStatus, status_advances
from zapflow.contracts.sending.v1 import Recipient, SendRequest

MakeRequest = Callable[..., SendRequest]
BUTTON = {"id": "1", "title": "Yes"}


def test_events_are_immutable(samples: dict[str, Event]) -> None:
    sample = next(iter(samples.values()))
    with pytest.raises(ValidationError):
        sample.tenant_id = "other"  # type: ignore[misc]


def _webhook() -> WebhookReceived:
    return WebhookReceived(
        tenant_id="acme",
        provider="zapi",
        channel_id="c1",
        received_at=datetime.fromisoformat("2025-01-01T00:00:00+00:00"),
        body_b64="",
    )


def test_envelope_defaults_are_fresh_and_utc_aware() -> None:
    first, second = _webhook(), _webhook()
    assert first.id != second.id
    assert first.occurred_at.utcoffset() is not None
    assert first.correlation_id is None
    assert first.causation_id is None


@pytest.mark.parametrize("tenant", ["", "Acme", "a.b", "a*", "a>", "a b", "-a", "x" * 65])
def test_tenant_ids_must_be_safe_subject_tokens(tenant: str) -> None:
    with pytest.raises(ValidationError):
        WebhookReceived(
            tenant_id=tenant,
            provider="meta",
            channel_id="c1",
            received_at=datetime.fromisoformat("2025-01-01T00:00:00+00:00"),
            body_b64="",
        )


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValidationError):
        WebhookReceived(
            tenant_id="acme",
            provider="meta",
            channel_id="c1",
            received_at=datetime(2025, 1, 1),  # noqa: DTZ001 - the point of the test
            body_b64="",
        )


def test_a_recipient_needs_a_phone_or_a_provider_address() -> None:
    with pytest.raises(ValidationError, match="phone or wa_id"):
        Recipient()
    assert Recipient(wa_id="123@lid").address == "123@lid"
    assert Recipient(phone="+5511999990001", wa_id="x").address == "+5511999990001"


def test_campaign_sends_need_campaign_and_recipient_ids(make_request: MakeRequest) -> None:
    with pytest.raises(ValidationError, match="campaign_id and recipient_id"):
        make_request(origin=SendOrigin.CAMPAIGN)
    request = make_request(
        origin=SendOrigin.CAMPAIGN,
        campaign_id="00000000-0000-4000-8000-000000000002",
        recipient_id="00000000-0000-4000-8000-000000000003",
    )
    assert request.campaign_id is not None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"kind": "text", "body": "hi"}, TextContent),
        ({"kind": "media", "media_type": "image", "url": "https://x/y.png"}, MediaContent),
        ({"kind": "template", "name": "t", "language": "en"}, TemplateContent),
        (
            {"kind": "interactive", "style": "buttons", "body": "b", "buttons": [BUTTON]},
            InteractiveContent,
        ),
    ],
)
def test_content_is_discriminated_by_kind(data: dict[str, Any], expected: type) -> None:
    assert type(TypeAdapter(OutboundContent).validate_python(data)) is expected


def test_media_needs_a_source() -> None:
    with pytest.raises(ValidationError, match="url, stored_key or provider_media_id"):
        MediaContent(media_type=MediaType.IMAGE)


def test_interactive_content_must_fit_its_style() -> None:
    with pytest.raises(ValidationError, match="at least one button"):
        InteractiveContent(style="buttons", body="pick")
    with pytest.raises(ValidationError, match="sections and list_button"):
        InteractiveContent(style="list", body="pick")
    with pytest.raises(ValidationError):
        InteractiveContent(
            style="buttons",
            body="pick",
            buttons=tuple(ReplyButton(id=str(i), title="t") for i in range(4)),
        )


def test_text_is_bounded_by_whatsapp_limits() -> None:
    with pytest.raises(ValidationError):
        TextContent(body="")
    with pytest.raises(ValidationError):
        TextContent(body="x" * 4097)


@pytest.mark.parametrize("kind", list(AudienceKind))
def test_an_audience_needs_the_reference_of_its_kind(kind: AudienceKind) -> None:
    with pytest.raises(ValidationError, match="lacks its reference"):
        Audience(kind=kind)


def test_pace_ranges_are_ordered() -> None:
    with pytest.raises(ValidationError, match="min bound"):
        PaceSettings(rate_per_second=1, jitter_min_s=2, jitter_max_s=1)
    with pytest.raises(ValidationError):
        PaceSettings(rate_per_second=0)
    assert PaceSettings(rate_per_second=0.5, pause_min_s=10, pause_max_s=30).burst == 1


@pytest.mark.parametrize(
    ("current", "new", "advances"),
    [
        (None, DeliveryStatus.VETOED, True),
        (DeliveryStatus.QUEUED, DeliveryStatus.VETOED, True),
        (DeliveryStatus.SENT, DeliveryStatus.VETOED, False),
        (DeliveryStatus.READ, DeliveryStatus.VETOED, False),
        (DeliveryStatus.QUEUED, DeliveryStatus.SENT, True),
        (DeliveryStatus.DELIVERED, DeliveryStatus.SENT, False),
        (DeliveryStatus.SENT, DeliveryStatus.FAILED, True),
        (DeliveryStatus.READ, DeliveryStatus.FAILED, False),
        (DeliveryStatus.VETOED, DeliveryStatus.SENT, False),
        (DeliveryStatus.FAILED, DeliveryStatus.SENT, False),
        (DeliveryStatus.SENT, DeliveryStatus.READ, True),
        (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, False),
        (DeliveryStatus.DELIVERED, DeliveryStatus.VETOED, False),
        (DeliveryStatus.VETOED, DeliveryStatus.VETOED, False),
    ],
)
def test_statuses_only_move_forward_and_a_veto_only_replaces_queued(
    current: DeliveryStatus | None, new: DeliveryStatus, advances: bool
) -> None:
    assert status_advances(current, new) is advances


def test_played_comes_after_read_and_never_goes_back() -> None:
    from zapflow.contracts.model import DeliveryStatus as S
    from zapflow.contracts.model import status_advances

    assert status_advances(S.READ, S.PLAYED)
    assert status_advances(S.DELIVERED, S.PLAYED)
    assert not status_advances(S.PLAYED, S.READ)
    assert not status_advances(S.PLAYED, S.DELIVERED)
    assert not status_advances(S.PLAYED, S.FAILED)
    assert not status_advances(S.PLAYED, S.PLAYED)
