"""Adapters: the only modules that know SQL and NATS."""
