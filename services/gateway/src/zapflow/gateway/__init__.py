"""Zapflow gateway: the HTTP edge: REST API and provider webhooks (operator WebSocket planned)."""
