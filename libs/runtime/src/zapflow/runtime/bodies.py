"""Claim check for large webhook bodies: a JetStream object store bucket beside ``ZF_INBOUND``.

A NATS message is limited to the server's ``max_payload`` (1 MiB by default) and a
``WebhookReceived`` carries its body base64-encoded (4/3 of its size), so bodies above a few
hundred KiB (Evolution with inline base64 media) cannot travel inline. The gateway writes such a
body to the bucket ``zf_inbound_bodies`` (:data:`zapflow.contracts.streams.INBOUND_BODIES`,
objects kept a day longer than ``ZF_INBOUND`` keeps events) under the event's id, waits for the
store's acknowledgement of every chunk, and only then publishes the event with ``body_ref``;
ingest reads it back. The object store splits the body into chunks well under ``max_payload``
and checks a SHA-256 digest on read.

:func:`inline_limit` says up to which body size an event still fits in one NATS message.
"""

from __future__ import annotations

import math
from typing import Final

from nats.js import JetStreamContext
from nats.js.api import ObjectMeta, ObjectMetaOptions, ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from zapflow.contracts.specs import ObjectStoreSpec
from zapflow.runtime.broker import StreamLimits

EVENT_OVERHEAD: Final = 16 * 1024
"""Room for a ``WebhookReceived``'s other fields and its NATS headers."""
CHUNK_BYTES: Final = 256 * 1024
"""Object store chunk size: a few round trips for a 5 MiB body, far under any max_payload."""


def inline_limit(max_payload: int) -> int:
    """The largest body whose base64 event (plus :data:`EVENT_OVERHEAD`) fits ``max_payload``."""
    return max(0, math.floor((max_payload - EVENT_OVERHEAD) * 3 / 4))


class BodyNotFoundError(Exception):
    """The object a ``body_ref`` names does not exist (expired, or never written)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"stored body {name!r} not found")
        self.name = name


class BodyStore:
    """One object store bucket of webhook bodies, opened lazily."""

    def __init__(
        self, js: JetStreamContext, spec: ObjectStoreSpec, *, limits: StreamLimits | None = None
    ) -> None:
        self._js = js
        self._spec = spec
        self._limits = limits or StreamLimits()
        self._store: ObjectStore | None = None

    @property
    def bucket(self) -> str:
        return self._spec.bucket

    async def declare(self) -> None:
        """Create the bucket, or bring an existing one to the deployment's replicas and size (its
        owner does this at start-up). When full, writes are refused: the webhook is answered 503
        and the provider delivers it again later."""
        replicas, max_bytes = self._limits.replicas, self._limits.bucket_bytes(self._spec)
        try:
            self._store = await self._js.object_store(self._spec.bucket)
        except BucketNotFoundError:
            config = ObjectStoreConfig(
                description=self._spec.description,
                ttl=self._spec.max_age_s,
                storage=StorageType.FILE,
                replicas=replicas,
                max_bytes=max_bytes,
            )
            self._store = await self._js.create_object_store(self._spec.bucket, config)
            return
        stream = (await self._js.stream_info(self._spec.stream)).config
        if (stream.num_replicas, stream.max_bytes) != (replicas, max_bytes):
            stream.num_replicas, stream.max_bytes = replicas, max_bytes
            await self._js.update_stream(stream)

    async def _opened(self) -> ObjectStore:
        if self._store is None:
            self._store = await self._js.object_store(self._spec.bucket)
        return self._store

    async def put(self, name: str, body: bytes) -> None:
        """Store ``body`` under ``name``; returns once JetStream acknowledged every chunk."""
        store = await self._opened()
        meta = ObjectMeta(name=name, options=ObjectMetaOptions(max_chunk_size=CHUNK_BYTES))
        await store.put(name, body, meta=meta)

    async def get(self, name: str) -> bytes:
        """The body stored under ``name``; :class:`BodyNotFoundError` if there is none."""
        try:
            store = await self._opened()
            result = await store.get(name)
        except (ObjectNotFoundError, BucketNotFoundError, NotFoundError) as exc:
            raise BodyNotFoundError(name) from exc
        return bytes(result.data or b"")
