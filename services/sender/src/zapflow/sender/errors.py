"""Errors of the sender, under the two roots of ``zapflow.contracts.errors``.

```
TransientError
├── QueryUnavailable              (runtime.rpc) no CHANNEL_CREDENTIALS answer: retried in place
└── RetriesExhaustedError         the last attempt failed transiently: SendFailed + dead letter
PermanentError
├── UnknownChannelError           no ChannelRegistered for the channel: dead letter, no SendFailed
└── InDoubtError                  the previous owner died during the provider call, and no
                                  provider status resolved it (domain.doubt): SendFailed + dead
                                  letter
```
A dead letter of the sender carries the provider attempt count as ``delivery_count``.
"""

from __future__ import annotations

from zapflow.contracts.errors import PermanentError, TransientError


class RetriesExhaustedError(TransientError):
    def __init__(self, attempts: int, code: str | None, text: str) -> None:
        super().__init__(f"retries exhausted after {attempts} attempts: {text}", code=code)
        self.attempts = attempts


class UnknownChannelError(PermanentError):
    def __init__(self, tenant_id: str, channel_id: str) -> None:
        super().__init__(f"unknown channel {tenant_id}/{channel_id}", code="unknown_channel")
        self.tenant_id = tenant_id
        self.channel_id = channel_id


class InDoubtError(PermanentError):
    CODE = "in_doubt"

    def __init__(self, attempts: int) -> None:
        super().__init__(
            "sender stopped during the provider call; the provider may have accepted it "
            f"(attempt {attempts}); replay to send again",
            code=self.CODE,
        )
        self.attempts = attempts
