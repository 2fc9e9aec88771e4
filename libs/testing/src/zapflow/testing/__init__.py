"""Test fixtures: real nats-server and PostgreSQL on free ports."""
