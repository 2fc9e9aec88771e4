-- Media files persisted in the media store (filesystem or S3-compatible), one per message.
CREATE TABLE media (
    key        text PRIMARY KEY,
    tenant_id  text NOT NULL,
    message_id uuid NOT NULL UNIQUE REFERENCES messages (id),
    mime_type  text,
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    sha256     text NOT NULL,
    filename   text,
    stored_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_tenant ON media (tenant_id, stored_at DESC);

-- Durable queue of media downloads, worked off the ack path of ingest-raw. A worker claims due
-- jobs with FOR UPDATE SKIP LOCKED and pushes next_attempt_at ahead as a lease; failures back
-- off exponentially until media_max_attempts, then the job is 'failed' with the reason.
CREATE TABLE media_jobs (
    message_id          uuid PRIMARY KEY REFERENCES messages (id),
    tenant_id           text NOT NULL,
    channel_id          text NOT NULL,
    provider            text NOT NULL,
    provider_message_id text NOT NULL,
    source_event_id     uuid NOT NULL,
    media               jsonb NOT NULL,
    state               text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'done', 'failed')),
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_jobs_due ON media_jobs (next_attempt_at) WHERE state = 'pending';
