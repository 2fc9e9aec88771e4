-- Contacts: one row per person (or group) of a tenant. A person is identified by an E.164 phone
-- and/or a WhatsApp LID; a payload naming both links them, and two rows found to be the same
-- person are merged: the absorbed row keeps its id (old references still resolve) with
-- merged_into set and its phone/lid cleared. wa_id (the provider's raw id) is a key only for
-- rows that have neither phone nor LID (groups, LID-less ids).
CREATE TABLE contacts (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL,
    kind        text NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'group')),
    phone       text CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    wa_id       text,
    lid         text,
    name        text,
    merged_into uuid REFERENCES contacts (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (merged_into IS NOT NULL OR phone IS NOT NULL OR lid IS NOT NULL OR wa_id IS NOT NULL)
);
CREATE UNIQUE INDEX contacts_phone ON contacts (tenant_id, phone) WHERE phone IS NOT NULL;
CREATE UNIQUE INDEX contacts_lid ON contacts (tenant_id, lid) WHERE lid IS NOT NULL;
CREATE UNIQUE INDEX contacts_wa_id ON contacts (tenant_id, wa_id)
    WHERE phone IS NULL AND lid IS NULL AND merged_into IS NULL;
CREATE INDEX contacts_merged_into ON contacts (merged_into) WHERE merged_into IS NOT NULL;

-- Conversations: one open thread per (tenant, channel, contact-or-group). A conversation folded
-- into another by a contact merge keeps its id with merged_into set.
CREATE TABLE conversations (
    id              uuid PRIMARY KEY,
    tenant_id       text NOT NULL,
    channel_id      text NOT NULL,
    contact_id      uuid NOT NULL REFERENCES contacts (id),
    group_id        text,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'pending', 'closed')),
    assignee        text,
    unread_count    integer NOT NULL DEFAULT 0 CHECK (unread_count >= 0),
    last_message_at timestamptz NOT NULL,
    last_inbound_at timestamptz,
    merged_into     uuid REFERENCES conversations (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX conversations_thread ON conversations (tenant_id, channel_id, contact_id)
    WHERE merged_into IS NULL;
-- keyset pagination of the conversation list: (last_message_at, id) descending
CREATE INDEX conversations_recent ON conversations (tenant_id, last_message_at DESC, id DESC)
    WHERE merged_into IS NULL;
CREATE INDEX conversations_by_status ON conversations
    (tenant_id, status, last_message_at DESC, id DESC) WHERE merged_into IS NULL;
CREATE INDEX conversations_by_contact ON conversations (contact_id);
