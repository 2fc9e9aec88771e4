-- Transactional outbox: events written in the same transaction as the change they announce,
-- published by the relay (zapflow.gateway.outbox) with Nats-Msg-Id = event_id, then marked sent.
CREATE TABLE outbox (
    seq        bigserial PRIMARY KEY,
    event_id   uuid NOT NULL CONSTRAINT outbox_event_unique UNIQUE,
    event_type text NOT NULL,
    tenant_id  text NOT NULL,
    subject    text NOT NULL,
    headers    jsonb NOT NULL,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('zf_gateway_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_inserted AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();
