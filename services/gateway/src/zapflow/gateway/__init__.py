"""Zapflow gateway: HTTP edge: REST API, provider webhooks, operator WebSocket and console."""
