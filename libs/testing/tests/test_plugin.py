"""The plugin's fixtures, used the way any package's tests use them."""

from __future__ import annotations

import re

import asyncpg
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from zapflow.testing import DatabaseFactory, unique

pytestmark = pytest.mark.integration


async def test_nc_and_js_publish_and_consume_on_a_unique_stream(
    nc: Client, js: JetStreamContext
) -> None:
    stream = unique("PLUGIN").replace("-", "_")
    subject = f"zf.test.{unique('t')}"
    await js.add_stream(name=stream, subjects=[subject])

    ack = await js.publish(subject, b"payload", headers={"Nats-Msg-Id": "m-1"})
    dup = await js.publish(subject, b"payload", headers={"Nats-Msg-Id": "m-1"})
    sub = await js.pull_subscribe(subject, durable="reader")
    [msg] = await sub.fetch(1, timeout=3)
    await msg.ack()

    assert (ack.seq, dup.duplicate) == (1, True)
    assert msg.data == b"payload"
    assert nc.is_connected


def test_nats_url_names_a_nats_server(nats_url: str) -> None:
    assert nats_url.startswith("nats://")


async def test_pg_dsn_is_a_database_of_this_module(pg_dsn: str, pg_server_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute("CREATE TABLE IF NOT EXISTS seen (id int)")
    finally:
        await conn.close()

    assert name.startswith("test_plugin-")
    assert pg_dsn.rpartition("/")[0] == pg_server_dsn.rpartition("/")[0]  # same server


async def test_fresh_db_gives_isolated_databases(fresh_db: DatabaseFactory) -> None:
    first, second = fresh_db("Orders Repo"), fresh_db()
    assert first != second
    assert re.search(r"/orders_repo-[0-9a-f]{8}$", first)

    conn = await asyncpg.connect(first)
    await conn.execute("CREATE TABLE only_in_first (id int)")
    await conn.close()
    conn = await asyncpg.connect(second)
    try:
        assert await conn.fetchval("SELECT to_regclass('only_in_first')") is None
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def module_db(fresh_db: DatabaseFactory) -> str:
    return fresh_db("module")


def test_fresh_db_works_from_module_scoped_fixtures(module_db: str) -> None:
    assert "/module-" in module_db
