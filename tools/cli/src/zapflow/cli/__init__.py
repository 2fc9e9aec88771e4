"""The zapflow command: up, migrate, status, docs."""
