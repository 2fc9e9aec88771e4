"""Channels context: sending numbers and their settings, produced by the gateway.

One module per major version: ``v1.py``, then ``v2.py`` beside it when a change breaks.
"""
