-- Sends requested through the REST API, one row per (tenant, Idempotency-Key): the durable
-- idempotency record. Written in the same transaction as the SendRequested event's outbox row,
-- so a key is taken exactly when its event will be published. `fingerprint` is the SHA-256 of
-- the canonical request: the same key with another request is refused, with the same request
-- it answers the stored message again. Rows older than the retention setting are purged.
CREATE TABLE send_requests (
    tenant_id       text NOT NULL REFERENCES tenants (id),
    idempotency_key text NOT NULL,
    fingerprint     bytea NOT NULL,
    message_id      uuid NOT NULL CONSTRAINT send_requests_message_unique UNIQUE,
    event_id        uuid NOT NULL,
    channel_id      text NOT NULL,
    conversation_id uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX send_requests_created_at ON send_requests (created_at);
