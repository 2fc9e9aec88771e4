"""Zapflow realtime (planned): will bridge events to operator WebSockets and tenant webhooks.

Today it starts and owns its schema, and declares no consumer: nothing here reads events yet.
"""
