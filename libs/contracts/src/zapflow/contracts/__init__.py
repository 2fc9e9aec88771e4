"""Versioned event contracts: envelope, canonical model, subjects, streams and consumers.

This package imports only pydantic and the standard library.
"""
