"""Pytest plugin: real nats-server and PostgreSQL fixtures (filled in by the test harness)."""
