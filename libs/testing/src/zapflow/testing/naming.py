"""Unique names, so tests share servers without sharing state (isolation without cleanup)."""

from __future__ import annotations

from uuid import uuid4


def unique(prefix: str) -> str:
    """``prefix-<8 hex chars>``, e.g. ``unique("orders")`` -> ``orders-1f3a9c0b``.

    Fit for stream, consumer and database names and for subject tokens.
    """
    return f"{prefix}-{uuid4().hex[:8]}"
