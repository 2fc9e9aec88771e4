-- Approved sends parked out of memory: a channel holding more than its budget (a slow pace, a
-- provider refusing it, a reached daily cap) has its further messages moved here in stream order
-- (the JetStream message is acknowledged only once the row committed) and fed back in order as
-- it frees up, so one channel never fills its partition's max_ack_pending and stops the others.
-- One row per message id. See zapflow.sender.parking.
CREATE TABLE parked_sends (
    message_id  uuid PRIMARY KEY,
    tenant_id   text NOT NULL,
    channel_id  text NOT NULL,
    partition   integer NOT NULL,
    seq         bigint NOT NULL,   -- ZF_SENDER stream sequence: the order it is fed back in
    subject     text NOT NULL,
    headers     jsonb NOT NULL DEFAULT '{}',
    payload     bytea NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_sends_channel ON parked_sends (tenant_id, channel_id, seq);
CREATE INDEX parked_sends_partition ON parked_sends (partition);
