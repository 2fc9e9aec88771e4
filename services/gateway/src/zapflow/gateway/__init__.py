"""Zapflow gateway: hTTP edge: REST API, provider webhooks, operator WebSocket and console."""
