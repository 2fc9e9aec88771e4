"""The write coalescer: alone at once, together under load, one key once per batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from zapflow.sender.coalesce import Coalescer


class Recorder:
    def __init__(self, *, fail: bool = False, missing: frozenset[str] = frozenset()) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail = fail
        self.missing = missing

    async def __call__(self, batch: Sequence[tuple[str, int]]) -> dict[str, int]:
        self.batches.append([key for key, _ in batch])
        await self.release.wait()
        if self.fail:
            raise RuntimeError("database down")
        return {key: arg * 10 for key, arg in batch if key not in self.missing}


async def test_a_lone_item_goes_at_once() -> None:
    batch = Recorder()
    assert await Coalescer(batch).submit("a", 1) == 10
    assert batch.batches == [["a"]]


async def test_items_submitted_while_batches_run_go_together() -> None:
    batch = Recorder()
    batch.release.clear()
    coalescer: Coalescer[str, int, int] = Coalescer(batch, max_in_flight=1)
    first = asyncio.ensure_future(coalescer.submit("a", 1))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(coalescer.submit(k, i)) for i, k in enumerate("bcd", 2)]
    await asyncio.sleep(0)
    assert batch.batches == [["a"]]  # b, c, d wait for the batch in flight
    batch.release.set()
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40]
    assert batch.batches == [["a"], ["b", "c", "d"]]


async def test_a_key_twice_goes_in_separate_batches() -> None:
    batch = Recorder()
    batch.release.clear()
    coalescer: Coalescer[str, int, int] = Coalescer(batch, max_in_flight=1)
    futures = [asyncio.ensure_future(coalescer.submit(k, i)) for i, k in enumerate("xaab")]
    await asyncio.sleep(0)
    batch.release.set()
    assert await asyncio.gather(*futures) == [0, 10, 20, 30]
    assert batch.batches == [["x"], ["a", "b"], ["a"]]


async def test_missing_results_are_none_and_failures_reach_every_caller() -> None:
    assert await Coalescer(Recorder(missing=frozenset({"a"}))).submit("a", 1) is None
    batch = Recorder(fail=True)
    batch.release.clear()
    coalescer: Coalescer[str, int, int] = Coalescer(batch, max_in_flight=1)
    futures = [asyncio.ensure_future(coalescer.submit(k, 1)) for k in "abc"]
    await asyncio.sleep(0)
    batch.release.set()
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    batch.fail = False
    assert await coalescer.submit("a", 2) == 20  # the coalescer goes on after a failure


async def test_batches_are_bounded() -> None:
    batch = Recorder()
    batch.release.clear()
    coalescer: Coalescer[str, int, int] = Coalescer(batch, max_in_flight=1, max_batch=2)
    futures = [asyncio.ensure_future(coalescer.submit(str(i), i)) for i in range(5)]
    await asyncio.sleep(0)
    batch.release.set()
    await asyncio.gather(*futures)
    assert [len(b) for b in batch.batches] == [1, 2, 2]


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_every_caller_gets_its_own_result(in_flight: int) -> None:
    async def batch(items: Sequence[tuple[int, int]]) -> dict[int, int]:
        await asyncio.sleep(0.001)
        return {key: arg + 1 for key, arg in items}

    coalescer: Coalescer[int, int, int] = Coalescer(batch, max_in_flight=in_flight)
    results = await asyncio.gather(*(coalescer.submit(i, i) for i in range(200)))
    assert results == [i + 1 for i in range(200)]
    assert coalescer.batches < 200
