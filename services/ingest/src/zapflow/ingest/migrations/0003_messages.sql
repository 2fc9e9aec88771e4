-- Messages of every conversation. (channel_id, provider_message_id) is the durable idempotency
-- key of the inbound path: a webhook delivered twice stores one row. `search` is a full-text
-- vector over the text, caption and file name ('simple' configuration: no stemming, so it works
-- the same for every tenant's language).
CREATE TABLE messages (
    id                  uuid PRIMARY KEY,
    tenant_id           text NOT NULL,
    channel_id          text NOT NULL,
    conversation_id     uuid NOT NULL REFERENCES conversations (id),
    contact_id          uuid NOT NULL REFERENCES contacts (id),
    sender_contact_id   uuid REFERENCES contacts (id),
    provider_message_id text,
    direction           text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    kind                text NOT NULL,
    from_me             boolean NOT NULL DEFAULT false,
    text                text,
    media               jsonb,
    content             jsonb,
    reply_to            text,
    forwarded           boolean NOT NULL DEFAULT false,
    status              text,
    status_at           timestamptz,
    error_code          text,
    error_text          text,
    edited              boolean NOT NULL DEFAULT false,
    edited_at           timestamptz,
    revoked             boolean NOT NULL DEFAULT false,
    revoked_at          timestamptz,
    raw_type            text,
    raw                 jsonb,
    sent_at             timestamptz NOT NULL,
    stored_at           timestamptz NOT NULL DEFAULT now(),
    source_event_id     uuid,
    search              tsvector GENERATED ALWAYS AS (
        to_tsvector(
            'simple'::regconfig,
            coalesce(text, '') || ' ' || coalesce(media ->> 'caption', '') || ' '
                || coalesce(media ->> 'filename', '')
        )
    ) STORED,
    CONSTRAINT messages_provider_id UNIQUE (channel_id, provider_message_id)
);
CREATE INDEX messages_timeline ON messages (conversation_id, sent_at DESC, id DESC);
CREATE INDEX messages_contact ON messages (contact_id);
CREATE INDEX messages_sender ON messages (sender_contact_id) WHERE sender_contact_id IS NOT NULL;
CREATE INDEX messages_search ON messages USING gin (search);

-- Every delivery receipt, applied or not. A receipt for a provider id not stored yet keeps
-- message_id NULL and is applied when the message appears; duplicates (same status and time)
-- are kept once.
CREATE TABLE message_status_history (
    id                  bigserial PRIMARY KEY,
    tenant_id           text NOT NULL,
    channel_id          text NOT NULL,
    provider_message_id text NOT NULL,
    message_id          uuid REFERENCES messages (id),
    status              text NOT NULL,
    at                  timestamptz NOT NULL,
    error_code          text,
    error_text          text,
    applied             boolean NOT NULL DEFAULT false,
    source_event_id     uuid,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_status_history_receipt UNIQUE (channel_id, provider_message_id, status, at)
);
CREATE INDEX message_status_history_message ON message_status_history (message_id, at)
    WHERE message_id IS NOT NULL;

-- Edits and revokes that arrived before the message they change; applied when it appears.
CREATE TABLE message_pending_changes (
    id                  bigserial PRIMARY KEY,
    tenant_id           text NOT NULL,
    channel_id          text NOT NULL,
    provider_message_id text NOT NULL,
    change              text NOT NULL CHECK (change IN ('edit', 'revoke')),
    at                  timestamptz NOT NULL,
    payload             jsonb NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_pending_changes_once UNIQUE (channel_id, provider_message_id, change, at)
);
