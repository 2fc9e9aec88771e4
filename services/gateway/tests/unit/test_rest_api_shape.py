"""The REST API as a whole: body limit (413), route precedence and the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

TENANT = "acme"
LIMIT = 4096  # the rest_api fixture's api_max_body_bytes


def text_send(size: int) -> dict[str, Any]:
    return {
        "channel_id": "loja",
        "to": "+5511999990001",
        "content": {"kind": "text", "body": "x" * size},
    }


async def test_a_declared_oversized_body_is_413_without_reaching_a_route(rest_api: Any) -> None:
    rest_api.log.channels[(TENANT, "loja")] = True
    body = json.dumps(text_send(LIMIT)).encode()
    response = await rest_api.client.post(
        "/v1/messages", content=body, headers={"content-type": "application/json"}
    )
    assert (response.status_code, response.json()) == (413, {"error": "body too large"})
    assert rest_api.log.events == []


async def test_a_streamed_oversized_body_is_413(rest_api: Any) -> None:
    rest_api.log.channels[(TENANT, "loja")] = True
    body = json.dumps(text_send(LIMIT)).encode()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = await rest_api.client.post(
        "/v1/messages", content=chunks(), headers={"content-type": "application/json"}
    )
    assert (response.status_code, response.json()) == (413, {"error": "body too large"})
    assert rest_api.log.events == []


async def test_a_body_under_the_limit_is_served(rest_api: Any) -> None:
    rest_api.log.channels[(TENANT, "loja")] = True
    response = await rest_api.client.post("/v1/messages", json=text_send(LIMIT - 200))
    assert response.status_code == 202, response.text


async def test_consent_is_not_taken_for_a_contact_id(rest_api: Any) -> None:
    response = await rest_api.client.get(
        "/v1/contacts/consent", params={"channel_id": "nope", "address": "+5511999990001"}
    )
    assert (response.status_code, response.json()) == (404, {"error": "unknown channel"})


async def test_the_openapi_document_lists_the_new_routes_with_their_answers(
    rest_api: Any,
) -> None:
    document = (await rest_api.client.get("/openapi.json")).json()
    paths = document["paths"]
    send = paths["/v1/messages"]["post"]
    assert set(send["responses"]) == {"202", "400", "401", "403", "404", "409", "413", "503"}
    assert send["responses"]["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }
    assert any(p["name"] == "Idempotency-Key" for p in send["parameters"])
    assert "post" in paths["/v1/conversations/{conversation_id}/messages"]
    assert "get" in paths["/v1/messages/{message_id}/decision"]
    assert set(paths["/v1/compliance/rules"]) == {"get", "put"}
    assert "get" in paths["/v1/contacts/consent"]
    assert "post" in paths["/v1/consent/opt-out"]
    assert "post" in paths["/v1/consent/opt-in"]
    assert "HTTPValidationError" not in json.dumps(document)
    assert all("422" not in op["responses"] for path in paths.values() for op in path.values())
    for path in paths.values():
        for operation in path.values():
            if operation.get("requestBody") or operation.get("parameters"):
                assert "400" in operation["responses"], operation["operationId"]
