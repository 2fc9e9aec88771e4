"""Error roots every Zapflow service maps to an outcome, and the errors of the contracts library.

```
ProcessingError               root; attributes ``message`` and ``code`` (a short stable id)
├── TransientError            a retry may help (timeouts, 429, 5xx, DB serialization failures);
│                             ``retry_after`` (seconds) is a hint when known
└── PermanentError            it never will (invalid recipient, consent missing, 4xx)
    └── ContractError         raised by ``zapflow.contracts`` itself
        ├── UnknownEventType      a type name no registered model declares (also a KeyError)
        └── InvalidSubjectToken   a value unsafe as a NATS subject token (also a ValueError)
```
The runtime maps ``TransientError`` to a delayed redelivery and ``PermanentError`` (or pydantic's
``ValidationError`` for a malformed payload) to a dead letter. Libraries subclass these roots
(``zapflow.providers.errors``); their ``__init__`` may pass only the message, so every other
attribute has a default.
"""

from __future__ import annotations


class ProcessingError(Exception):
    """Base of the two roots; carries a message and an optional stable ``code``."""

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class TransientError(ProcessingError):
    """A retry, after a delay, may succeed."""

    def __init__(
        self, message: str = "", *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class PermanentError(ProcessingError):
    """Retrying will never help; the input is dead-lettered with the reason."""


class ContractError(PermanentError):
    """Root of the errors raised by ``zapflow.contracts``."""


class UnknownEventType(ContractError, KeyError):
    """No registered model has this ``type``."""

    def __init__(self, type_name: str) -> None:
        super().__init__(f"unknown event type {type_name!r}", code="unknown_event_type")
        self.type_name = type_name

    def __str__(self) -> str:
        return self.message


class InvalidSubjectToken(ContractError, ValueError):
    """A value is empty or contains characters that are not safe in a NATS subject token."""

    def __init__(self, token: str) -> None:
        super().__init__(f"invalid subject token {token!r}", code="invalid_subject_token")
        self.token = token
