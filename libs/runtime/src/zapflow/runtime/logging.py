"""One logging setup for every service: JSON lines on stderr, readable text on a TTY.

Log messages are fixed lowercase phrases with ids in ``extra``; never bodies, phones or secrets.
Both formatters scrub what databases put in their error texts (``DETAIL:  Key (phone)=(…)``,
failing rows, quoted values; see ``zapflow.runtime.faults``) from messages, string extras and
tracebacks, so a ``logger.exception`` after a PostgreSQL error logs no personal data.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from zapflow.runtime.faults import scrub, scrub_traceback

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's duplicate of the message
}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        doc.update(_extras(record))
        if record.exc_info:
            doc["exc"] = _exception(self, record)
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: "
        line += scrub(record.getMessage()) + (f"  [{extra}]" if extra else "")
        if record.exc_info:
            line += "\n" + _exception(self, record)
        return line


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: scrub(v) if isinstance(v, str) else v
        for k, v in record.__dict__.items()
        if k not in _STANDARD
    }


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    assert record.exc_info is not None
    return scrub_traceback(formatter.formatException(record.exc_info), record.exc_info[1])


def configure(service: str, level: str = "INFO", fmt: str = "auto") -> None:
    """Install the single stderr handler.

    ``fmt`` is ``auto`` (JSON unless stderr is a TTY), ``json`` or ``text``.
    """
    handler = logging.StreamHandler(sys.stderr)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler.setFormatter(JsonFormatter(service) if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("nats", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
