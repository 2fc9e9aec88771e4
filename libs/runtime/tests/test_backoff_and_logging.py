import io
import json
import logging

import pytest

from zapflow.runtime import logging as zf_logging
from zapflow.runtime.consumer import backoff


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_backoff_is_jittered_within_an_exponential_cap(attempt: int) -> None:
    cap = min(60.0, 0.5 * 2 ** (attempt - 1))
    delays = [backoff(attempt) for _ in range(200)]
    assert all(0 <= d <= cap for d in delays)
    assert len(set(delays)) > 100  # jittered, not a constant


def test_json_logs_carry_extra_ids_and_no_unknown_noise() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(zf_logging.JsonFormatter("ingest"))
    log = logging.getLogger("zapflow.test.json")
    log.addHandler(handler)
    log.propagate = False
    log.warning("stored message %s", "m-1", extra={"tenant_id": "t1"})
    doc = json.loads(stream.getvalue())
    assert doc["msg"] == "stored message m-1"
    assert doc["service"] == "ingest"
    assert doc["tenant_id"] == "t1"
    assert doc["level"] == "warning"
    assert "args" not in doc
