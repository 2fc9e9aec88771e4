"""``bench_sender``'s throughput measurement waits for what it published."""

import asyncio

import pytest

from bench import bench_sender
from bench.context import Context

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_quick_throughput_completes_when_channels_do_not_divide_the_sends(
    bench_ctx: Context,
) -> None:
    total = int(bench_sender.SENDS_PER_SECOND_OF_RUN * bench_ctx.duration)
    assert total % bench_sender.THROUGHPUT_CHANNELS != 0  # 1,500 over 8 channels

    async with asyncio.timeout(45):
        rate = await bench_sender._throughput(bench_ctx)

    assert rate > 0
