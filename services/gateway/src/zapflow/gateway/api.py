"""The gateway's ASGI app: provider webhooks on a fast lane, then the REST API (FastAPI).

Every error answer has the same shape, ``{"error": <reason>}`` (``ErrorOut``), plus
``"reasons"`` (one line per problem) for invalid requests. FastAPI's 422 for a request that
fails validation becomes 400, consistently, in the answers and in the OpenAPI document.
REST bodies over ``api_max_body_bytes`` answer 413 ``{"error": "body too large"}``: at once
when ``Content-Length`` says so, else as soon as the streamed body grows past the limit.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zapflow.gateway import admin_api, compliance_api, keys_api, read_api, send_api
from zapflow.gateway.errors import (
    ConflictError,
    GatewayError,
    InvalidRequestError,
    NotFoundError,
)
from zapflow.gateway.schemas import ErrorOut
from zapflow.gateway.settings import API_MAX_BODY_BYTES
from zapflow.gateway.webhooks import PREFIX as WEBHOOK_PREFIX
from zapflow.gateway.webhooks import WebhookEndpoints

logger = logging.getLogger(__name__)

_STATUS: dict[type[GatewayError], int] = {
    NotFoundError: 404,
    ConflictError: 409,
    InvalidRequestError: 400,
}
BODY_TOO_LARGE: Final = "body too large"


def _error(status: int, reason: str, reasons: list[str] | None = None) -> JSONResponse:
    body = ErrorOut(error=reason, reasons=reasons).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status)


def _reason(error: Any) -> str:
    where = tuple(error.get("loc", ()))
    if where[:1] == ("body",):  # the body itself; fields named "body" (a text's) stay
        where = where[1:]
    loc = ".".join(str(part) for part in where)
    msg = str(error.get("msg", "invalid"))
    return f"{loc}: {msg}" if loc else msg


async def _invalid_request(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return _error(400, "invalid request", reasons=[_reason(e) for e in exc.errors()])


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    body = ErrorOut(error=str(exc.detail)).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _gateway_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), None)
    if status is None:  # SecretsError and anything unforeseen: not the client's business
        logger.error("request failed: %s", type(exc).__name__)
        return _error(500, "internal error")
    return _error(status, exc.reason)


def _openapi_without_422(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault(
                        "400",
                        {
                            "description": "Invalid request",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ErrorOut"}
                                }
                            },
                        },
                    )
        components = schema.get("components", {}).get("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components.setdefault("ErrorOut", ErrorOut.model_json_schema())
        app.openapi_schema = schema
    return app.openapi_schema


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length; the stream limit holds
    return None


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises 413 once the body read so far exceeds ``limit`` bytes."""
    size = 0

    async def receive_within_limit() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise StarletteHTTPException(413, BODY_TOO_LARGE)
        return message

    return receive_within_limit


class GatewayApp(FastAPI):
    """FastAPI with a fast lane: HTTP requests under ``/webhooks/`` go straight to the webhook
    ASGI app, ahead of FastAPI's middleware and router (about 4x less overhead per webhook).
    Other HTTP requests get the REST body limit, ``max_body_bytes``."""

    webhook_app: ASGIApp | None = None
    max_body_bytes: int = API_MAX_BODY_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.webhook_app is not None and scope["path"].startswith(WEBHOOK_PREFIX):
                await self.webhook_app(scope, receive, send)
                return
            declared = _declared_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                await _error(413, BODY_TOO_LARGE)(scope, receive, send)
                return
            receive = _limited(receive, self.max_body_bytes)
        await super().__call__(scope, receive, send)


def build_app(service: Any, gateway: Any, webhooks: WebhookEndpoints | None = None) -> GatewayApp:
    """The app: ``app.state.service`` is the running Service (routers reach
    ``request.app.state.service.nc`` / ``.pool``), ``app.state.gateway`` the gateway's parts
    (settings, secret box, channel cache, command log). Without ``webhooks`` (router tests) the
    webhook paths answer 404 like any unknown path."""
    app = GatewayApp(
        title="Zapflow gateway",
        version="1",
        description="Tenant REST API and provider webhooks. Authenticate with an API key: "
        "`Authorization: Bearer <key>` or `X-Api-Key: <key>`. Errors are "
        '`{"error": <reason>}`; request bodies over the size limit answer 413.',
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = service
    app.state.gateway = gateway
    app.webhook_app = webhooks
    if gateway is not None:
        app.max_body_bytes = gateway.settings.api_max_body_bytes
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(GatewayError, _gateway_error)
    app.include_router(admin_api.router)
    app.include_router(keys_api.router)
    # before read_api: /v1/contacts/consent must not be taken for /v1/contacts/{contact_id}
    app.include_router(compliance_api.router)
    app.include_router(send_api.router)
    app.include_router(read_api.router)
    app.openapi = lambda: _openapi_without_422(app)  # type: ignore[method-assign]
    return app
