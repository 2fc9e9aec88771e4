"""End to end through `zapflow up`: REST send → compliance → sender → simulator → status webhooks
→ gateway → ingest → timeline, with nothing in between played by the test.

The whole local system runs as `make run` starts it (six services, the simulator provider, the
demo tenant), on the session's NATS and a fresh database. The test acts only as an integrator
(REST API with the demo key) and as the customer's phone (a signed Meta webhook). At the end
`zapflow audit` compares what Zapflow recorded with the simulator's audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from zapflow.contracts.types import SERVICES
from zapflow.embedded import free_port
from zapflow.testing.types import DatabaseFactory

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
KEY = "zf_demo_local_key"
CHANNEL = "demo-meta"
PHONE_NUMBER_ID = "109876543210987"
APP_SECRET = b"demo-app-secret"
RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


@dataclass
class Stack:
    api: httpx.Client
    env: dict[str, str]
    home: Path

    def conversation_of(self, phone: str, within_s: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            page = self.api.get("/v1/conversations", params={"channel_id": CHANNEL})
            assert page.status_code == 200, page.text
            for conv in page.json()["items"]:
                if conv["contact"].get("phone") == phone:
                    return dict(conv)
            time.sleep(0.2)
        raise AssertionError(f"no conversation with {phone} after {within_s}s")

    def message(self, conversation_id: str, message_id: str) -> dict[str, Any] | None:
        page = self.api.get(f"/v1/conversations/{conversation_id}/messages")
        assert page.status_code == 200, page.text
        found = [m for m in page.json()["items"] if m["id"] == message_id]
        return found[0] if found else None

    def follow(
        self, phone: str, message_id: str, until: set[str], within_s: float = 30.0
    ) -> tuple[dict[str, Any], list[str]]:
        """Poll the timeline until the message reaches a status in ``until``; every status seen."""
        conversation = self.conversation_of(phone)
        seen: list[str] = []
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            msg = self.message(conversation["id"], message_id)
            if msg is not None:
                if not seen or seen[-1] != msg["status"]:
                    seen.append(msg["status"])
                if msg["status"] in until:
                    return msg, seen
            time.sleep(0.1)
        raise AssertionError(f"message {message_id} stuck: statuses seen {seen}")

    def send(self, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        answer = self.api.post("/v1/messages", json=body, headers=headers)
        assert answer.status_code == 202, answer.text
        accepted: dict[str, Any] = answer.json()
        assert accepted["status"] == "queued"
        return accepted


@pytest.fixture(scope="module")
def stack(
    nats_url: str, fresh_db: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("e2e") / "home"
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "DATABASE_URL": fresh_db("e2e"),
        "ZF_HOME": str(home),
        "ZF_LOG_FORMAT": "json",
    }
    for service in (*SERVICES, "simulator"):
        env[f"ZF_{service.upper()}_HTTP_PORT"] = str(free_port())
    log = (home.parent / "up.log").open("w")
    up = subprocess.Popen(
        [BIN / "zapflow", "up", "--ready-timeout", "40"], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{env['ZF_GATEWAY_HTTP_PORT']}"
    try:
        _wait_for_the_demo(up, base, home.parent / "up.log")
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
        ) as api:
            yield Stack(api=api, env=env, home=home)
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(40)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()


def _wait_for_the_demo(up: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert up.poll() is None, log.read_text()[-5000:]
        if "Ctrl-C stops everything" in log.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"zapflow up not ready: {log.read_text()[-5000:]}")


def _inbound_text(phone: str, text: str) -> dict[str, Any]:
    """A Meta webhook carrying one text message from ``phone`` to the demo number."""
    wa_id = phone.removeprefix("+")
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "200000000000001",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "5511999990000",
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "contacts": [{"profile": {"name": "Ana"}, "wa_id": wa_id}],
                            "messages": [
                                {
                                    "from": wa_id,
                                    "id": f"wamid.e2e-{hashlib.sha1(text.encode()).hexdigest()}",
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def _post_signed(api: httpx.Client, doc: dict[str, Any]) -> httpx.Response:
    body = json.dumps(doc).encode()
    sig = "sha256=" + hmac.new(APP_SECRET, body, hashlib.sha256).hexdigest()
    return api.post(
        f"/webhooks/meta/{CHANNEL}",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig},
    )


def _monotonic(statuses: list[str]) -> bool:
    ranks = [RANK[s] for s in statuses]
    return ranks == sorted(ranks)


def test_a_template_reaches_the_phone_and_its_statuses_only_move_forward(stack: Stack) -> None:
    phone = "+5511987650001"
    body = {
        "channel_id": CHANNEL,
        "to": phone,
        "content": {
            "kind": "template",
            "name": "order_update",
            "language": "pt_BR",
            "body_params": ["Ana", "#1234"],
            "rendered_text": "Olá Ana, seu pedido #1234 saiu para entrega.",
        },
    }
    accepted = stack.send(body, key="e2e-template-1")
    again = stack.send(body, key="e2e-template-1")
    assert again["message_id"] == accepted["message_id"]

    msg, seen = stack.follow(phone, accepted["message_id"], until={"delivered", "read"})

    assert msg["direction"] == "outbound"
    assert msg["provider_message_id"], msg
    assert seen[-1] in {"delivered", "read"}
    assert _monotonic(seen), seen
    decision = stack.api.get(f"/v1/messages/{accepted['message_id']}/decision")
    assert decision.status_code == 200, decision.text
    assert decision.json()["outcome"] == "approved"


def test_free_form_text_outside_the_window_is_vetoed_with_its_reason_in_the_timeline(
    stack: Stack,
) -> None:
    phone = "+5511987650002"
    accepted = stack.send(
        {"channel_id": CHANNEL, "to": phone, "content": {"kind": "text", "body": "Oi!"}}
    )

    msg, _ = stack.follow(phone, accepted["message_id"], until={"vetoed", "failed"})

    assert msg["status"] == "vetoed"
    assert msg["error_code"] == "outside_window"
    assert msg["error_text"]
    decision = stack.api.get(f"/v1/messages/{accepted['message_id']}/decision").json()
    assert (decision["outcome"], decision["reason"]) == ("vetoed", "outside_window")


def test_after_the_customer_writes_a_reply_in_the_conversation_is_delivered(
    stack: Stack,
) -> None:
    phone = "+5511987650003"
    assert _post_signed(stack.api, _inbound_text(phone, "Bom dia, meu pedido?")).status_code == 200
    conversation = stack.conversation_of(phone)

    answer = stack.api.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"content": {"kind": "text", "body": "Bom dia! Já saiu para entrega."}},
    )
    assert answer.status_code == 202, answer.text
    message_id = answer.json()["message_id"]

    msg, seen = stack.follow(phone, message_id, until={"delivered", "read", "vetoed", "failed"})
    assert msg["status"] in {"delivered", "read"}, (msg, seen)
    assert _monotonic(seen), seen


def test_zapflow_audit_finds_nothing_lost_duplicated_or_out_of_order(stack: Stack) -> None:
    # after the sends above; what is still in flight shows as pending, not lost
    deadline = time.monotonic() + 20
    while True:
        audit = subprocess.run(
            [
                BIN / "zapflow",
                "audit",
                "--log",
                str(stack.home / "simulator" / "audit.jsonl"),
                "--tenant",
                "demo",
                "--json",
            ],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if audit.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    report = json.loads(audit.stdout)
    assert report["ok"] is True, report
    (demo,) = [c for c in report["channels"] if c["channel_id"] == CHANNEL]
    # the template (sent twice with one key) and the conversation reply reached the provider once
    assert demo["accepted"] >= 2, demo
    assert demo["recorded_sent"] == demo["accepted"], demo
    assert (demo["lost"], demo["duplicated"], demo["out_of_order"]) == (0, 0, 0), demo
