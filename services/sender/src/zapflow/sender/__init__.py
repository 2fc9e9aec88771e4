"""Zapflow sender.

Keyed per-channel senders: order per conversation, pace per number, retries, dead letters."""
