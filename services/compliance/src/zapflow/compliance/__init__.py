"""Zapflow compliance: approves, defers or vetoes every send request, with a reason."""
