"""Edges of the sender: PostgreSQL, NATS and provider HTTP."""
