"""Commands to compliance (work queue).

One module per major version: ``v1.py``, then ``v2.py`` beside it when a change breaks.
"""
