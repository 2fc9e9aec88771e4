"""API-key scopes: what a key may do. Every ``/v1`` route requires exactly one scope, the
narrowest that covers it; ``admin`` holds every scope.

=====================  ==========================================================================
scope                  routes
=====================  ==========================================================================
``messages:read``      ``GET /v1/conversations``, ``/v1/conversations/{id}``,
                       ``/v1/conversations/{id}/messages``, ``/v1/contacts/{id}``,
                       ``/v1/contacts?phone=``, ``/v1/messages/search``, ``/v1/media/{id}``,
                       ``/v1/messages/{id}/decision``
``messages:send``      ``POST /v1/messages``, ``POST /v1/conversations/{id}/messages``
``compliance:read``    ``GET /v1/compliance/rules``, ``GET /v1/contacts/consent``
``compliance:write``   ``PUT /v1/compliance/rules``
``consent:write``      ``POST /v1/consent/opt-out``, ``POST /v1/consent/opt-in``
``channels:read``      ``GET /v1/channels``, ``GET /v1/channels/{id}``
``channels:write``     ``POST /v1/channels``, ``PATCH /v1/channels/{id}``,
                       ``POST /v1/channels/{id}/disable``, ``/enable``
``keys:admin``         ``GET``, ``POST /v1/api-keys``, ``POST /v1/api-keys/{id}/revoke``: only
                       scopes the caller holds can be granted
``admin``              everything
=====================  ==========================================================================

So a key made for sending (``messages:send``, maybe ``messages:read``) cannot change channels,
compliance rules or consent, nor mint keys.
"""

from __future__ import annotations

from typing import Final

MESSAGES_READ: Final = "messages:read"
MESSAGES_SEND: Final = "messages:send"
COMPLIANCE_READ: Final = "compliance:read"
COMPLIANCE_WRITE: Final = "compliance:write"
CONSENT_WRITE: Final = "consent:write"
CHANNELS_READ: Final = "channels:read"
CHANNELS_WRITE: Final = "channels:write"
KEYS_ADMIN: Final = "keys:admin"
ADMIN: Final = "admin"

SCOPES: Final = {
    MESSAGES_READ: "read conversations, timelines, contacts, media and send decisions",
    MESSAGES_SEND: "send messages",
    COMPLIANCE_READ: "read compliance rules and a contact's consent",
    COMPLIANCE_WRITE: "replace compliance rules",
    CONSENT_WRITE: "record opt-ins and opt-outs",
    CHANNELS_READ: "read channels",
    CHANNELS_WRITE: "register, change, disable and enable channels",
    KEYS_ADMIN: "list, issue and revoke API keys (with scopes the caller holds)",
    ADMIN: "every scope",
}
"""Every scope with what it allows; a key's scopes must come from here."""


def unknown_scopes(scopes: list[str] | tuple[str, ...] | frozenset[str]) -> list[str]:
    """The entries of ``scopes`` that are not scopes, in order."""
    return [scope for scope in scopes if scope not in SCOPES]
