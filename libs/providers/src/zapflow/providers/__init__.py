"""Provider adapters: Meta Cloud API, Evolution API v2, Z-API, WuzAPI."""
