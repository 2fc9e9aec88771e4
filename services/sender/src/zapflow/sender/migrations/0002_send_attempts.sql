-- One row per outbound message: written before each provider call (state 'sending', attempts + 1)
-- and after it ('accepted' with the provider's id, 'retrying' or 'failed'), so a redelivered
-- message never reaches the provider again once it was accepted. See zapflow.sender.domain.attempts.
CREATE TABLE send_attempts (
    message_id          uuid PRIMARY KEY,
    tenant_id           text NOT NULL,
    channel_id          text NOT NULL,
    provider            text NOT NULL,
    state               text NOT NULL
                        CHECK (state IN ('sending', 'retrying', 'accepted', 'failed')),
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    rate_limited        integer NOT NULL DEFAULT 0 CHECK (rate_limited >= 0),
    provider_message_id text,
    reason              text,
    permanent           boolean,
    error_code          text,
    error_text          text,
    replay_of           uuid,
    local_day           date NOT NULL,
    first_attempt_at    timestamptz NOT NULL DEFAULT now(),
    last_attempt_at     timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz
);
-- The daily cap survives restarts and hand-overs: today's sends are counted from here.
CREATE INDEX send_attempts_channel_day ON send_attempts (tenant_id, channel_id, local_day);

-- The AIMD share of its pace a channel currently uses, so a new owner does not start at full
-- speed into a provider that just rate-limited the channel.
CREATE TABLE pace_state (
    tenant_id   text NOT NULL,
    channel_id  text NOT NULL,
    rate_factor double precision NOT NULL CHECK (rate_factor > 0 AND rate_factor <= 1),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel_id)
);
