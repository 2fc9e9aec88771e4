"""Adapter lookup by provider name (the ``ProviderName`` of a channel)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from zapflow.providers.base import ProviderAdapter
from zapflow.providers.evolution import EvolutionAdapter
from zapflow.providers.meta import MetaAdapter
from zapflow.providers.wuzapi import WuzapiAdapter
from zapflow.providers.zapi import ZapiAdapter

PROVIDERS: Final[Mapping[str, type[ProviderAdapter]]] = MappingProxyType(
    {
        MetaAdapter.name: MetaAdapter,
        EvolutionAdapter.name: EvolutionAdapter,
        ZapiAdapter.name: ZapiAdapter,
        WuzapiAdapter.name: WuzapiAdapter,
    }
)
"""Every provider name mapped to its adapter class."""


def get_adapter(name: str) -> ProviderAdapter:
    """A new adapter for ``name``; ``KeyError`` for an unknown provider."""
    try:
        return PROVIDERS[name]()
    except KeyError:
        raise KeyError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}") from None
