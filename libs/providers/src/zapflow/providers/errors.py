"""Errors raised by ``zapflow.providers``; no vendor or httpx exception leaves the package.

The tree, caught by level (like httpx's ``_exceptions.py``)::

    ProviderError                      every error; attributes provider, code, http_status, detail,
    │                                  retry_after
    ├── TransientError                 a retry may help: back off and try again
    │   ├── ProviderTimeoutError       connect/read/write/pool timeout
    │   ├── ProviderUnavailableError   connection failure, HTTP 5xx, instance not connected
    │   └── RateLimitedError           HTTP 429, Meta 130429 (throughput), 131056 (pair rate),
    │                                  4 (app request limit), 80007 (WABA rate limit)
    └── PermanentError                 it never will: fail at once with the reason
        ├── AuthenticationError        bad/expired token (Meta 190, HTTP 401/403, Client-Token)
        ├── InvalidRecipientError      number not on WhatsApp / undeliverable (Meta 131026)
        ├── OutsideServiceWindowError  free-form message >24 h after the last reply (Meta 131047)
        ├── TemplateError              template missing/mismatched parameters (Meta 132000-132999)
        ├── InvalidRequestError        the provider rejected the request as malformed (HTTP 4xx)
        ├── UnsupportedContentError    the adapter cannot express this content for this provider
        ├── ChannelConfigError         missing credential, bad base URL, unknown instance
        │   └── RequestNotAllowedError non-loopback URL, ``ZF_ALLOW_PROVIDER_REQUESTS`` unset, or
        │                              an address the egress guard refuses (``egress_refused``)
        ├── UnexpectedResponseError    a 2xx answer without the fields we need (the message may have
        │                              gone out: do not retry blindly)
        └── WebhookError               an inbound webhook we refuse (ingest dead-letters it)
            ├── WebhookAuthError       signature/token missing or wrong (gateway: 401)
            └── WebhookPayloadError    body is not the provider's envelope at all (gateway: 400)

``TransientError`` and ``PermanentError`` subclass the roots of the same names in
``zapflow.contracts.errors``, so a consumer maps a provider failure like any other.

``code`` is the provider's own error code as a string (``"131047"``, ``"not_on_whatsapp"``), so it
can be stored and compared across vendors. ``str(error)`` never contains message bodies, phone
numbers or secrets; ``detail`` holds the provider's explanation and may, so log ids, not ``detail``.
"""

from __future__ import annotations

from zapflow.contracts import errors as roots


class ProviderError(Exception):
    """Base of every error raised by a provider adapter."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        code: str | None = None,
        http_status: int | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.code = code
        self.http_status = http_status
        self.detail = detail
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"code={self.code!r}, http_status={self.http_status!r})"
        )


class TransientError(ProviderError, roots.TransientError):
    """A retry with backoff may succeed; ``retry_after`` (seconds) is a hint when known."""


class ProviderTimeoutError(TransientError):
    """The provider did not answer in time (the request may or may not have been processed)."""


class ProviderUnavailableError(TransientError):
    """Connection failure, HTTP 5xx or a provider-side session that is not connected."""


class RateLimitedError(TransientError):
    """A throughput, pair-rate or application rate limit was hit."""


class PermanentError(ProviderError, roots.PermanentError):
    """Retrying the same request will not help."""


class AuthenticationError(PermanentError):
    """Credentials are missing, wrong or expired."""


class InvalidRecipientError(PermanentError):
    """The recipient cannot receive WhatsApp messages (not registered, undeliverable)."""


class OutsideServiceWindowError(PermanentError):
    """Free-form message outside the 24 h customer service window; send a template instead."""


class TemplateError(PermanentError):
    """The template does not exist, is not approved, or its parameters do not match."""


class InvalidRequestError(PermanentError):
    """The provider rejected the request as malformed."""


class UnsupportedContentError(PermanentError):
    """The content cannot be sent through this provider (e.g. templates on Z-API)."""


class ChannelConfigError(PermanentError):
    """The channel's configuration is incomplete or wrong."""


class RequestNotAllowedError(ChannelConfigError):
    """A request to a non-loopback host while ``ZF_ALLOW_PROVIDER_REQUESTS`` is unset, or to an
    address the egress guard refuses (code ``egress_refused``)."""


class UnexpectedResponseError(PermanentError):
    """A success answer we cannot read; the message may have been sent, so it is not retried."""


class WebhookError(PermanentError):
    """An inbound webhook that is refused; ``reason`` says why in a short fixed phrase."""

    def __init__(self, reason: str, *, provider: str | None = None) -> None:
        super().__init__(reason, provider=provider)
        self.reason = reason


class WebhookAuthError(WebhookError):
    """The webhook's signature or token is missing or wrong."""


class WebhookPayloadError(WebhookError):
    """The body is not parseable JSON/form or not the provider's envelope."""
