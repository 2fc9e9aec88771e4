"""Zapflow realtime: bridges events to operator WebSockets and to tenants' signed webhooks."""
