"""Which stream stores a type and which consumers read it, derived from the declarations.

Used by the AsyncAPI generator and the contract tests; the runtime may use ``stream_for`` to set
``Nats-Expected-Stream`` on publishes.
"""

from __future__ import annotations

import re
from typing import Final

from zapflow.contracts.registry import model_for
from zapflow.contracts.specs import ConsumerSpec, StreamSpec
from zapflow.contracts.streams import ALL_CONSUMERS, ALL_STREAMS
from zapflow.contracts.subjects import matches, overlaps

_WILDCARD: Final = re.compile(r"^\{\{\s*wildcard\((\d+)\)\s*\}\}$|^\$(\d+)$")
_PARTITION: Final = re.compile(r"^\{\{\s*partition\(.*\)\s*\}\}$")


def sample_subject(type_name: str) -> str:
    """A concrete subject of ``type_name``, with placeholder tokens (``x``) for its parameters."""
    return ".".join((type_name, *("x" for _ in model_for(type_name).subject_fields)))


def stored_pattern(stream: StreamSpec, subject: str) -> str:
    """The subject ``stream`` stores ``subject`` under, with ``*`` for a partition token."""
    if stream.subject_transform is None or not matches(stream.subject_transform[0], subject):
        return subject
    source, destination = stream.subject_transform
    tokens = subject.split(".")
    captured = [tokens[i] for i, tok in enumerate(source.split(".")) if tok == "*"]
    stored: list[str] = []
    for tok in destination.split("."):
        wildcard = _WILDCARD.match(tok)
        if wildcard:
            stored.append(captured[int(wildcard.group(1) or wildcard.group(2)) - 1])
        elif _PARTITION.match(tok):
            stored.append("*")
        else:
            stored.append(tok)
    return ".".join(stored)


def streams_for(type_name: str) -> tuple[StreamSpec, ...]:
    """Every stream capturing ``type_name`` (exactly one when the declarations are sound)."""
    subject = sample_subject(type_name)
    return tuple(
        stream for stream in ALL_STREAMS if any(matches(f, subject) for f in stream.subjects)
    )


def stream_for(type_name: str) -> StreamSpec:
    """The stream that stores ``type_name``; raises ``LookupError`` unless exactly one does."""
    found = streams_for(type_name)
    if len(found) != 1:
        names = [stream.name for stream in found]
        raise LookupError(f"{type_name} is captured by {names or 'no stream'}")
    return found[0]


def consumers_for(type_name: str) -> tuple[ConsumerSpec, ...]:
    """Durable consumers that receive ``type_name`` (every partition consumer included)."""
    stream = stream_for(type_name)
    stored = stored_pattern(stream, sample_subject(type_name))
    return tuple(
        consumer
        for consumer in ALL_CONSUMERS
        if consumer.stream == stream.name
        and any(overlaps(f, stored) for f in consumer.filter_subjects)
    )
