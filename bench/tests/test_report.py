import json
from pathlib import Path

from bench.load import lua_string, percentile
from bench.report import Failure, Figure, format_table, median_figures, to_json, write_json


def test_reference_figure_has_ratio_one() -> None:
    fig = Figure.baseline("x.rps", 200.0, "req/s")

    assert fig.reference_name == "x.rps"
    assert fig.ratio == 1.0


def test_compared_figure_takes_unit_and_direction_of_its_reference() -> None:
    ref = Figure.baseline("ref.p99", 4.0, "ms", better="lower")

    fig = Figure.against("svc.p99", 5.0, ref)

    assert (fig.unit, fig.better, fig.ratio) == ("ms", "lower", 1.25)


def test_zero_reference_has_no_ratio() -> None:
    assert Figure("x", 1.0, "msg/s", reference_name="y", reference=0.0).ratio is None


def test_json_has_the_required_keys(tmp_path: Path) -> None:
    ref = Figure.baseline("a", 100.0, "msg/s")
    out = tmp_path / "results.json"

    write_json(out, [ref, Figure.against("b", 50.0, ref)])

    assert json.loads(out.read_text()) == to_json([ref, Figure.against("b", 50.0, ref)])
    assert json.loads(out.read_text())["b"] == {
        "value": 50.0,
        "unit": "msg/s",
        "reference": 100.0,
        "reference_name": "a",
        "ratio": 0.5,
        "better": "higher",
    }


def test_table_lists_figures_and_failures() -> None:
    ref = Figure.baseline("a.rps", 12_345.6, "req/s")

    table = format_table([ref, Figure.against("b.rps", 6_000.0, ref)], [Failure("gw", "timed out")])

    lines = table.splitlines()
    assert lines[0].split() == ["figure", "value", "unit", "reference", "ref", "value", "ratio"]
    assert lines[2].split() == ["a.rps", "12,346", "req/s", "(itself)", "12,346", "1.00", "↑"]
    assert lines[3].split() == ["b.rps", "6,000", "req/s", "a.rps", "12,346", "0.49", "↑"]
    assert lines[4] == "FAILED gw: timed out"


def testlua_string_escapes_quotes_and_non_ascii() -> None:
    assert lua_string('a"b\\c\né') == '"a\\034b\\092c\\010\\195\\169"'


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))

    assert (percentile(values, 50), percentile(values, 99), percentile([], 50)) == (50, 99, 0)


def test_median_of_rounds_takes_value_and_reference_medians() -> None:
    rounds = [
        [Figure("b", v, "msg/s", reference_name="a", reference=r)]
        for v, r in [(1.0, 10.0), (3.0, 30.0), (2.0, 50.0)]
    ]

    (fig,) = median_figures(rounds)

    assert (fig.value, fig.reference, fig.reference_name) == (2.0, 30.0, "a")
