"""Consent context: opt-ins and opt-outs, produced by compliance.

One module per major version: ``v1.py``, then ``v2.py`` beside it when a change breaks.
"""
