"""The demo ``zapflow up`` seeds and the simulator it configures describe the same number."""

from pathlib import Path

from zapflow.cli import demo
from zapflow.gateway import admin_cli
from zapflow.simulator.config import SimulatorSettings


def test_simulator_number_matches_the_seeded_gateway_channel() -> None:
    channel = admin_cli.demo_channel(demo.provider_base_url())
    settings = SimulatorSettings.model_validate(demo.simulator_config())
    (number,) = settings.numbers

    assert (admin_cli.DEMO_TENANT, admin_cli.DEMO_API_KEY) == (demo.TENANT, demo.API_KEY)
    assert number.channel_id == channel.id == demo.CHANNEL
    assert number.phone_number_id == channel.provider_account
    assert number.access_token is not None
    assert number.app_secret is not None
    assert number.access_token.get_secret_value() == channel.secrets["access_token"]
    assert number.app_secret.get_secret_value() == channel.secrets["app_secret"]
    assert settings.replies.probability > 0


def test_simulator_service_writes_its_config_and_points_webhooks_at_the_gateway(
    tmp_path: Path,
) -> None:
    svc = demo.simulator_service(tmp_path)

    config = tmp_path / "simulator" / "config.json"
    assert config.is_file()
    assert svc.command == "zapflow-simulator"
    args = list(svc.args)
    assert args[0] == "serve"
    assert args[args.index("--config") + 1] == str(config)
    assert args[args.index("--gateway-url") + 1] == demo.gateway().base_url()
    assert args[args.index("--audit-log") + 1] == str(tmp_path / "simulator" / "audit.jsonl")


def test_zapflow_up_runs_a_development_deployment_that_reaches_loopback() -> None:
    env = demo.local_env({"ZF_ENV": "production", "PATH": "/bin"})
    assert env["ZF_ENV"] == "development"
    assert env["ZF_EGRESS_ALLOW"] == "127.0.0.0/8,::1/128"
    assert env["PATH"] == "/bin"
    lan = demo.local_env({"ZF_EGRESS_ALLOW": "10.20.0.0/16,"})
    assert lan["ZF_EGRESS_ALLOW"] == "10.20.0.0/16,127.0.0.0/8,::1/128"
