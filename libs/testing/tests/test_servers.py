from __future__ import annotations

import asyncpg
import pytest

from zapflow.testing import SessionServers, unique


def test_unique_appends_eight_hex_chars() -> None:
    name = unique("orders")

    assert name.startswith("orders-")
    assert len(name) == len("orders-") + 8
    assert int(name[-8:], 16) >= 0
    assert unique("orders") != name


def test_urls_from_the_environment_start_nothing() -> None:
    servers = SessionServers(
        {"NATS_URL": "nats://nats.example:4222", "DATABASE_URL": "postgresql://u@db:5432/app"}
    )

    assert servers.nats_url() == "nats://nats.example:4222"
    assert servers.pg_admin_dsn() == "postgresql://u@db:5432/app"
    assert servers.started == ()
    servers.close()


@pytest.mark.integration
async def test_databases_are_created_on_the_server_database_url_names(pg_server_dsn: str) -> None:
    servers = SessionServers({"DATABASE_URL": pg_server_dsn})

    dsn = servers.create_database("via_env")

    assert servers.started == ()
    assert dsn.rpartition("/")[0] == pg_server_dsn.rpartition("/")[0]
    conn = await asyncpg.connect(dsn)
    try:
        assert (await conn.fetchval("SELECT current_database()")).startswith("via_env-")
    finally:
        await conn.close()
