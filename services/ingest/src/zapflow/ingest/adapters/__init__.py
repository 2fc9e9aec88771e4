"""Edges of the ingest service: PostgreSQL, NATS and HTTP."""
