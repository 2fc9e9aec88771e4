-- Channels: a tenant's sending/receiving numbers. Webhook URLs are /webhooks/{provider}/{id},
-- so ids are unique across tenants, not only within one.
CREATE TABLE channels (
    tenant_id        text NOT NULL REFERENCES tenants (id),
    id               text NOT NULL
                     CONSTRAINT channels_id_slug CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    provider         text NOT NULL,
    display_name     text,
    phone            text,
    provider_account text,
    base_url         text,
    pace             jsonb NOT NULL,
    policy           jsonb NOT NULL,
    provider_options jsonb NOT NULL DEFAULT '{}',
    -- AES-256-GCM sealed JSON object of the secrets (see zapflow.gateway.crypto), and their
    -- names in clear so listing channels never needs the key.
    secrets_sealed   bytea,
    secret_names     text[] NOT NULL DEFAULT '{}',
    webhook_token    text NOT NULL,
    enabled          boolean NOT NULL DEFAULT true,
    disabled_reason  text,
    version          bigint NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT channels_id_unique UNIQUE (id)
);

-- Every committed change wakes the webhook channel caches of every gateway replica.
CREATE FUNCTION notify_channel_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('zf_gateway_channels', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER channels_changed AFTER INSERT OR UPDATE ON channels
    FOR EACH ROW EXECUTE FUNCTION notify_channel_changed();
