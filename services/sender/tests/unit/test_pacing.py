"""The asyncio pacer: slots granted by the pace, priority first, accounted when calls start."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

from zapflow.sender.domain import PaceConfig, PaceLimiter
from zapflow.sender.pacing import ChannelPacer


def pacer(rate: float, burst: int = 1, **config: object) -> ChannelPacer:
    limiter = PaceLimiter(
        PaceConfig(rate=rate, burst=burst, **config),  # type: ignore[arg-type]
        now=time.time(),
        rng=random.Random(1),
    )
    return ChannelPacer(limiter)


async def send(p: ChannelPacer, times: list[float], priority: int = 1, label: str = "") -> None:
    slot = await p.acquire(priority=priority, counts_toward_cap=True)
    try:
        await slot.commit()
        times.append(time.time())
    finally:
        slot.release()


async def test_calls_start_at_the_pace() -> None:
    p = pacer(rate=200)
    times: list[float] = []
    await asyncio.gather(*(send(p, times) for _ in range(40)))
    await p.close()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / 200 - 0.002  # never faster than the pace
    # and not held back for nothing: a loaded machine adds scheduling delay, a bug whole seconds
    assert 39 / 200 - 0.01 <= times[-1] - times[0] < 39 / 200 + 1.0


async def test_higher_priority_lanes_are_granted_first() -> None:
    p = pacer(rate=50)
    order: list[str] = []

    async def lane(priority: int, label: str) -> None:
        slot = await p.acquire(priority=priority, counts_toward_cap=True)
        order.append(label)
        await slot.commit()
        slot.release()

    first = asyncio.create_task(lane(1, "first"))
    await asyncio.sleep(0)
    bulk = [asyncio.create_task(lane(2, f"bulk{i}")) for i in range(3)]
    await asyncio.sleep(0)
    reply = asyncio.create_task(lane(0, "reply"))
    await asyncio.gather(first, *bulk, reply)
    await p.close()
    assert order == ["reply", "first", "bulk0", "bulk1", "bulk2"]


async def test_a_released_slot_is_not_accounted_and_frees_room() -> None:
    p = pacer(rate=1000, burst=2)
    slots = [await p.acquire(priority=1, counts_toward_cap=False) for _ in range(p.max_reserved)]
    blocked = asyncio.create_task(p.acquire(priority=1, counts_toward_cap=False))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # at most max_reserved open slots
    slots[0].release()
    extra = await asyncio.wait_for(blocked, 1)
    for slot in [*slots[1:], extra]:
        slot.release()
    await p.close()


async def test_a_lane_cancelled_while_waiting_leaks_no_slot() -> None:
    p = pacer(rate=2)
    waiting = [
        asyncio.create_task(p.acquire(priority=1, counts_toward_cap=False)) for _ in range(3)
    ]
    await asyncio.sleep(0.01)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    times: list[float] = []
    await asyncio.wait_for(send(p, times), 2)
    await p.close()
    assert len(times) == 1


async def test_a_rate_limit_holds_waiting_lanes() -> None:
    p = pacer(rate=500, burst=5)
    p.rate_limited(retry_after=0.3)
    started = time.time()
    times: list[float] = []
    await send(p, times)
    await p.close()
    assert times[0] - started >= 0.29
    assert p.limiter.factor == 0.5
