-- Compliance state: what it learned from events (channels, consents, service windows), what it
-- decided (decisions, deferred sends, counters) and what it must still publish (outbox).

-- Per-tenant rules (TenantRules as JSON); no row = defaults.
CREATE TABLE tenant_rules (
    tenant_id  text PRIMARY KEY,
    rules      jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Channel policy and caps, from zf.channels.* (gateway owns channels).
CREATE TABLE channels (
    tenant_id            text NOT NULL,
    channel_id           text NOT NULL,
    provider             text NOT NULL,
    timezone             text NOT NULL,
    quiet_hours_start    time,
    quiet_hours_end      time,
    require_opt_in       boolean NOT NULL,
    service_window_hours integer NOT NULL,
    daily_cap            integer,
    enabled              boolean NOT NULL,
    registered_at        timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, channel_id)
);

-- Consent per contact address (E.164 phone, or provider address); channel_id '' = every channel.
CREATE TABLE consents (
    tenant_id  text NOT NULL,
    address    text NOT NULL,
    channel_id text NOT NULL DEFAULT '',
    state      text NOT NULL CHECK (state IN ('opted_in', 'opted_out')),
    source     text NOT NULL,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, address, channel_id)
);

-- Last inbound message per (tenant, channel, contact address): the customer-service window.
CREATE TABLE service_windows (
    tenant_id       text NOT NULL,
    channel_id      text NOT NULL,
    address         text NOT NULL,
    last_inbound_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, channel_id, address)
);

-- New (business-initiated) recipients per channel and local day, for the daily cap.
CREATE TABLE daily_counters (
    tenant_id  text NOT NULL,
    channel_id text NOT NULL,
    local_date date NOT NULL,
    recipients integer NOT NULL,
    PRIMARY KEY (tenant_id, channel_id, local_date)
);
CREATE TABLE daily_recipients (
    tenant_id  text NOT NULL,
    channel_id text NOT NULL,
    local_date date NOT NULL,
    address    text NOT NULL,
    PRIMARY KEY (tenant_id, channel_id, local_date, address)
);

-- Last approval of each content (sha256 fingerprint) to each address, for duplicate detection.
CREATE TABLE content_sends (
    tenant_id   text NOT NULL,
    channel_id  text NOT NULL,
    address     text NOT NULL,
    fingerprint text NOT NULL,
    last_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, channel_id, address, fingerprint)
);
CREATE INDEX content_sends_last_at ON content_sends (last_at);

-- The current decision on each message; seq counts evaluations (a deferred send is re-decided).
CREATE TABLE decisions (
    message_id       uuid PRIMARY KEY,
    tenant_id        text NOT NULL,
    channel_id       text NOT NULL,
    decision_id      uuid NOT NULL,
    seq              integer NOT NULL,
    outcome          text NOT NULL CHECK (outcome IN ('approved', 'vetoed', 'deferred')),
    reason           text,
    text             text NOT NULL,
    until            timestamptz,
    decided_at       timestamptz NOT NULL,
    request          jsonb NOT NULL,
    request_event_id uuid NOT NULL,
    correlation_id   uuid
);
CREATE INDEX decisions_tenant ON decisions (tenant_id, decided_at);

-- Deferred sends waiting for their time; the scheduler re-decides them at due_at.
CREATE TABLE deferred_sends (
    message_id  uuid PRIMARY KEY REFERENCES decisions (message_id),
    tenant_id   text NOT NULL,
    channel_id  text NOT NULL,
    campaign_id uuid,
    due_at      timestamptz NOT NULL
);
CREATE INDEX deferred_sends_due ON deferred_sends (due_at);
CREATE INDEX deferred_sends_campaign ON deferred_sends (tenant_id, campaign_id);

-- Opt-out/opt-in confirmations compliance itself requested: exempt from the other rules.
CREATE TABLE confirmations (
    message_id uuid PRIMARY KEY,
    tenant_id  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cancelled_campaigns (
    tenant_id    text NOT NULL,
    campaign_id  uuid NOT NULL,
    cancelled_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id)
);

-- Transactional outbox: events written with the state that caused them, published after commit.
CREATE TABLE outbox (
    seq          bigserial PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    caused_by    text NOT NULL,
    subject      text NOT NULL,
    type         text NOT NULL,
    payload      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (caused_by) WHERE published_at IS NULL;
CREATE INDEX outbox_pending_age ON outbox (created_at) WHERE published_at IS NULL;
