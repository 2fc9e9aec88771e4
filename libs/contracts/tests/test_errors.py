"""Error roots carry their data and compose with library subclasses."""

from __future__ import annotations

import pytest

from zapflow.contracts.errors import (
    ContractError,
    InvalidSubjectToken,
    PermanentError,
    ProcessingError,
    TransientError,
    UnknownEventType,
)


def test_transient_errors_carry_code_and_retry_hint() -> None:
    exc = TransientError("provider busy", code="429", retry_after=2.5)
    assert (str(exc), exc.code, exc.retry_after) == ("provider busy", "429", 2.5)
    assert TransientError().retry_after is None
    assert TransientError().code is None


def test_contract_errors_are_permanent_and_keep_their_builtin_kinds() -> None:
    unknown = UnknownEventType("zf.x.y.v1")
    assert isinstance(unknown, ContractError)
    assert isinstance(unknown, PermanentError)
    assert isinstance(unknown, KeyError)
    assert str(unknown) == "unknown event type 'zf.x.y.v1'"
    assert unknown.code == "unknown_event_type"
    bad = InvalidSubjectToken("a.b")
    assert isinstance(bad, ValueError)
    assert isinstance(bad, PermanentError)
    assert bad.token == "a.b"


def test_a_library_subclass_that_passes_only_the_message_still_has_every_attribute() -> None:
    class VendorError(Exception):
        def __init__(self, message: str, *, code: str | None = None) -> None:
            super().__init__(message)
            self.code = code

    class VendorBusy(VendorError, TransientError):
        pass

    exc = VendorBusy("busy", code="130429")
    assert isinstance(exc, ProcessingError)
    assert (exc.code, exc.retry_after, exc.message) == ("130429", None, "busy")
    with pytest.raises(TransientError):
        raise exc
