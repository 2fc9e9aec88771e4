"""``bench.load.post_all`` against a local HTTP/1.1 server that answers a script."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from bench.load import LoadError, Request, post_all

Answer = Callable[[str, int], int]
"""(request path, how many times it was seen) -> status."""


@asynccontextmanager
async def server(answer: Answer) -> AsyncIterator[tuple[int, Counter[str]]]:
    seen: Counter[str] = Counter()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                length = next(
                    int(h.split(":")[1]) for h in head if h.lower().startswith("content-length")
                )
                await reader.readexactly(length)
                path = head[0].split(" ")[1]
                seen[path] += 1
                status = answer(path, seen[path])
                body = b'{"error": "no"}' if status >= 400 else b"{}"
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with srv:
        yield srv.sockets[0].getsockname()[1], seen


def _requests(count: int) -> list[Request]:
    return [Request.post_json(f"/r{i}", b'{"i": %d}' % i) for i in range(count)]


async def test_every_request_is_answered_once_and_retryable_answers_are_retried() -> None:
    def answer(path: str, times: int) -> int:
        return 503 if path in {"/r3", "/r7"} and times == 1 else 202

    async with server(answer) as (port, seen):
        result = await post_all("127.0.0.1", port, _requests(20), connections=4)

    assert result.requests == 20
    assert result.retries == 2
    assert seen == {f"/r{i}": 2 if i in (3, 7) else 1 for i in range(20)}
    assert result.last_answered >= result.first_sent
    assert result.rps > 0


async def test_an_answer_that_is_not_retryable_fails_with_its_status_and_body() -> None:
    async with server(lambda path, _: 409 if path == "/r2" else 202) as (port, _seen):
        with pytest.raises(
            LoadError, match=r"request 2 answered status 409: b'\{\"error\": \"no\"\}'"
        ):
            await post_all("127.0.0.1", port, _requests(5), connections=2)
