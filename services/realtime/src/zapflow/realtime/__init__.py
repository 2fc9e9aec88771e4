"""Live events to operator WebSockets and signed webhooks to tenants."""
