"""Embedded nats-server and PostgreSQL processes for local runs and tests."""
