"""The provider adapter interface (:class:`ProviderAdapter`) and the values it takes and returns.

One adapter per vendor (``meta``, ``evolution``, ``zapi``, ``wuzapi``) turns that vendor's HTTP wire
format into the canonical model of ``zapflow.contracts.model`` and back:

* inbound: :meth:`ProviderAdapter.verify_webhook` (signature/token) then
  :meth:`ProviderAdapter.parse_webhook` -> :class:`ParsedWebhook`;
* outbound: :meth:`ProviderAdapter.build_send_request` -> :class:`HttpRequestSpec` (pure),
  :meth:`ProviderAdapter.parse_send_response` -> :class:`SendResult`,
  :meth:`ProviderAdapter.classify_error` -> a :mod:`zapflow.providers.errors` class, and
  :meth:`ProviderAdapter.send`, which wraps the three around an ``httpx.AsyncClient``.

Adapters are stateless apart from an injectable clock, so one instance serves every channel.
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import httpx

from zapflow.contracts.envelope import Contract, utcnow
from zapflow.contracts.model import (
    DeliveryStatus,
    Message,
    MessageEdit,
    MessageRevoke,
    Party,
    StatusUpdate,
)
from zapflow.providers import _http
from zapflow.providers._wire import JsonDict
from zapflow.providers.content import (
    InteractiveContent,
    ListRow,
    ListSection,
    OutboundContent,
    OutboundMedia,
    ReplyButton,
    ReplyTo,
    TemplateContent,
)
from zapflow.providers.errors import (
    ChannelConfigError,
    ProviderError,
    UnexpectedResponseError,
    WebhookAuthError,
)
from zapflow.providers.identity import ReceivingIdentity

__all__ = [
    "ChannelConfig",
    "ChannelSecrets",
    "EventName",
    "HttpRequestSpec",
    "InteractiveContent",
    "ListRow",
    "ListSection",
    "OutboundContent",
    "OutboundMedia",
    "ParsedWebhook",
    "ProviderAdapter",
    "ReceivingIdentity",
    "ReplyButton",
    "ReplyTo",
    "SendResult",
    "TemplateContent",
]


@dataclass(frozen=True)
class ChannelSecrets:
    """A channel's webhook secrets; each is optional and only the configured ones are checked.

    ``app_secret`` Meta signature key, ``verify_token`` Meta GET handshake, ``hmac_key`` WuzAPI
    signature key, ``api_key`` Evolution ``apikey`` header, ``jwt_key`` Evolution HS256 bearer key,
    ``client_token`` Z-API ``Client-Token`` header, ``path_token`` a per-channel secret that must
    come back as the ``token`` query parameter (or the value the gateway passes as ``path_token``).
    """

    app_secret: str | None = field(default=None, repr=False)
    verify_token: str | None = field(default=None, repr=False)
    hmac_key: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    jwt_key: str | None = field(default=None, repr=False)
    client_token: str | None = field(default=None, repr=False)
    path_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ChannelConfig:
    """Where and as whom to send: ``credentials`` keys are listed in each vendor module."""

    provider: str
    base_url: str
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)

    def credential(self, key: str) -> str:
        value = self.credentials.get(key)
        if not value:
            raise ChannelConfigError(f"missing credential {key!r}", provider=self.provider)
        return value


@dataclass(frozen=True)
class HttpRequestSpec:
    """A provider HTTP call, fully built but not sent."""

    method: str
    base_url: str
    path: str = field(repr=False)  # may embed credentials (Z-API instance token)
    headers: Mapping[str, str] = field(repr=False)
    json: JsonDict | None = field(default=None, repr=False)  # bodies and phones never reach logs

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + self.path


@dataclass(frozen=True)
class SendResult:
    """What the provider answered to a send: its message id and the status it implies."""

    provider_message_id: str
    status: DeliveryStatus
    recipient: Party | None = None
    at: datetime | None = None


EventName = Literal["message", "status", "edit", "revoke", "contact"]


@dataclass
class ParsedWebhook:
    """Everything one webhook body carried, in canonical form.

    ``ignored`` lists short fixed reasons for items deliberately dropped (``"read-self receipt"``,
    ``"connection.update"``), so a caller can count them without reading the payload.
    ``receiving`` names the business number(s) or instance the payload says received it
    (:mod:`zapflow.providers.identity`): one per distinct Meta ``phone_number_id``, at most one
    for the other providers.
    """

    receiving: list[ReceivingIdentity] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    edits: list[MessageEdit] = field(default_factory=list)
    revokes: list[MessageRevoke] = field(default_factory=list)
    contacts: list[Party] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def events(self) -> Iterator[tuple[EventName, Contract]]:
        """Each canonical item with its event name, messages first."""
        yield from (("message", m) for m in self.messages)
        yield from (("status", s) for s in self.statuses)
        yield from (("edit", e) for e in self.edits)
        yield from (("revoke", r) for r in self.revokes)
        yield from (("contact", c) for c in self.contacts)


def tokens_equal(supplied: str | None, expected: str) -> bool:
    """Constant-time comparison of a supplied secret with the expected one."""
    if supplied is None:
        return False
    return hmac.compare_digest(supplied.encode(), expected.encode())


class ProviderAdapter(ABC):
    """One vendor's wire format. Subclasses set ``name`` and implement the abstract methods."""

    name: ClassVar[str]

    def __init__(self, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock

    # -- inbound ---------------------------------------------------------------------------------

    def verify_webhook(
        self,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str],
        secrets: ChannelSecrets,
        *,
        path_token: str | None = None,
    ) -> None:
        """Raise :class:`WebhookAuthError` unless the request proves it comes from the provider.

        Every configured mechanism must pass: the provider's own (signature, header token, JWT) and
        ``secrets.path_token``, compared with ``path_token`` when given, else the ``token`` query
        parameter. A channel with no secret configured at all is refused (fail closed).
        """
        lowered = {key.lower(): value for key, value in headers.items()}
        checked = self._check_native_auth(lowered, body, secrets)
        if secrets.path_token is not None:
            supplied = path_token if path_token is not None else query.get("token")
            if not tokens_equal(supplied, secrets.path_token):
                raise WebhookAuthError("path token missing or wrong", provider=self.name)
            checked = True
        if not checked:
            raise WebhookAuthError("no webhook secret configured for channel", provider=self.name)

    @abstractmethod
    def _check_native_auth(
        self, headers: Mapping[str, str], body: bytes, secrets: ChannelSecrets
    ) -> bool:
        """Check the provider's own mechanism: True if configured and valid, False if none is
        configured; raise :class:`WebhookAuthError` if configured and invalid. Header keys are
        lower-case."""

    @abstractmethod
    def parse_webhook(
        self, body: bytes, content_type: str, *, channel_phone: str | None = None
    ) -> ParsedWebhook:
        """Parse one webhook body. Raises only :class:`WebhookPayloadError`, and only when the body
        is not parseable or not this provider's envelope; anything unknown inside becomes an
        ``unsupported`` message (raw kept) or an ``ignored`` reason. With ``channel_phone``, items
        the payload says were addressed to another business number are ignored."""

    # -- outbound --------------------------------------------------------------------------------

    @abstractmethod
    def build_send_request(self, msg: OutboundContent, channel: ChannelConfig) -> HttpRequestSpec:
        """The HTTP call that sends ``msg``; raises :class:`UnsupportedContentError` or
        :class:`ChannelConfigError`."""

    @abstractmethod
    def classify_error(
        self, status_code: int, body: bytes, *, headers: Mapping[str, str] | None = None
    ) -> ProviderError:
        """The error a failed call means (returned, not raised)."""

    @abstractmethod
    def _read_send_success(self, data: Any) -> SendResult | None:
        """The result of a 2xx answer's decoded JSON, or None when it lacks what we need."""

    def parse_send_response(
        self, status_code: int, body: bytes, *, headers: Mapping[str, str] | None = None
    ) -> SendResult:
        """A 2xx answer's :class:`SendResult`; raises the classified error for anything else."""
        if not 200 <= status_code < 300:
            raise self.classify_error(status_code, body, headers=headers)
        result = self._read_send_success(_http.response_json(body))
        if result is None:
            raise UnexpectedResponseError(
                f"{self.name} answered {status_code} without a message id",
                provider=self.name,
                http_status=status_code,
            )
        return result

    async def send(
        self, client: httpx.AsyncClient, msg: OutboundContent, channel: ChannelConfig
    ) -> SendResult:
        """Build, perform and read one send. Transport failures become :class:`TransientError`;
        a non-loopback URL is refused unless ``ZF_ALLOW_PROVIDER_REQUESTS`` is set."""
        spec = self.build_send_request(msg, channel)
        response = await _http.perform(
            client, spec.method, spec.url, spec.headers, spec.json, self.name
        )
        return self.parse_send_response(
            response.status_code, response.content, headers=response.headers
        )
