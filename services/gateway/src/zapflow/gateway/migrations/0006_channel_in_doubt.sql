-- What the sender does with a send of the channel left in doubt (its sender died during the
-- provider call): ChannelSettings.in_doubt ({"policy": "resend"|"dead_letter", "window_s": n};
-- {} = the sender's defaults).
ALTER TABLE channels ADD COLUMN in_doubt jsonb NOT NULL DEFAULT '{}'::jsonb;
