"""Commands to the dispatcher (work queue): create and drive campaigns.

One module per major version: ``v1.py``, then ``v2.py`` beside it when a change breaks.
"""
