"""Keyed per-channel senders: order, pace, retries, dead letters."""
