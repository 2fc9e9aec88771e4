-- The id Zapflow sent with an outbound message, as the provider's receipt echoed it (Meta
-- biz_opaque_callback_data = our message id). A receipt for a provider id no message holds yet
-- links that id to the outbound message it names, at once or when the message's request is
-- recorded: a send whose outcome the sender never recorded (it died during the call) still gets
-- its provider id and its statuses, and the sender learns from them that the provider took it.
ALTER TABLE message_status_history ADD COLUMN client_message_id text;
CREATE INDEX message_status_history_echoed ON message_status_history (client_message_id)
    WHERE message_id IS NULL AND client_message_id IS NOT NULL;
