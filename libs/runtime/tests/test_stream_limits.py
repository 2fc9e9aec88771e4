"""How a deployment stores the declared streams: shared settings → limits → stream configs."""

import pytest
from nats.js.api import DiscardPolicy, RetentionPolicy
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from zapflow.contracts.specs import GiB
from zapflow.contracts.streams import ALL_STREAMS, DAY, ZF_CHANNELS, ZF_INBOUND, ZF_SENDER
from zapflow.runtime.broker import StreamLimits, stream_config
from zapflow.runtime.settings import BaseServiceSettings


class SenderLike(BaseServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="ZF_SENDER_", extra="ignore", populate_by_name=True
    )


def test_declared_limits_reach_the_stream_config() -> None:
    for spec in ALL_STREAMS:
        config = stream_config(StreamLimits().apply(spec), 1)
        assert config.max_bytes == spec.max_bytes
        assert config.max_age == (spec.max_age_s or 0)
        assert config.discard == (DiscardPolicy.NEW if spec.discard == "new" else DiscardPolicy.OLD)
    sender = stream_config(ZF_SENDER, 3)
    assert (sender.retention, sender.discard, sender.num_replicas) == (
        RetentionPolicy.WORK_QUEUE,
        DiscardPolicy.NEW,
        3,
    )


def test_shared_settings_override_size_age_and_replicas_for_every_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZF_STREAM_REPLICAS", "3")
    monkeypatch.setenv("ZF_STREAM_MAX_BYTES", '{"ZF_INBOUND": "4GiB", "ZF_CHANNELS": "64MiB"}')
    monkeypatch.setenv("ZF_STREAM_MAX_AGE", '{"ZF_INBOUND": "P14D"}')
    monkeypatch.setenv("ZF_SENDER_STREAM_REPLICAS", "2")  # not a setting: replicas are shared

    limits = SenderLike().stream_limits()

    assert limits.replicas == 3
    inbound = stream_config(limits.apply(ZF_INBOUND), limits.replicas)
    assert (inbound.max_bytes, inbound.max_age, inbound.num_replicas) == (4 * GiB, 14 * DAY, 3)
    channels = limits.apply(ZF_CHANNELS)
    assert (channels.max_bytes, channels.max_age_s) == (64 * 1024 * 1024, None)
    assert limits.apply(ZF_SENDER) == ZF_SENDER


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ZF_STREAM_MAX_BYTES", '{"ZF_NOPE": "1GiB"}'),
        ("ZF_STREAM_MAX_AGE", '{"zf_inbound": 60}'),
        ("ZF_STREAM_MAX_BYTES", '{"ZF_INBOUND": "10KiB"}'),  # below what a stream may declare
        ("ZF_STREAM_MAX_AGE", '{"ZF_INBOUND": 1}'),  # shorter than its duplicate window
        ("ZF_STREAM_REPLICAS", "7"),
    ],
)
def test_a_bad_stream_setting_fails_at_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises((ValidationError, ValueError)):
        SenderLike().stream_limits()
