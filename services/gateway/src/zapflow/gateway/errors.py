"""Errors of the gateway's use cases; the HTTP layer maps each to one status code.

The tree::

    GatewayError                 base; ``reason`` is a short fixed phrase safe to show a client
    ├── NotFoundError            404: no such tenant or channel *for this tenant*
    ├── ConflictError            409: the id is taken (channel ids are global: webhook URLs), the
    │                            target's state refuses the request (a disabled channel), or an
    │                            Idempotency-Key was already used for a different request
    ├── InvalidRequestError      400: the request is well-formed but not acceptable
    └── SecretsError             a sealed secret cannot be opened (wrong key, tampered row);
                                 never shown to a client: the API answers 500, logs the channel id

Reasons never contain secrets, phone numbers or message bodies.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of the gateway's errors; ``reason`` is what a client may read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFoundError(GatewayError):
    """The tenant or channel does not exist, or belongs to another tenant."""


class ConflictError(GatewayError):
    """A tenant, key or channel with this id already exists, the target's state (a disabled
    channel) rules the request out, or its Idempotency-Key belongs to another request."""


class InvalidRequestError(GatewayError):
    """Acceptable JSON, unacceptable content (e.g. a secret name the provider does not use)."""


class SecretsError(GatewayError):
    """A sealed secret could not be opened with any configured key."""
