"""Shared service plumbing: settings, logging, telemetry, NATS, PostgreSQL, health, shutdown."""
