"""Approves, defers or vetoes every send request."""
