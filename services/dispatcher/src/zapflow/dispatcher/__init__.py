"""Zapflow dispatcher.

Owns campaigns: audience expansion into send requests, scheduling, pause/resume/cancel."""
