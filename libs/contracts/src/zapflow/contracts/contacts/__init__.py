"""Contacts context: customers as ingest knows them.

One module per major version: ``v1.py``, then ``v2.py`` beside it when a change breaks.
"""
