"""A 3-node JetStream cluster on loopback: R3 streams survive the loss of any one node."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from zapflow.embedded import NatsCluster
from zapflow.testing import unique

pytestmark = pytest.mark.integration


async def publish_until_stored(js: JetStreamContext, subject: str, body: bytes, msg_id: str) -> int:
    """Publish, retrying with the same id while the stream elects a new leader (≈ 5 s)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            ack = await js.publish(subject, body, timeout=2, headers={"Nats-Msg-Id": msg_id})
            return ack.seq
        except (NatsError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_an_r3_stream_keeps_every_message_when_its_leader_is_killed() -> None:
    stream = unique("R3").replace("-", "_")
    async with NatsCluster(3) as cluster:
        assert cluster.url == ",".join(cluster.urls)
        assert len(cluster.urls) == 3
        jsz = cluster.jsz(0)["meta_cluster"]
        assert jsz["cluster_size"] == 3

        nc = await nats.connect(cluster.urls, reconnect_time_wait=0.2)
        try:
            js = nc.jetstream()
            await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"], num_replicas=3))
            for i in range(50):
                await publish_until_stored(js, f"{stream}.a", b"%d" % i, f"m{i}")
            leader = cluster.index_of((await js.stream_info(stream)).cluster.leader)

            cluster.kill(leader)
            assert cluster.running() == sorted({0, 1, 2} - {leader})
            for i in range(50, 100):
                await publish_until_stored(js, f"{stream}.a", b"%d" % i, f"m{i}")
            for i in range(40, 60):  # a retry after the failover stores nothing twice
                await publish_until_stored(js, f"{stream}.a", b"%d" % i, f"m{i}")

            info = await js.stream_info(stream)
            assert info.state.messages == 100
            assert cluster.index_of(info.cluster.leader) != leader

            cluster.restart(leader)
            assert cluster.running() == [0, 1, 2]
        finally:
            await nc.close()


def test_nodes_have_their_own_names_stores_and_ports() -> None:
    with NatsCluster(3, name="zftest") as cluster:
        names = [node.server_name for node in cluster.nodes]
        assert names == ["zftest-0", "zftest-1", "zftest-2"]
        assert len({node.store_dir for node in cluster.nodes}) == 3
        assert len({*cluster.client_ports, *cluster.cluster_ports, *cluster.monitor_ports}) == 9
        assert cluster.index_of("zftest-2") == 2
        stores = [node.store_dir for node in cluster.nodes]
    assert all(store is not None and not store.exists() for store in stores)
