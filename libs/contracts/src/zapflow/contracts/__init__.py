"""Versioned event contracts: envelope, canonical model, subjects, streams and consumers.

This package imports only pydantic and the standard library. Start with ``registry`` (every
type), ``subjects`` (where to publish), ``streams`` (what exists on the server) and the
``<context>/v<N>.py`` modules (the contracts themselves); see ``libs/contracts/README.md``.
"""
