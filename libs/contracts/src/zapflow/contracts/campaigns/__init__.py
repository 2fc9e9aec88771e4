"""Campaigns context: lifecycle and recipient states, produced by the dispatcher.

One module per major version: ``v1.py``, then ``v2.py`` beside it when a change breaks.
"""
