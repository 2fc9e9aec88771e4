-- Outbound messages requested through Zapflow (the ingest-outbound consumer). Their id is the
-- request's message_id; provider_message_id stays NULL until the sender reports the provider's
-- id (SendSucceeded). origin/campaign_id/recipient_id travel on every status event of the
-- message; status_reason is the veto or failure reason code (error_code/error_text keep the
-- provider's code and text, or the reason when there is none).
ALTER TABLE messages
    ADD COLUMN origin        text CHECK (origin IN ('operator', 'campaign', 'api')),
    ADD COLUMN campaign_id   uuid,
    ADD COLUMN recipient_id  uuid,
    ADD COLUMN requested_by  jsonb,
    ADD COLUMN status_reason text;

-- Send outcomes (SendSucceeded / SendFailed) that arrived before the request that creates their
-- message; applied, then deleted, when the message is recorded. Purged after
-- ZF_INGEST_PENDING_RETENTION_DAYS.
CREATE TABLE outbound_pending_outcomes (
    message_id          uuid NOT NULL,
    event_id            uuid NOT NULL,
    tenant_id           text NOT NULL,
    provider_message_id text,
    type                text NOT NULL,
    payload             text NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, event_id)
);
CREATE INDEX outbound_pending_outcomes_recorded ON outbound_pending_outcomes (recorded_at);

-- Receipts and edits/revokes still waiting for their message (message_id NULL / every pending
-- change) are purged after the same retention: a provider id nobody links by then never will be.
CREATE INDEX message_status_history_waiting ON message_status_history (recorded_at)
    WHERE message_id IS NULL;
CREATE INDEX message_pending_changes_recorded ON message_pending_changes (recorded_at);
