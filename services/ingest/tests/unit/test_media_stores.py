"""The filesystem store, the S3 store (SigV4 against AWS's own example) and the factory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from zapflow.contracts.errors import TransientError
from zapflow.ingest.media.keys import check_key
from zapflow.ingest.media.s3 import S3MediaStore, sign
from zapflow.ingest.media.store import FileMediaStore, media_store
from zapflow.ingest.settings import Settings


async def test_filesystem_store_round_trip_ranges_and_delete(tmp_path: Path) -> None:
    store = FileMediaStore(tmp_path / "media")
    await store.put("acme/m1", b"0123456789", "text/plain")
    assert await store.read("acme/m1", 0, 100) == b"0123456789"
    assert await store.read("acme/m1", 3, 4) == b"3456"
    assert await store.read("acme/m1", 20, 4) == b""
    assert not list((tmp_path / "media" / "acme").glob(".*.tmp"))
    await store.delete("acme/m1")
    with pytest.raises(KeyError):
        await store.read("acme/m1", 0, 1)


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/../b", ".hidden", "a b"])
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        check_key(key)


def test_sigv4_matches_the_aws_documented_example() -> None:
    """AWS S3 docs, "Example: GET Object" (examplebucket, test.txt, Range bytes=0-9)."""
    headers = sign(
        "GET",
        httpx.URL("https://examplebucket.s3.amazonaws.com/test.txt"),
        {"Range": "bytes=0-9"},
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert headers["x-amz-date"] == "20130524T000000Z"


class FakeBucket:
    """Just enough of S3: signed PUT/GET(Range)/DELETE on path-style URLs."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail_next = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AK/")
        if self.fail_next:
            self.fail_next = False
            return httpx.Response(503)
        path = request.url.path
        if request.method == "PUT":
            self.objects[path] = request.content
            return httpx.Response(200)
        if request.method == "DELETE":
            self.objects.pop(path, None)
            return httpx.Response(204)
        if path not in self.objects:
            return httpx.Response(404)
        start, end = request.headers["range"].removeprefix("bytes=").split("-")
        return httpx.Response(206, content=self.objects[path][int(start) : int(end) + 1])


async def test_s3_store_puts_reads_ranges_and_deletes() -> None:
    bucket = FakeBucket()
    async with httpx.AsyncClient(transport=httpx.MockTransport(bucket)) as client:
        store = S3MediaStore(
            client,
            endpoint="http://127.0.0.1:9000",
            bucket="zf",
            region="us-east-1",
            access_key_id="AK",
            secret_access_key="SK",
            prefix="media/",
        )
        await store.put("acme/m1", b"0123456789", "image/png")
        assert set(bucket.objects) == {"/zf/media/acme/m1"}
        assert await store.read("acme/m1", 2, 3) == b"234"
        bucket.fail_next = True
        with pytest.raises(TransientError):
            await store.read("acme/m1", 0, 1)
        await store.delete("acme/m1")
        with pytest.raises(KeyError):
            await store.read("acme/m1", 0, 1)


async def test_factory_picks_the_configured_store(tmp_path: Path) -> None:
    async with httpx.AsyncClient() as client:
        assert isinstance(media_store(Settings(media_dir=tmp_path), client), FileMediaStore)
        with pytest.raises(ValueError, match="s3_bucket"):
            media_store(Settings(media_store="s3", s3_endpoint="http://x"), client)
        s3 = media_store(
            Settings(
                media_store="s3",
                s3_endpoint="http://x",
                s3_bucket="b",
                s3_access_key_id="a",
                s3_secret_access_key="s",
            ),
            client,
        )
        assert isinstance(s3, S3MediaStore)
