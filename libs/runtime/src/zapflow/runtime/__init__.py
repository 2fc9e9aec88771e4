"""Shared service plumbing: settings, logging, telemetry, NATS and PostgreSQL connections, migrations, health, graceful shutdown."""
