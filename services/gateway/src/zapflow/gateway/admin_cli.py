"""``zapflow-gateway-admin``: bootstrap tenants and API keys, and seed the local demo.

::

    zapflow-gateway-admin create-tenant acme --name "Acme Ltd"
    zapflow-gateway-admin create-api-key acme [--name ci] [--scope messages:send ...]
                                                               # prints the key, once
    zapflow-gateway-admin revoke-api-key acme zf_1a2b3c4d
    zapflow-gateway-admin seed-demo [--base-url URL]           # idempotent

Reads ``DATABASE_URL`` and ``ZF_GATEWAY_*`` like the service, applies the gateway's migrations
first (a no-op when they are applied), and talks to PostgreSQL only: channel events are written
to the outbox and published by the running gateway. Exit status 1 with a message on stderr when
a command is refused (unknown tenant, invalid id...).

``create-api-key`` grants the ``--scope`` options given (repeat it; see
:mod:`zapflow.gateway.scopes`), or ``admin`` without any.

``seed-demo`` creates tenant ``demo``, the fixed development API key ``zf_demo_local_key`` (only
ever for the demo tenant) and channel ``demo-meta`` (Meta, app secret ``demo-app-secret``, verify
token ``demo-verify``, 80 messages/s). It refuses to run unless ``ZF_ENV=development``, and the
gateway refuses the demo key outside development even if it is in the database.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from importlib.resources import files
from typing import Final

import asyncpg
from pydantic import ValidationError

from zapflow.gateway import channels, scopes, store, tenants
from zapflow.gateway.crypto import SecretBox
from zapflow.gateway.domain import webhook_url
from zapflow.gateway.errors import GatewayError, InvalidRequestError, NotFoundError
from zapflow.gateway.schemas import ChannelCreate, PaceIn
from zapflow.gateway.settings import Settings
from zapflow.gateway.store import SCHEMA
from zapflow.runtime import db

DEMO_TENANT: Final = "demo"
DEMO_API_KEY: Final = tenants.DEMO_API_KEY
DEMO_CHANNEL: Final = "demo-meta"
DEMO_APP_SECRET: Final = "demo-app-secret"
DEMO_VERIFY_TOKEN: Final = "demo-verify"
DEMO_ACCESS_TOKEN: Final = "demo-access-token"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def demo_channel(base_url: str | None = None) -> ChannelCreate:
    return ChannelCreate(
        id=DEMO_CHANNEL,
        provider="meta",
        display_name="Demo (Meta)",
        phone="+5511999990000",
        provider_account="109876543210987",
        base_url=base_url,
        pace=PaceIn(rate_per_second=80, burst=80),
        secrets={
            "app_secret": DEMO_APP_SECRET,
            "verify_token": DEMO_VERIFY_TOKEN,
            "access_token": DEMO_ACCESS_TOKEN,
        },
    )


async def seed_demo(
    conn: asyncpg.Connection[asyncpg.Record],
    box: SecretBox,
    settings: Settings,
    base_url: str | None,
) -> None:
    if not settings.development:
        raise InvalidRequestError(
            "seed-demo creates a public development key: only with ZF_ENV=development"
        )
    created = await tenants.create_tenant(conn, DEMO_TENANT, "Demo")
    _say(f"tenant {DEMO_TENANT}: {'created' if created else 'exists'}")
    key = await tenants.issue_api_key(conn, DEMO_TENANT, "demo local key", key=DEMO_API_KEY)
    _say(f"api key {DEMO_API_KEY}: {'created' if key.created else 'exists'} (development only)")
    try:
        channel = await channels.get(conn, DEMO_TENANT, DEMO_CHANNEL)
        state = "exists"
    except NotFoundError:
        channel = await channels.register(conn, box, DEMO_TENANT, demo_channel(base_url))
        state = "created"
    url = webhook_url(
        settings.webhook_base_url, channel.provider, channel.channel_id, channel.webhook_token
    )
    _say(f"channel {DEMO_CHANNEL}: {state} (meta, verify token {DEMO_VERIFY_TOKEN})")
    _say(f"webhook {url}")


async def _run(args: argparse.Namespace, settings: Settings) -> None:
    dsn = settings.database_url.get_secret_value()
    await db.migrate(dsn, SCHEMA, files("zapflow.gateway") / "migrations")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": f"{SCHEMA}, public"})
    try:
        if args.command == "create-tenant":
            created = await tenants.create_tenant(conn, args.tenant, args.name)
            _say(f"tenant {args.tenant}: {'created' if created else 'exists'}")
        elif args.command == "create-api-key":
            chosen = args.scope or [scopes.ADMIN]
            key = await tenants.issue_api_key(conn, args.tenant, args.name, scopes=chosen)
            _say(key.key)
            granted = ", ".join(key.scopes)
            sys.stderr.write(f"api key {key.prefix} for {args.tenant} ({granted}): store it now\n")
        elif args.command == "revoke-api-key":
            count = await store.revoke_api_key(conn, args.tenant, args.prefix)
            _say(f"revoked {count} key(s)")
        elif args.command == "seed-demo":
            box = SecretBox.from_setting(settings.secrets_key.get_secret_value())
            await seed_demo(conn, box, settings, args.base_url)
    finally:
        await conn.close()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zapflow-gateway-admin", description="Bootstrap tenants and API keys."
    )
    sub = p.add_subparsers(dest="command", required=True)
    tenant = sub.add_parser("create-tenant", help="create a tenant (idempotent)")
    tenant.add_argument("tenant", help="id: lowercase letters, digits, '-', '_'")
    tenant.add_argument("--name", required=True)
    key = sub.add_parser("create-api-key", help="issue an API key; printed once")
    key.add_argument("tenant")
    key.add_argument("--name", default="api key")
    key.add_argument(
        "--scope",
        action="append",
        choices=sorted(scopes.SCOPES),
        help="a scope to grant (repeatable); admin when none is given",
    )
    revoke = sub.add_parser("revoke-api-key", help="revoke a tenant's keys by prefix")
    revoke.add_argument("tenant")
    revoke.add_argument("prefix", help="e.g. zf_1a2b3c4d")
    demo = sub.add_parser("seed-demo", help="demo tenant, dev API key and channel (idempotent)")
    demo.add_argument("--base-url", default=None, help="provider API base URL of demo-meta")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        sys.stderr.write(f"error: invalid settings: {exc}\n")
        raise SystemExit(1) from None
    try:
        asyncio.run(_run(args, settings))
    except GatewayError as exc:
        sys.stderr.write(f"error: {exc.reason}\n")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
