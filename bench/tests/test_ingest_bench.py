"""``bench_ingest`` runs the ingest service on a durable of its own, under enforced identities."""

import asyncio

import pytest

from bench import bench_ingest
from bench.context import Context

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_quick_ingest_figures_are_measured(bench_ctx: Context) -> None:
    async with asyncio.timeout(60):
        figures = await bench_ingest.run(bench_ctx)

    assert {f.name for f in figures} == {"ingest.pg_insert.sequential", "ingest.events_per_s"}
    assert all(f.value > 0 for f in figures)
