"""Request-reply contracts (core NATS, not JetStream): queries one service answers for another.

One module per answering service and major version (``gateway_v1``, ``ingest_v1``). Requests and
replies are plain contracts, not events: nothing is stored, and a lost reply is simply retried by
the caller. Every request carries ``tenant_id`` and the answer never crosses tenants.
"""
