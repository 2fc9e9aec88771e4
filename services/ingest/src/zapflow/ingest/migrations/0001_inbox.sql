-- Events this service has processed: the durable idempotency key beyond JetStream's
-- duplicate window. A handler inserts the event id in the same transaction as its effect.
CREATE TABLE processed_events (
    event_id     uuid PRIMARY KEY,
    consumer     text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);
