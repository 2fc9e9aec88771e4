"""Zapflow benchmark harness: reference figures and the service figures measured beside them.

Run it with ``python -m bench`` (see ``bench/README.md``).
"""
