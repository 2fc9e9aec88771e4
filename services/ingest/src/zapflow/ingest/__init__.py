"""Normalizes provider webhooks; owns contacts, conversations, messages."""
