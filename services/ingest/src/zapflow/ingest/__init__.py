"""Zapflow ingest.

Normalizes provider webhooks into canonical events; owns contacts, conversations, messages."""
