-- Meta's business-scoped user ids (BSUID, `user_id`): a contact may be known by it beside its
-- phone, or by it alone (a user who adopted a username and hides the number). Unique per tenant
-- like phone and LID; an absorbed (merged) row gives it up like its phone and LID.
ALTER TABLE contacts ADD COLUMN user_id text;
ALTER TABLE contacts DROP CONSTRAINT contacts_check;
ALTER TABLE contacts ADD CONSTRAINT contacts_identity CHECK (
    merged_into IS NOT NULL OR phone IS NOT NULL OR lid IS NOT NULL OR wa_id IS NOT NULL
    OR user_id IS NOT NULL
);
CREATE UNIQUE INDEX contacts_user_id ON contacts (tenant_id, user_id) WHERE user_id IS NOT NULL;

-- The provider id of the edit / revoke message that changed a message (its own id, beside the
-- id of the message it changes), when the provider gives it one.
ALTER TABLE messages ADD COLUMN edit_message_id text, ADD COLUMN revoke_message_id text;
