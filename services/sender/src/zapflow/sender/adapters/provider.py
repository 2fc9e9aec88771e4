"""Provider calls through ``zapflow.providers``: contract content in, ``SendResult`` out.

The channel's settings (``ZF_CHANNELS``) say which provider, base URL and account; the gateway's
credentials reply adds the secrets. ``simulator`` channels speak Meta's Cloud API format.
Errors are the adapters' own (``zapflow.providers.errors``); :func:`error_kind` and
:func:`failure_reason` map them to how the sender retries and what ``SendFailed`` says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx

from zapflow.contracts.channels.v1 import ChannelSettings
from zapflow.contracts.content import (
    InteractiveContent,
    MediaContent,
    TemplateContent,
    TextContent,
)
from zapflow.contracts.model import MessageKind
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.contracts.sending.v1 import FailureReason, SendRequest
from zapflow.providers import PROVIDERS, ChannelConfig, SendResult, get_adapter
from zapflow.providers import content as pc
from zapflow.providers.errors import (
    AuthenticationError,
    ChannelConfigError,
    InvalidRecipientError,
    InvalidRequestError,
    OutsideServiceWindowError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    TemplateError,
    TransientError,
    UnsupportedContentError,
)
from zapflow.providers.evolution.outbound import INSTANCE
from zapflow.providers.meta.outbound import GRAPH_BASE_URL, PHONE_NUMBER_ID
from zapflow.providers.zapi.outbound import INSTANCE_ID
from zapflow.runtime.egress import EgressPolicy
from zapflow.sender.adapters.http import BEFORE_WRITE, LeanClient
from zapflow.sender.domain import ErrorKind

ADAPTER_FOR: Final = {"simulator": "meta"}
"""Providers that speak another provider's wire format."""
ACCOUNT_KEY: Final = {"meta": PHONE_NUMBER_ID, "evolution": INSTANCE, "zapi": INSTANCE_ID}
"""The credential name under which each adapter expects ``ChannelSettings.provider_account``."""
DEFAULT_BASE_URL: Final = {"meta": GRAPH_BASE_URL}
IDEMPOTENT_PROVIDERS: Final = frozenset({"wuzapi"})
"""Providers that de-duplicate a resent message by our id (WuzAPI ``Id``): in-doubt sends are
resent to them instead of failed."""
PAIR_RATE_CODE: Final = "131056"
"""Meta's (business, consumer) pair rate limit: only that recipient must wait."""
_TEMPLATE_PROVIDERS: Final = frozenset({"meta"})


class ProviderCalls:
    """The ``ProviderPort``: one adapter per provider, one ``httpx.AsyncClient`` per number.

    Each sending number (provider URL and account) gets its own client on a
    :class:`~zapflow.sender.adapters.http.LeanTransport` with ``max_connections``, so a slow
    number cannot take the connections of the others. Clients idle for ``idle_close_s`` are
    closed. Every connection goes through ``egress``: a channel's base URL is tenant-chosen.
    """

    def __init__(
        self,
        *,
        timeout_s: float,
        max_connections: int,
        egress: EgressPolicy,
        idle_close_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._adapters = {name: get_adapter(name) for name in PROVIDERS}
        self._timeout = httpx.Timeout(timeout_s)
        self._egress = egress
        self._max_connections = max_connections
        self._idle_close_s = idle_close_s
        self._clock = clock
        self._pools: dict[tuple[str, str], _Pool] = {}
        self._closing: set[asyncio.Future[None]] = set()

    async def send(
        self,
        settings: ChannelSettings,
        credentials: ChannelCredentialsReply,
        request: SendRequest,
        *,
        before_write: Callable[[], Awaitable[None]],
    ) -> SendResult:
        wire = wire_provider(settings.provider)
        channel = channel_config(settings, credentials)
        content = outbound_content(request, wire)
        pool = self._pool(channel)
        pool.in_flight += 1
        gate = BEFORE_WRITE.set(before_write)
        try:
            return await self._adapters[wire].send(pool.client, content, channel)
        finally:
            BEFORE_WRITE.reset(gate)
            pool.in_flight -= 1
            pool.used_at = self._clock()

    async def aclose(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.client.aclose()
        if self._closing:
            await asyncio.wait(self._closing)

    def _pool(self, channel: ChannelConfig) -> _Pool:
        key = (channel.base_url, channel.credentials.get(ACCOUNT_KEY.get(channel.provider, ""), ""))
        pool = self._pools.get(key)
        if pool is None:
            self._close_idle()
            client = LeanClient(
                timeout=self._timeout, egress=self._egress, max_connections=self._max_connections
            )
            pool = self._pools[key] = _Pool(client, self._clock())
        return pool

    def _close_idle(self) -> None:
        now = self._clock()
        for key, pool in list(self._pools.items()):
            if pool.in_flight == 0 and now - pool.used_at > self._idle_close_s:
                del self._pools[key]
                task = asyncio.ensure_future(pool.client.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)


@dataclass
class _Pool:
    client: httpx.AsyncClient
    used_at: float
    in_flight: int = 0


def wire_provider(provider: str) -> str:
    return ADAPTER_FOR.get(provider, provider)


def channel_config(
    settings: ChannelSettings, credentials: ChannelCredentialsReply
) -> ChannelConfig:
    wire = wire_provider(settings.provider)
    secrets = dict(credentials.credentials)
    account = settings.provider_account or credentials.provider_account
    if account and wire in ACCOUNT_KEY:
        secrets.setdefault(ACCOUNT_KEY[wire], account)
    base_url = settings.base_url or credentials.base_url or DEFAULT_BASE_URL.get(wire)
    if not base_url:
        raise ChannelConfigError("channel has no provider base URL", provider=wire)
    return ChannelConfig(wire, base_url, secrets)


def outbound_content(request: SendRequest, wire: str) -> pc.OutboundContent:
    """The provider-neutral content the adapters build requests from."""
    content = request.content
    reply = pc.ReplyTo(request.reply_to) if request.reply_to else None
    common: dict[str, Any] = {
        "to": request.to.address,
        "reply_to": reply,
        "client_message_id": str(request.message_id),
    }
    if isinstance(content, TextContent):
        return pc.OutboundContent(text=content.body, preview_url=content.preview_url, **common)
    if isinstance(content, MediaContent):
        return pc.OutboundContent(media=_media(content, wire), **common)
    if isinstance(content, TemplateContent):
        if wire not in _TEMPLATE_PROVIDERS and content.rendered_text:
            return pc.OutboundContent(text=content.rendered_text, **common)
        return pc.OutboundContent(template=_template(content, wire), **common)
    return pc.OutboundContent(interactive=_interactive(content), **common)


def _media(content: MediaContent, wire: str) -> pc.OutboundMedia:
    if content.url is None and content.provider_media_id is None:
        raise UnsupportedContentError(
            "media only in Zapflow's store is not sendable yet", provider=wire
        )
    return pc.OutboundMedia(
        kind=MessageKind(content.media_type.value),
        link=None if content.provider_media_id else content.url,
        media_id=content.provider_media_id,
        caption=content.caption,
        filename=content.filename,
        mime_type=content.mime_type,
    )


def _template(content: TemplateContent, wire: str) -> pc.TemplateContent:
    components: list[dict[str, Any]] = []
    if content.header_media is not None:
        media = _media(content.header_media, wire)
        kind = media.kind.value
        source = {"id": media.media_id} if media.media_id else {"link": media.link}
        components.append({"type": "header", "parameters": [{"type": kind, kind: source}]})
    elif content.header_params:
        params = [{"type": "text", "text": value} for value in content.header_params]
        components.append({"type": "header", "parameters": params})
    body = [{"type": "text", "text": value} for value in content.body_params]
    body += [
        {"type": "text", "parameter_name": name, "text": value}
        for name, value in content.named_params.items()
    ]
    if body:
        components.append({"type": "body", "parameters": body})
    for button in content.buttons:
        components.append(
            {
                "type": "button",
                "sub_type": button.sub_type,
                "index": str(button.index),
                "parameters": [_button_parameter(button.sub_type, button.value)],
            }
        )
    return pc.TemplateContent(content.name, content.language, tuple(components))


def _button_parameter(sub_type: str, value: str) -> dict[str, str]:
    if sub_type == "quick_reply":
        return {"type": "payload", "payload": value}
    if sub_type == "copy_code":
        return {"type": "coupon_code", "coupon_code": value}
    return {"type": "text", "text": value}


def _interactive(content: InteractiveContent) -> pc.InteractiveContent:
    if content.style == "buttons":
        return pc.InteractiveContent(
            kind="button",
            body=content.body,
            buttons=tuple(pc.ReplyButton(b.id, b.title) for b in content.buttons),
            header=content.header,
            footer=content.footer,
        )
    sections = tuple(
        pc.ListSection(
            section.title or "",
            tuple(pc.ListRow(r.id, r.title, r.description) for r in section.rows),
        )
        for section in content.sections
    )
    return pc.InteractiveContent(
        kind="list",
        body=content.body,
        button=content.list_button,
        sections=sections,
        header=content.header,
        footer=content.footer,
    )


def error_kind(exc: ProviderError) -> ErrorKind:
    if isinstance(exc, RateLimitedError):
        if exc.code == PAIR_RATE_CODE:
            return ErrorKind.RECIPIENT_RATE_LIMIT
        return ErrorKind.CHANNEL_RATE_LIMIT
    if isinstance(exc, TransientError):
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


_PERMANENT_REASONS: Final[tuple[tuple[type[ProviderError], FailureReason], ...]] = (
    (AuthenticationError, FailureReason.AUTH_FAILED),
    (InvalidRecipientError, FailureReason.INVALID_RECIPIENT),
    (OutsideServiceWindowError, FailureReason.OUTSIDE_WINDOW),
    (TemplateError, FailureReason.TEMPLATE_MISMATCH),
    (UnsupportedContentError, FailureReason.CONTENT_REJECTED),
    (InvalidRequestError, FailureReason.CONTENT_REJECTED),
    (ChannelConfigError, FailureReason.CHANNEL_DISCONNECTED),
    (RateLimitedError, FailureReason.RATE_LIMITED),
    (ProviderTimeoutError, FailureReason.PROVIDER_UNAVAILABLE),
    (ProviderUnavailableError, FailureReason.PROVIDER_UNAVAILABLE),
)


def failure_reason(exc: ProviderError) -> FailureReason:
    """The provider-neutral reason ``SendFailed`` carries for ``exc``."""
    for cls, reason in _PERMANENT_REASONS:
        if isinstance(exc, cls):
            return reason
    return FailureReason.UNKNOWN
