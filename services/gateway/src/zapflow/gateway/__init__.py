"""HTTP edge: REST API, provider webhooks, operator WebSocket, console."""
