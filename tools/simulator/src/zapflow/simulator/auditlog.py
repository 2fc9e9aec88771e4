"""The audit log: one JSON line per send the simulator accepted, in acceptance order.

A line (keys in this order)::

    {"ts": "2025-11-20T14:01:00.880Z", "seq": 17, "provider": "meta",
     "phone_number_id": "109876543210987", "channel_id": "demo-meta", "to": "+55 11 99999-0001",
     "wa_id": "5511999990001", "wamid": "wamid.HBgN…", "type": "text",
     "biz_opaque_callback_data": "6f1c…", "content_sha256": "9b2e…"}

``phone_number_id`` holds the Evolution instance and ``wamid`` the Evolution key id for Evolution
numbers. ``content_sha256`` hashes the canonical JSON of the typed content (``{"type": "text",
"text": {…}, "context"?: {…}}``), so duplicates with different content show without any text in
the log. ``seq`` continues across restarts on the same file. Lines are buffered and appended (and
fsync'ed) every ``flush_interval_ms``, and on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from zapflow.simulator.config import AuditConfig


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One accepted send."""

    ts: datetime
    seq: int
    provider: str
    phone_number_id: str
    channel_id: str
    to: str
    wa_id: str
    wamid: str
    type: str
    biz_opaque_callback_data: str | None
    content_sha256: str

    def to_json(self) -> str:
        doc = asdict(self)
        doc["ts"] = format_ts(self.ts)
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str | bytes) -> AuditRecord:
        doc: dict[str, Any] = json.loads(line)
        doc["ts"] = datetime.fromisoformat(doc["ts"])
        return cls(**doc)


def format_ts(at: datetime) -> str:
    """UTC with milliseconds and a ``Z``: ``2025-11-20T14:01:00.880Z``."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def content_hash(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_lines(lines: Iterable[str | bytes]) -> list[AuditRecord]:
    """Records of a JSON-lines text, skipping blank lines, in order."""
    return [AuditRecord.from_json(line) for line in lines if line.strip()]


def read_file(path: Path) -> list[AuditRecord]:
    with path.open("rb") as handle:
        return parse_lines(handle)


def _last_seq(path: Path) -> int:
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 8192))
        lines = [line for line in handle.read().splitlines() if line.strip()]
    try:
        return int(json.loads(lines[-1])["seq"]) if lines else 0
    except (ValueError, KeyError, TypeError):
        return 0  # a torn last line: start over; order in the file still holds


class AuditLog:
    """Buffered, append-only writer; without a path it keeps the records in memory."""

    def __init__(self, config: AuditConfig) -> None:
        self.config = config
        self.path = config.path
        self._pending: list[str] = []
        self._memory: list[AuditRecord] = []
        self._handle: IO[bytes] | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self.last_seq = _last_seq(self.path) if self.path is not None else 0
        self.written = 0

    def open(self) -> IO[bytes] | None:
        """The append handle of the file (opened on first use); None without a path."""
        if self.path is not None and self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("ab")
        return self._handle

    def next_seq(self) -> int:
        self.last_seq += 1
        return self.last_seq

    def append(self, record: AuditRecord) -> None:
        if self.path is None:
            self._memory.append(record)
        else:
            self._pending.append(record.to_json() + "\n")

    async def flush(self) -> None:
        async with self._lock:
            handle = self.open()
            if not self._pending or handle is None:
                return
            lines, self._pending = self._pending, []
            await asyncio.to_thread(self._write, handle, "".join(lines).encode())
            self.written += len(lines)

    def _write(self, handle: IO[bytes], data: bytes) -> None:
        handle.write(data)
        handle.flush()
        if self.config.fsync:
            os.fsync(handle.fileno())

    async def run(self) -> None:
        """Flush every ``flush_interval_ms`` until :meth:`stop` (never cancel it mid-write)."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.config.flush_interval_ms / 1000)
            await self.flush()

    def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        await self.flush()
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    async def records(self) -> list[AuditRecord]:
        """Every record so far (the file's, after a flush)."""
        if self.path is None:
            return list(self._memory)
        await self.flush()
        path = self.path
        return await asyncio.to_thread(read_file, path) if path.exists() else []
