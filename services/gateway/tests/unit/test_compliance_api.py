"""The compliance API over fakes: what it asks compliance, how it maps replies, consent commands."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from zapflow.contracts.common import ActorKind
from zapflow.contracts.compliance.v1 import ChangeConsent, ConsentState
from zapflow.contracts.consent.v1 import ConsentSource
from zapflow.contracts.queries import QueryFailure
from zapflow.contracts.queries import compliance_v1 as cq
from zapflow.contracts.subjects import COMPLIANCE_CHANGE_CONSENT_V1, subject, subject_for

TENANT = "acme"


@pytest.fixture
def api(rest_api: Any) -> Any:
    rest_api.log.channels[(TENANT, "loja")] = True
    rest_api.log.channels[("other", "theirs")] = True
    return rest_api


# -- decisions --------------------------------------------------------------------------------


async def test_a_decision_is_read_for_the_callers_tenant(api: Any) -> None:
    message_id = uuid4()
    decided = cq.DecisionReply(
        found=True,
        message_id=message_id,
        channel_id="loja",
        outcome=cq.Outcome.VETOED,
        reason="opted_out",
        text="The contact opted out of messages.",
        decided_at=datetime.now(UTC),
        decision_id=uuid4(),
        evaluations=1,
    )
    api.nats.answers[cq.DECISION] = lambda _: decided
    response = await api.client.get(f"/v1/messages/{message_id}/decision")
    assert response.status_code == 200
    assert cq.DecisionReply.model_validate(response.json()) == decided
    assert api.nats.requests == [
        (cq.DECISION, {"tenant_id": TENANT, "message_id": str(message_id)})
    ]


async def test_no_decision_is_404(api: Any) -> None:
    api.nats.answers[cq.DECISION] = lambda q: cq.DecisionReply(
        found=False, message_id=q["message_id"]
    )
    response = await api.client.get(f"/v1/messages/{uuid4()}/decision")
    assert (response.status_code, response.json()) == (
        404,
        {"error": "no decision for this message (yet)"},
    )


@pytest.mark.parametrize(
    ("answer", "status", "error"),
    [
        (None, 503, "compliance unavailable"),
        (QueryFailure(code="internal", message="query failed"), 503, "compliance unavailable"),
        (QueryFailure(code="unavailable", message="retry"), 503, "compliance unavailable"),
        (
            QueryFailure(code="bad_request", message="address: String should have at most 128"),
            400,
            "address: String should have at most 128",
        ),
    ],
)
async def test_compliance_failures_map_to_503_and_refusals_to_400(
    api: Any, answer: Any, status: int, error: str | None
) -> None:
    if answer is not None:
        api.nats.answers[cq.DECISION] = lambda _: answer
    response = await api.client.get(f"/v1/messages/{uuid4()}/decision")
    assert response.status_code == status
    assert response.json()["error"] == error
    if status == 503:
        assert response.headers["retry-after"] == "1"


async def test_a_message_id_must_be_a_uuid(api: Any) -> None:
    response = await api.client.get("/v1/messages/not-a-uuid/decision")
    assert response.status_code == 400
    assert api.nats.requests == []


# -- rules ------------------------------------------------------------------------------------


async def test_rules_are_read_and_replaced_with_the_api_key_as_actor(api: Any) -> None:
    stored: dict[str, Any] = {}

    def put(command: dict[str, Any]) -> cq.RulesReply:
        stored.update(command)
        rules = cq.TenantRules.model_validate(command["rules"])
        return cq.RulesReply(tenant_id=command["tenant_id"], rules=rules, is_default=False)

    api.nats.answers[cq.RULES] = lambda q: cq.RulesReply(
        tenant_id=q["tenant_id"], rules=cq.TenantRules(), is_default=True
    )
    api.nats.answers[cq.PUT_RULES] = put
    read = await api.client.get("/v1/compliance/rules")
    assert read.status_code == 200
    assert read.json()["is_default"] is True
    assert read.json()["rules"]["opt_out_keywords"] == list(cq.DEFAULT_OPT_OUT_KEYWORDS)

    new_rules = {"duplicate_interval_s": 0, "opt_out_keywords": ["PARE"]}
    put_answer = await api.client.put("/v1/compliance/rules", json=new_rules)
    assert put_answer.status_code == 200, put_answer.text
    assert put_answer.json()["rules"]["opt_out_keywords"] == ["PARE"]
    assert stored["tenant_id"] == TENANT
    assert stored["requested_by"] == {"kind": ActorKind.API_KEY, "id": "key-1"}


@pytest.mark.parametrize(
    ("rules", "reason"),
    [
        ({"duplicate_interval_s": -1}, "duplicate_interval_s: Input should be greater"),
        ({"quiet_hours_start": "22:00:00"}, "Value error, quiet_hours_start and quiet_hours_end"),
        ({"timezone": "Mars/Olympus"}, "timezone: Value error, unknown time zone"),
        ({"opt_out_keyword": ["X"]}, "opt_out_keyword: Extra inputs are not permitted"),
    ],
)
async def test_invalid_rules_are_400_and_never_reach_compliance(
    api: Any, rules: dict[str, Any], reason: str
) -> None:
    response = await api.client.put("/v1/compliance/rules", json=rules)
    assert response.status_code == 400, response.text
    assert any(r.startswith(reason) for r in response.json()["reasons"]), response.json()
    assert api.nats.requests == []


# -- consent ----------------------------------------------------------------------------------


async def test_consent_is_asked_with_the_phone_in_e164(api: Any) -> None:
    api.nats.answers[cq.CONSENT] = lambda _: cq.ConsentReply(
        state=ConsentState.OPTED_OUT, changed_at=datetime.now(UTC), source=ConsentSource.API
    )
    response = await api.client.get(
        "/v1/contacts/consent", params={"channel_id": "loja", "address": "+55 (11) 99999-0001"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "opted_out"
    assert api.nats.requests == [
        (cq.CONSENT, {"tenant_id": TENANT, "address": "+5511999990001", "channel_id": "loja"})
    ]


async def test_a_provider_address_is_asked_as_given(api: Any) -> None:
    api.nats.answers[cq.CONSENT] = lambda _: cq.ConsentReply(state=None)
    params = {"channel_id": "loja", "address": "201245678901234@lid"}
    response = await api.client.get("/v1/contacts/consent", params=params)
    assert response.json()["state"] is None
    assert api.nats.requests[0][1]["address"] == "201245678901234@lid"


async def test_consent_on_another_tenants_channel_is_404(api: Any) -> None:
    params = {"channel_id": "theirs", "address": "+5511999990001"}
    response = await api.client.get("/v1/contacts/consent", params=params)
    assert (response.status_code, response.json()) == (404, {"error": "unknown channel"})
    assert api.nats.requests == []


@pytest.mark.parametrize(
    ("path", "state"),
    [
        ("/v1/consent/opt-out", ConsentState.OPTED_OUT),
        ("/v1/consent/opt-in", ConsentState.OPTED_IN),
    ],
)
async def test_opt_in_and_out_enqueue_a_change_consent_command(
    api: Any, path: str, state: ConsentState
) -> None:
    body = {"phone": "+5511999990001", "channel_id": "loja", "note": "pediu por e-mail"}
    response = await api.client.post(path, json=body)
    assert response.status_code == 202, response.text
    [command] = api.log.events
    assert isinstance(command, ChangeConsent)
    assert response.json() == {
        "command_id": str(command.id),
        "status": "accepted",
        "state": state.value,
        "channel_id": "loja",
    }
    assert (command.tenant_id, command.phone, command.channel_id) == (
        TENANT,
        "+5511999990001",
        "loja",
    )
    assert (command.state, command.source, command.note) == (
        state,
        ConsentSource.API,
        "pediu por e-mail",
    )
    assert command.requested_by.kind is ActorKind.API_KEY
    assert subject_for(command) == subject(COMPLIANCE_CHANGE_CONSENT_V1, TENANT)


async def test_an_opt_out_without_channel_covers_every_channel(api: Any) -> None:
    body = {"phone": "+5511999990001", "source": "import"}
    response = await api.client.post("/v1/consent/opt-out", json=body)
    assert response.status_code == 202
    [command] = api.log.events
    assert command.channel_id is None
    assert command.source is ConsentSource.IMPORT


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"phone": "+5511999990001", "channel_id": "theirs"}, 404),
        ({"phone": "11999990001"}, 400),
        ({"phone": "+5511999990001", "source": "keyword"}, 400),
        ({"phone": "+5511999990001", "state": "opted_in"}, 400),
    ],
)
async def test_refused_consent_changes_enqueue_nothing(
    api: Any, body: dict[str, Any], status: int
) -> None:
    response = await api.client.post("/v1/consent/opt-out", json=body)
    assert response.status_code == status, response.text
    assert api.log.events == []
