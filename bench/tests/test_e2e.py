"""``bench_e2e`` at its smallest, through the real system (``zapflow up``, every service, the fake
provider), and the figures it makes."""

import pytest

from bench import bench_e2e
from bench.bench_e2e import BESIDE, PATH, Scenario, figures, measure, post_singles
from bench.context import Context
from bench.load import BatchResult
from bench.report import Figure

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

TINY = Scenario(sends=120, recipients=30, channels=3, clients=8)
REFS = {
    "sends_ref": Figure.baseline("ref.rate", 1000.0, "msg/s"),
    "api_ref": Figure.baseline("ref.rps", 2000.0, "req/s"),
    "cpu_ref": Figure.baseline("ref.cpu", 100.0, "µs/msg", better="lower"),
}


async def test_sends_posted_to_the_api_reach_the_provider_and_ingest(bench_ctx: Context) -> None:
    result = await measure(bench_ctx, TINY, post_singles)  # raises unless each arrived once

    assert result.sends == TINY.sends
    assert result.posted.requests == TINY.sends
    assert result.posted.first_sent < result.posted.last_answered
    assert result.posted.first_sent < result.last_arrival <= result.recorded_at
    assert set(result.cpu_s) == {*PATH, *BESIDE}
    assert all(result.cpu_s[name] > 0 for name in PATH), result.cpu_s
    by_name = {f.name: f for f in figures("e2e", result, **REFS)}
    assert by_name["e2e.sends_per_s"].value == TINY.sends / (
        result.last_arrival - result.posted.first_sent
    )
    assert by_name["e2e.cpu_us_per_msg"].value == pytest.approx(
        sum(by_name[f"e2e.cpu_us_per_msg.{name}"].value for name in PATH)
    )


def test_rates_and_cpu_read_against_references_and_each_process_against_the_total() -> None:
    result = bench_e2e.Result(
        sends=1000,
        posted=BatchResult(1000, first_sent=100.0, last_answered=102.0, retries=0),
        last_arrival=104.0,
        recorded_at=105.0,
        cpu_s=dict.fromkeys(PATH, 1.0) | dict.fromkeys(BESIDE, 0.5),
    )

    made = {
        f.name: (f.value, f.reference_name, f.reference) for f in figures("e2e", result, **REFS)
    }

    total = 6 * 1000.0  # six processes of 1 s each, over 1,000 sends, in µs
    assert made == {
        "e2e.sends_per_s": (250.0, "ref.rate", 1000.0),
        "e2e.recorded_per_s": (200.0, "ref.rate", 1000.0),
        "e2e.api_rps": (500.0, "ref.rps", 2000.0),
        "e2e.cpu_us_per_msg": (total, "ref.cpu", 100.0),
        **{f"e2e.cpu_us_per_msg.{n}": (1000.0, "e2e.cpu_us_per_msg", total) for n in PATH},
        **{f"e2e.cpu_us_per_msg.{n}": (500.0, "e2e.cpu_us_per_msg", total) for n in BESIDE},
    }
