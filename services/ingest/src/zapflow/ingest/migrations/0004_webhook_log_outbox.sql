-- What became of every raw webhook: stored, ignored (nothing in it for us) or failed (could not
-- be parsed; the raw event was dead-lettered). Purged after ZF_INGEST_WEBHOOK_LOG_RETENTION_DAYS.
CREATE TABLE webhook_log (
    event_id     uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    channel_id   text NOT NULL,
    provider     text NOT NULL,
    received_at  timestamptz NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL CHECK (outcome IN ('stored', 'ignored', 'failed')),
    items        integer NOT NULL DEFAULT 0,
    ignored      text[] NOT NULL DEFAULT '{}',
    error        text,
    content_type text,
    body         bytea NOT NULL
);
CREATE INDEX webhook_log_received ON webhook_log (received_at);
CREATE INDEX webhook_log_tenant ON webhook_log (tenant_id, received_at DESC);

-- The events a raw webhook produced, written in the same transaction as its effects. A
-- redelivered webhook (crash after commit, before ack) republishes these with the same ids, so
-- JetStream de-duplicates them; nothing is recomputed from state that may have moved on.
CREATE TABLE outbox (
    source_event_id uuid NOT NULL,
    seq             integer NOT NULL,
    event_id        uuid NOT NULL,
    subject         text NOT NULL,
    type            text NOT NULL,
    payload         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_event_id, seq)
);
CREATE INDEX outbox_created ON outbox (created_at);
