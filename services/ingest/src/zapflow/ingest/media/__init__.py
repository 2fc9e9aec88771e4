"""Media persistence: download a message's media through its provider into the media store.

Worked off the ack path of ingest-raw, from the durable ``media_jobs`` queue in PostgreSQL.
"""
